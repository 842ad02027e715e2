"""`grpc-interop fuzz --save-failures` against a faulty Python server (built here, never in the
product): the fuzzer fails, shrinks the example, and writes a case file that `grpc-interop run`
loads and that reproduces the failure, and that passes against the real server.

Run by tests/test_fuzz_save.py in a pytest subprocess of its own: one process loads one proto set,
and this one is made for the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.cases import model
from harness.engines.peer import PythonServer
from harness.run import runner

PROTO = """
syntax = "proto3";
package fuzzsave.v1;
message Note { string text = 1; repeated string tags = 2; int64 count = 3; bytes blob = 4; }
service Notes { rpc Put(Note) returns (Note); }
"""


def _truncate(value: Any) -> Any:
    """Every string cut at its first NUL: what a C-string-minded peer would do."""
    if isinstance(value, str):
        return value.split("\x00", 1)[0]
    if isinstance(value, list):
        return [_truncate(v) for v in value]
    if isinstance(value, dict):
        return {_truncate(k): _truncate(v) for k, v in value.items()}
    return value


class TruncatingServer(PythonServer):
    """A Python server peer that truncates strings at NUL in everything it answers and expects."""

    def __init__(self, gen: Any, catalogue: list[model.Case] | None = None, aio: bool = False, **kw: Any) -> None:
        from dataclasses import replace

        faulty = [replace(c, calls=[replace(call, requests=_truncate(call.requests), expect=_truncate(call.expect))
                                    for call in c.calls]) for c in catalogue or []]
        super().__init__(gen, faulty, aio, **kw)


@pytest.fixture()
def protos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "protos"
    folder.mkdir()
    (folder / "notes.proto").write_text(PROTO)
    monkeypatch.setenv("INTEROP_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def test_saved_failures_load_as_cases_and_reproduce_against_the_faulty_stub(
        protos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "fuzz-failures.yaml"
    monkeypatch.setattr(runner, "PythonServer", TruncatingServer)
    # the values dimension: the fault is in message values (every dimension draws messages, and each
    # failing dimension gets its own minimal example)
    code = cli.main(["fuzz", "--protos", str(protos), "--direction", "py-py", "--seed", "3", "--budget", "5",
                     "--examples", "40", "--dimensions", "values", "--save-failures", str(saved),
                     "--shrink-budget", "30"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "FUZZ FAIL: py→py fuzzsave.v1.Notes/Put (unary)" in out
    assert "shrunk by Hypothesis" in out and f"saved in {saved}" in out
    assert "starting from another failing example" not in out  # the replay met the round's own example

    cases = model.load_all([saved])
    minimal = [c for c in cases if c.name.endswith("-min")]
    assert len(minimal) == 1, [c.name for c in cases]
    call = minimal[0].calls[0]
    assert call.checked_by_server  # `generic: true`: the generic engines answer it
    # shrunk to a single NUL-bearing string and nothing else: Hypothesis' minimal example
    shown = repr([call.requests, call.expect.get("responses")])
    assert shown.count("\\x00") == 1, shown
    original = [c for c in cases if not c.name.endswith("-min")]
    assert len(repr(original[0].calls[0].requests)) + len(repr(original[0].calls[0].expect)) > len(shown)
    # the printed command reproduces it: it fails against the faulty server ...
    command = out.split("reproduce it:\n", 1)[1].splitlines()[0].split()
    assert command[:2] == ["grpc-interop", "run"] and minimal[0].name in command
    assert cli.main(command[1:]) == 1
    assert "expected" in capsys.readouterr().out
    # ... and passes against the real one: the failure is the stub's, not a false alarm
    monkeypatch.setattr(runner, "PythonServer", PythonServer)
    assert cli.main(command[1:]) == 0, capsys.readouterr().out
