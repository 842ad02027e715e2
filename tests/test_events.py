"""What a session tells the progress (harness/run/runner.py Session.events) of a Go client's batch:
every case ends with the verdict the matrix will show, and has a window for the log lines of its
calls, even when the Go client reported no result for it (it crashed) or reported a pass that
carries differences (never trusted: _align makes it a fail)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from harness.cases.model import Call, Case
from harness.run import runner
from harness.run.runner import Direction, Session
from python_impl.contract import Diff, Result

H = "tutorial.HelloService"


def case(name: str) -> Case:
    return Case(name=f"{H}/SayHello/{name}", source="tests/test_events.py", calls=[Call(
        method=f"{H}/SayHello", streaming="unary", request_type="tutorial.HelloRequest",
        response_type="tutorial.HelloResponse", requests=[{}], timeout_ms=5000, expect={"status": "OK"})])


def test_a_go_batch_tells_every_case_with_its_final_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    ok, lying, missing = case("ok"), case("lying"), case("missing")

    def fake_client(build: Any, runner_name: str, payload: dict, on_result: Any = None,
                    on_start: Any = None) -> tuple[list[Result], str]:
        on_start()
        got = [Result(ok.name, "go-py", "pass", [], duration_ms=1.0),
               Result(lying.name, "go-py", "pass", [Diff(0, "status.code", "OK", "INTERNAL")], duration_ms=1.0)]
        for r in got:  # as the Go client prints them; it dies before `missing`
            on_result(r)
        return got, "panic: the Go client died\n"

    monkeypatch.setattr(runner, "run_go_client", fake_client)
    heard: list[tuple[str, str, str | None]] = []
    prepared = SimpleNamespace(build=None, known=[], probes=lambda d: {})
    session = Session(prepared, "process", listeners=(), events=lambda *e: heard.append(e))  # type: ignore[arg-type]
    d = Direction("go→py", "go", "py")
    results = session._exchange(d, [ok, lying, missing], {"plaintext": "127.0.0.1:1"})
    assert [r.verdict for r in results] == ["pass", "fail", "error"]
    ended = {c: v for _, c, v in heard if v is not None}
    assert ended == {ok.name: "pass", lying.name: "fail", missing.name: "error"}, heard
    for c in (ok, lying, missing):
        start, end = session.windows[(d.name, c.name)]
        assert 0 < start <= end, (c.name, start, end)
