"""The handlers and cancel fuzz dimensions (harness/fuzz/dims/handlers.py, cancel.py) and the case
keys they stand on: server.end, server.ignore_end, server.delay_after, cancel_after_requests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import descriptor_pool

from harness.cases import model
from harness.fuzz import examples
from harness.fuzz.dims import cancel, handlers
from python_impl.contract import STATUS_TRAILER
from python_impl.plan import Plan, Read, Run, Send, Wait

SEED = 3  # the seed of conftest's `draw` here
REPO = Path(__file__).resolve().parent.parent
H = "tutorial.HelloService"
METHODS = ("SayHello", "LotsOfReplies", "LotsOfGreetings", "BidiHello")


def _method(name: str) -> Any:
    return descriptor_pool.Default().FindServiceByName(H).methods_by_name[name]


def _reload(calls: list[model.Call]) -> list[model.Case]:
    """The calls as a saved fuzz case file, loaded back strictly: the loader accepts every draw."""
    cases = [model.Case(name=f"{c.method}/fuzz/x/e{i}", calls=[c], source="t") for i, c in enumerate(calls)]
    return model.load_file("drawn.yaml", text=yaml.safe_dump(examples.case_yaml(cases)))


@pytest.mark.parametrize("method", METHODS)
def test_handlers_draws_every_end_and_each_loads(seed_gen, method: str, draw: Any) -> None:
    calls = draw(handlers.calls(_method(method)), 120)
    loaded = _reload(calls)
    assert [c.calls[0].to_json() for c in loaded] == [c.to_json() for c in calls]
    def kind(c: model.Call) -> str:
        end = c.server.get("end", "return")
        return ("past_deadline" if c.expect["status"] == "DEADLINE_EXCEEDED" and "end" not in c.server else "ignore_cancel"
                if c.cancel_after_responses == 0 else "abort_ok" if end == "abort" and c.expect["status"] == "OK" else end)

    kinds = Counter(kind(c) for c in calls)
    ends = {"return", "raise", "abort", "ignore_cancel", "past_deadline"}
    # every end on every mode, client_stream included (grpc-go's OK with no message: known divergences)
    assert set(kinds) == ends | {"return_none", "abort_ok"}, kinds
    for c in calls:
        end = c.server.get("end")
        # the calls with known divergences carry their tag in the case name, and only they
        assert handlers.tag(c) == (kind(c) if kind(c) in ("return_none", "abort_ok", "past_deadline") else "")
        if kind(c) == "abort_ok":  # grpc.aio hangs until the deadline: kept short
            assert c.timeout_ms == handlers.ABORT_OK_TIMEOUT_MS and "message" not in c.expect
        if kind(c) in ("return_none", "abort_ok") and method == "LotsOfGreetings":  # grpc-go sends no message
            assert c.expect["status"] == "OK" and c.expect["responses"] == []
        if end == "return_none":  # grpc-go's answer: OK, an empty message (unary) or none
            assert c.expect["status"] == "OK" and c.expect["responses"] == ([{}] if method == "SayHello" else [])
            assert c.bidi == "half_duplex"  # a ping-pong client would wait for an answer that never comes
        if end == "raise":  # UNKNOWN everywhere; the text is the handler's, in each library's words
            assert c.expect["status"] == "UNKNOWN" and c.expect["message_contains"][0].startswith(handlers.RAISE_PREFIX)
        if end == "abort" and kind(c) == "abort":
            assert c.expect["status"] not in ("OK", "UNKNOWN")
        if kind(c) == "past_deadline":  # the handler sleeps past the deadline, then answers OK
            assert c.server["ignore_end"] and c.server["delay_ms"] > c.timeout_ms and c.server["status"] == "OK"


@pytest.mark.parametrize("method, shapes", [
    ("SayHello", {"cancel_at_once"}),
    ("LotsOfReplies", {"cancel_at_once", "cancel_after_responses"}),
    ("LotsOfGreetings", {"cancel_at_once", "cancel_after_requests", "server_ends_early", "half_close_at_once"}),
    ("BidiHello", {"cancel_at_once", "cancel_after_responses", "cancel_after_requests", "server_ends_early",
                   "half_close_at_once", "half_close_early"}),
])
def test_cancel_draws_every_shape_of_the_mode(seed_gen, method: str, shapes: set[str], draw: Any) -> None:
    calls = draw(cancel.calls(_method(method)), 60)
    _reload(calls)
    seen = set()
    for c in calls:
        if c.cancel_after_responses == 0:
            seen.add("cancel_at_once")
        elif c.cancel_after_responses is not None:
            seen.add("cancel_after_responses")
            k = c.cancel_after_responses
            # the server pauses before response k+1 and would send them all: only a real cancel passes
            assert c.server["delay_after"] == k and len(c.server["responses"]) > k
            assert c.expect == {"status": "CANCELLED", "responses": c.server["responses"][:k]}
        elif c.cancel_after_requests is not None:
            seen.add("cancel_after_requests")
            assert c.cancel_after_requests < len(c.requests) and c.expect["status"] == "CANCELLED"
        elif "read_requests" in c.server:
            seen.add("server_ends_early")
            assert c.server["read_requests"] < len(c.requests)
        elif not c.requests:
            seen.add("half_close_at_once")
        elif c.bidi == "ping_pong":  # k answered requests, then the half-close: the server streams on
            seen.add("half_close_early")
            assert 0 < len(c.requests) < len(c.expect["responses"]) and c.expect["status"] == "OK"
    assert seen == shapes


HELLO = "cases: [{name: tutorial.HelloService/%s/a, calls: [{method: tutorial.HelloService/%s, %s}]}]"


@pytest.mark.parametrize("method, call, message", [
    ("SayHello", "requests: [{}], server: {end: exit}, expect: {responses: [{}]}", "server.end is one of"),
    ("LotsOfReplies", "requests: [{}], server: {end: return_none}, expect: {responses: [{}]}",
     "return_none sends no responses"),
    ("SayHello", "requests: [{}], server: {ignore_end: 1}, expect: {responses: [{}]}", "ignore_end is true or false"),
    ("SayHello", "requests: [{}], server: {end: raise}, expect: {status: UNKNOWN, details: [{'@type': x, '@encoded': ''}]}",
     "sends no details"),
    ("SayHello", "requests: [{}], server: {delay_after: 1}, expect: {responses: [{}]}", "give delay_ms"),
    ("LotsOfGreetings", "requests: [{}], cancel_after_requests: 1, expect: {status: CANCELLED}", "must be under the 1"),
    ("SayHello", "requests: [{}], cancel_after_requests: 0, expect: {status: CANCELLED}", "client_stream and half-duplex"),
    ("BidiHello", "requests: [{}, {}], bidi: ping_pong, cancel_after_requests: 1, expect: {status: CANCELLED, responses: []}",
     "client_stream and half-duplex"),
])
def test_new_keys_are_checked_by_the_loader(seed_gen, method: str, call: str, message: str) -> None:
    with pytest.raises(model.CaseError, match=message):
        model.load_file("mine.yaml", text=HELLO % (method, method, call))


def _plan(method: str, **call: Any) -> Plan:
    (case,) = model.load_file("p.yaml", text=yaml.safe_dump({"cases": [
        {"name": f"{H}/{method}/p", "calls": [{"method": f"{H}/{method}", **call}]}]}))
    return Plan("p", 0, case.calls[0], _method(method))


def _steps(p: Plan) -> tuple[list[Any], Any]:
    run, seen = Run(p.script((), None, True)), []
    while (step := run.step(None)) is not None:
        seen.append(step)
    return seen, run.finish


def test_raise_ends_unknown_with_the_text_and_the_trailers_first(seed_gen) -> None:
    p = _plan("LotsOfGreetings", requests=[{}], server={"end": "raise"},
              expect={"status": "UNKNOWN", "message_contains": ["handler raised x"], "trailers": {"x-t": "v"}})
    _, finish = _steps(p)
    assert (finish.end, finish.message, finish.status) == ("raise", "handler raised x", None)
    assert ("x-t", "v") in finish.trailing and (STATUS_TRAILER, "UNKNOWN") in finish.trailing


def test_abort_keeps_its_code_ok_included(seed_gen) -> None:
    p = _plan("LotsOfGreetings", requests=[{}], server={"end": "abort"}, expect={"status": "OK", "responses": [{}]})
    _, finish = _steps(p)
    assert (finish.end, finish.code) == ("abort", grpc.StatusCode.OK)


def test_delay_after_waits_before_that_response_and_ignore_end_is_carried(seed_gen) -> None:
    p = _plan("BidiHello", requests=[], server={"delay_ms": 500, "delay_after": 1, "ignore_end": True},
              expect={"responses": [{"reply": "a"}, {"reply": "b"}]})
    steps, _ = _steps(p)
    assert [type(s).__name__ for s in steps] == ["Read", "Send", "Wait", "Send"]
    assert steps[2] == Wait(0.5, True)


# A client-streaming handler that returns nothing or aborts with OK, per direction: None, the case
# passes (the grpcio clients of a grpc-go server see what it sent: OK, no message); else a text of
# the reason of the known divergence that must excuse it.
CLIENT_STREAM_NO_MESSAGE = {
    "return_none": {"py-go": None, "pyaio-go": None, "go-go": "the grpc-go client turns", "go-py": "cannot serialize None",
                    "py-py": "cannot serialize None", "go-pyaio": "the response serializer fails on None",
                    "pyaio-pyaio": "the response serializer fails on None"},
    "abort_ok": {"py-go": None, "pyaio-go": None, "go-go": "which the grpc-go client turns into", "go-py": "returning UNKNOWN",
                 "py-py": "returning UNKNOWN", "go-pyaio": "never ends the call", "pyaio-pyaio": "never ends the call"},
}


@pytest.mark.interop
def test_fixed_cases_pass_in_every_direction(seed_gen, tmp_path: Path) -> None:
    """Every new instruction, on every mode, each direction (both Python server flavours and clients,
    the Go peer as a process): tests/data/handlers_cases.yaml must be green, and its two
    client-streaming cases with no response message diverge exactly where measured."""
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--protos", str(REPO / "protos"),
                           "--files", "hello.proto", "--no-generated", "--peer-runner", "process",
                           "--cases", str(REPO / "tests" / "data" / "handlers_cases.yaml"), "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "21 cases" in proc.stdout + proc.stderr and "147 case runs" in proc.stdout + proc.stderr
    seen: dict[str, dict[str, str | None]] = {"return_none": {}, "abort_ok": {}}
    for r in json.loads(out.read_text())["results"]:
        if r["case"].endswith("/fixed_client_stream"):
            excused = [d["got"] for d in r["diffs"] if d["path"] == "divergence"]
            assert r["verdict"] == ("divergence" if excused else "pass"), r
            want = CLIENT_STREAM_NO_MESSAGE[r["case"].split("/")[-2]][r["direction"].replace("→", "-")]
            seen[r["case"].split("/")[-2]][r["direction"].replace("→", "-")] = want
            assert (want is None) == (not excused) and (want is None or want in excused[0]), (want, r)
    assert seen == CLIENT_STREAM_NO_MESSAGE  # every direction ran both cases


def test_no_return_none_where_grpc_go_s_empty_message_is_not_a_valid_response(seed_gen) -> None:
    legacy = descriptor_pool.Default().FindServiceByName("shapes.legacy.LegacyService").methods_by_name
    assert not handlers._may_return_none(legacy["Roundtrip"])  # shapes.legacy.Legacy has a required field
    assert all(handlers._may_return_none(_method(n)) for n in METHODS)
