"""The Python generic server engine (contract v2) in both flavours (grpc, grpc.aio) against both
client flavours, in-process, with small hand-made catalogues on the seed protos.

The catalogue's expected values are deliberately unlike the seed services' answers: a pass proves
the generic engine answered, not the seed. Every RPC has a deadline, so nothing can hang.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from harness.run import divergences
from harness.cases.model import Call, Case
from python_impl.client import run_case, run_case_aio
from python_impl.contract import CHANNEL_OPTIONS, Result
from python_impl.server import serve, serve_aio

REPO = Path(__file__).resolve().parent.parent
H = "tutorial.HelloService"
TIMEOUT_MS = 5_000
_MODES = {"SayHello": "unary", "LotsOfReplies": "server_stream", "LotsOfGreetings": "client_stream",
          "BidiHello": "bidi"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hello(method: str, greetings: list[str], expect: dict[str, Any] | None = None, **kw: Any) -> Call:
    return Call(method=f"{H}/{method}", streaming=_MODES[method], request_type="tutorial.HelloRequest",
                response_type="tutorial.HelloResponse", requests=[{"greeting": g} for g in greetings],
                expect={"status": "OK", **(expect or {})}, timeout_ms=kw.pop("timeout_ms", TIMEOUT_MS), **kw)


def replies(*texts: str) -> dict[str, Any]:
    return {"responses": [{"reply": t} for t in texts]}


def case(name: str, *calls: Call) -> Case:
    return Case(name=name, calls=list(calls), source="tests/test_python_generic.py")


BAD_REQUEST = {"@type": "type.googleapis.com/google.rpc.BadRequest",
               "fieldViolations": [{"field": "greeting", "description": "too short"}]}
ERROR_INFO = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R", "domain": "d",
              "metadata": {"k": "v"}}

CASES = {c.name: c for c in [
    case(f"{H}/SayHello/g_unary", hello("SayHello", ["x"], replies("generic unary"))),
    case(f"{H}/LotsOfReplies/g_server_stream", hello("LotsOfReplies", ["a b"], replies("r1", "r2", "r3"))),
    case(f"{H}/LotsOfReplies/g_zero", hello("LotsOfReplies", ["a b"], replies())),
    case(f"{H}/LotsOfGreetings/g_client_stream", hello("LotsOfGreetings", ["a", "b", "c"], replies("joined"))),
    case(f"{H}/LotsOfGreetings/g_no_requests", hello("LotsOfGreetings", [], replies("none"))),
    case(f"{H}/BidiHello/g_half_duplex", hello("BidiHello", ["a", "b"], replies("1", "2", "3"))),
    case(f"{H}/BidiHello/g_ping_pong", hello("BidiHello", ["a", "b", "c"], replies("A", "B", "C"), bidi="ping_pong")),
    case(f"{H}/SayHello/g_two_calls", hello("SayHello", ["1"], replies("first")),
         hello("LotsOfReplies", ["2"], replies("second", "third"))),
    case(f"{H}/SayHello/g_deadline", hello("SayHello", ["x"], {"status": "DEADLINE_EXCEEDED"}, timeout_ms=300,
                                           server={"delay_ms": 3000})),
    case(f"{H}/LotsOfReplies/g_deadline", hello("LotsOfReplies", ["x"], {"status": "DEADLINE_EXCEEDED", "responses": []},
                                                timeout_ms=300, server={"delay_ms": 3000})),
    case(f"{H}/SayHello/g_delay_within_deadline", hello("SayHello", ["x"], replies("late"), server={"delay_ms": 200})),
    case(f"{H}/LotsOfGreetings/g_read_two", hello("LotsOfGreetings", ["a", "b", "c", "d"], replies("early"),
                                                  server={"read_requests": 2})),
    case(f"{H}/LotsOfGreetings/g_read_none", hello("LotsOfGreetings", ["a", "b"], replies("read nothing"),
                                                   server={"read_requests": 0})),
    case(f"{H}/BidiHello/g_finishes_early", hello("BidiHello", ["a", "b", "c"], replies("only"),
                                                  server={"read_requests": 1})),
    case(f"{H}/SayHello/g_metadata", hello(
        "SayHello", ["x"], {**replies("md"),
                            "headers": {"x-h": ["v"], "x-h-bin": [b64(b"\xff\x00")]},
                            "trailers": {"x-t": ["1", "2"], "x-t-bin": [b64(b"\x01\x02")]}},
        metadata={"x-m": ["q", "r"], "x-m-bin": [b64(b"\x00\x01")]})),
    case(f"{H}/LotsOfReplies/g_error_after_two", hello(
        "LotsOfReplies", ["x"], {**replies("one", "two"), "status": "ABORTED", "message": "stopped after 2",
                                 "headers": {"x-h": ["e"]}, "trailers": {"x-t": ["e"]}})),
    case(f"{H}/SayHello/g_details", hello(
        "SayHello", ["x"], {"status": "INVALID_ARGUMENT", "message": "bad greeting",
                            "details": [BAD_REQUEST, ERROR_INFO], "trailers": {"x-t": ["with details"]}})),
    case(f"{H}/BidiHello/g_gzip", hello("BidiHello", ["x" * 2000, "y"], replies("z" * 5000, "w"),
                                        compression="gzip", server={"compression": "gzip"})),
    case(f"{H}/SayHello/g_server_diffs", hello("SayHello", ["expected"], replies("ok"),
                                               metadata={"x-k": ["1"]})),
    case(f"{H}/BidiHello/g_cancel_after_one", hello("BidiHello", ["a", "b", "c"], {**replies("A"),
                                                    "status": "CANCELLED"}, bidi="ping_pong",
                                                    cancel_after_responses=1)),
    case(f"{H}/LotsOfReplies/g_cancel_at_start", hello("LotsOfReplies", ["a"], {**replies(), "status": "CANCELLED"},
                                                       cancel_after_responses=0, server={"delay_ms": 3000})),
    case(f"{H}/SayHello/g_cancel_at_start", hello("SayHello", ["a"], {**replies(), "status": "CANCELLED"},
                                                  cancel_after_responses=0, server={"delay_ms": 3000})),
    case(f"{H}/LotsOfReplies/g_method_mismatch", hello("LotsOfReplies", ["a"], replies("x"))),
]}


@pytest.fixture(scope="module", params=["sync", "aio"])
def server(request, seed_gen):
    """A Python server of each flavour with the catalogue above; yields its address."""
    if request.param == "sync":
        srv, port = serve(seed_gen, "127.0.0.1:0", catalogue=list(CASES.values()))
        yield f"127.0.0.1:{port}"
        srv.stop(grace=0).wait(5)
    else:
        handle, port = serve_aio(seed_gen, "127.0.0.1:0", catalogue=list(CASES.values()))
        yield f"127.0.0.1:{port}"
        handle.stop(grace=0)


@pytest.fixture(params=["sync", "aio"])
def run(request, server, seed_gen):
    """Runs a case with a client of each flavour against the server."""
    def go(c: Case) -> Result:
        if request.param == "sync":
            with grpc.insecure_channel(server, options=CHANNEL_OPTIONS) as ch:
                return run_case(ch, seed_gen, c, "py-py", "test")

        async def main() -> Result:
            async with grpc.aio.insecure_channel(server, options=CHANNEL_OPTIONS) as ch:
                return await run_case_aio(ch, seed_gen, c, "pyaio-pyaio", "test")
        return asyncio.run(main())
    return go


RACES = [e for e in divergences.load(divergences.builtin_files(), builtin=True) if e.intermittent]


def assert_pass(result: Result) -> None:
    """A pass, or exactly a known library race (an intermittent entry of the built-in library)."""
    if result.verdict == "fail":
        case = CASES[result.case]
        judged = divergences.apply(RACES, dataclasses.replace(result, diffs=list(result.diffs)), result.direction,
                                   case.calls[0].streaming, case.ends_early)
        if judged.verdict == "divergence":
            return
    assert (result.verdict, result.diffs) == ("pass", [])


def with_calls(c: Case, **changes: Any) -> Case:
    """The case as the client runs it, its first call changed (the server keeps the catalogue's)."""
    return dataclasses.replace(c, calls=[dataclasses.replace(c.calls[0], **changes), *c.calls[1:]])


@pytest.mark.parametrize("name", [
    "SayHello/g_unary", "LotsOfReplies/g_server_stream", "LotsOfReplies/g_zero", "LotsOfGreetings/g_client_stream",
    "LotsOfGreetings/g_no_requests", "BidiHello/g_half_duplex", "BidiHello/g_ping_pong", "SayHello/g_two_calls",
    "SayHello/g_delay_within_deadline", "LotsOfGreetings/g_read_two", "LotsOfGreetings/g_read_none",
    "BidiHello/g_finishes_early",
    "SayHello/g_metadata", "LotsOfReplies/g_error_after_two", "SayHello/g_details", "BidiHello/g_gzip",
    "BidiHello/g_cancel_after_one", "LotsOfReplies/g_cancel_at_start", "SayHello/g_cancel_at_start",
])
def test_catalogue_case_passes(run, name):
    assert_pass(run(CASES[f"{H}/{name}"]))


@pytest.mark.parametrize("name", ["SayHello/g_deadline", "LotsOfReplies/g_deadline"])
def test_delay_past_the_deadline(run, name):
    start = time.monotonic()
    assert_pass(run(CASES[f"{H}/{name}"]))
    assert time.monotonic() - start < 2.0  # the 300 ms deadline, not the 3 s delay


def test_wrong_response_values_fail(run):
    c = CASES[f"{H}/LotsOfReplies/g_server_stream"]
    r = run(with_calls(c, expect={"status": "OK", **replies("r1", "R2")}))
    assert r.verdict == "fail"
    assert [(d.path, d.expected, d.got) for d in r.diffs] == [
        ("responses.count", "2", "3"), ("responses[1].reply", '"R2"', '"r2"'),
        ("responses[2]", "<missing>", '{reply: "r3"}')]  # the extra response, by its index


def test_server_diffs_come_back_as_a_fail(run, caplog):
    c = CASES[f"{H}/SayHello/g_server_diffs"]
    with caplog.at_level("WARNING", logger="python_impl.generic"):
        r = run(with_calls(c, requests=[{"greeting": "got"}], metadata={"x-k": ["2"]}))
    assert f'[{c.name}] server: server.requests[0].greeting: expected "expected", got "got"' in caplog.messages
    assert r.verdict == "fail"
    assert {(d.call, d.path, d.expected, d.got) for d in r.diffs} == {
        (0, "server.requests[0].greeting", '"expected"', '"got"'),
        (0, 'server.metadata["x-k"]', '["1"]', '["2"]'),
    }


def test_server_counts_requests(run):
    c = CASES[f"{H}/LotsOfGreetings/g_client_stream"]
    r = run(with_calls(c, requests=[{"greeting": "a"}]))
    assert r.verdict == "fail"
    assert [(d.path, d.expected, d.got) for d in r.diffs][0] == ("server.requests.count", "3", "1")
    # and which requests never arrived, by index
    assert [(d.path, d.got) for d in r.diffs][1:] == [("server.requests[1]", "<missing>"),
                                                       ("server.requests[2]", "<missing>")]


def test_metadata_mismatch_both_sides(run):
    c = CASES[f"{H}/SayHello/g_metadata"]
    exp = dict(c.calls[0].expect, headers={"x-h": ["other"]}, trailers={"x-t-bin": [b64(b"\x09")],
                                                                          "interop-ignored": ["x"]})
    r = run(with_calls(c, expect=exp, metadata={"x-m": ["q", "r"], "x-m-bin": [b64(b"\x00\x02")]}))
    assert {d.path for d in r.diffs} == {'headers["x-h"]', 'trailers["x-t-bin"]', 'server.metadata["x-m-bin"]'}


def test_details_mismatch(run):
    c = CASES[f"{H}/SayHello/g_details"]
    other = dict(BAD_REQUEST, fieldViolations=[{"field": "greeting", "description": "too long"}])
    r = run(with_calls(c, expect=dict(c.calls[0].expect, details=[other])))
    assert [(d.path, d.expected, d.got) for d in r.diffs] == [
        ("details.count", "1", "2"), ("details[0].field_violations[0].description", '"too long"', '"too short"')]


def test_unknown_case_falls_back_to_the_seed(run):
    c = case(f"{H}/SayHello/not_in_catalogue", hello("SayHello", ["world"], replies("hello world")))
    assert_pass(run(c))
    c = case(f"{H}/BidiHello/not_in_catalogue", hello("BidiHello", ["a", "b"], replies("hello a", "hello b"),
                                                       bidi="ping_pong"))
    assert_pass(run(c))


def test_seed_errors_and_headers_through_the_fallback(run):
    users = [
        Call(method="users.Users/CreateUser", streaming="unary", request_type="users.CreateUserRequest",
             response_type="users.CreateUserResult", requests=[{}], timeout_ms=TIMEOUT_MS, metadata={"ip": ["1.2.3.4"]},
             expect={"status": "INVALID_ARGUMENT", "message": "username must not be empty",
                     "headers": {"echo-ip": ["1.2.3.4"]}}),
        Call(method="routeguide.RouteGuide/RecordRoute", streaming="client_stream", request_type="routeguide.Point",
             response_type="routeguide.RouteSummary", requests=[{}, {}], timeout_ms=TIMEOUT_MS,
             expect={"status": "OK", "responses": [{"pointCount": 2, "elapsedTime": 1}]}),
    ]
    assert_pass(run(case("users.Users/CreateUser/fallback_mix", *users)))


def test_no_case_and_no_seed_is_unimplemented(run):
    call = Call(method="shapes.legacy.LegacyService/Roundtrip", streaming="unary", request_type="shapes.legacy.Legacy",
                response_type="shapes.legacy.Legacy", requests=[{"id": "x"}], timeout_ms=TIMEOUT_MS,
                expect={"status": "UNIMPLEMENTED", "message": 'no case "shapes.legacy.LegacyService/Roundtrip/none" '
                                                              "in the catalogue and no implementation of "
                                                              "shapes.legacy.LegacyService"})
    assert_pass(run(case("shapes.legacy.LegacyService/Roundtrip/none", call)))


def test_method_mismatch_is_failed_precondition(run):
    name = f"{H}/LotsOfReplies/g_method_mismatch"
    call = hello("SayHello", ["a"], {"status": "FAILED_PRECONDITION",
                                     "message": f"case {name} call 0 is for /{H}/LotsOfReplies, not /{H}/SayHello"})
    assert_pass(run(case(name, call)))


def test_raw_call_outside_the_proto_set(run):
    call = Call(method="tutorial.HelloService/NoSuchMethod", streaming="unary", request_type="google.protobuf.Empty",
                response_type="google.protobuf.Empty", requests=[{}], timeout_ms=TIMEOUT_MS,
                expect={"status": "UNIMPLEMENTED"}, raw=True)
    assert_pass(run(case("tutorial.HelloService/NoSuchMethod/raw", call)))
    call = dataclasses.replace(call, method="no.Such/Service")
    assert_pass(run(case("no.Such/Service/raw", call)))


def test_health_and_reflection(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(server, options=CHANNEL_OPTIONS) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in ["", H, "shapes.legacy.LegacyService"]:
            assert stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status == \
                health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        (resp,) = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                            timeout=5)
        names = {s.name for s in resp.list_services_response.service}
    assert {H, "users.Users", "shapes.legacy.LegacyService", "grpc.health.v1.Health"} <= names


def test_catalogue_as_client_input_json(seed_gen):
    """The catalogue in its JSON form (what --cases reads) drives the server the same way."""
    doc = json.loads(json.dumps({"cases": [CASES[f"{H}/BidiHello/g_ping_pong"].to_json(),
                                           CASES[f"{H}/SayHello/g_details"].to_json()]}))
    srv, port = serve(seed_gen, "127.0.0.1:0", catalogue=doc)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as ch:
            for name in (f"{H}/BidiHello/g_ping_pong", f"{H}/SayHello/g_details"):
                assert_pass(run_case(ch, seed_gen, CASES[name], "py-py", "test"))
    finally:
        srv.stop(grace=0).wait(5)


@pytest.mark.parametrize("flavour", [[], ["--aio"]], ids=["sync", "aio"])
def test_cli_serves_a_catalogue(tmp_path, seed_gen, flavour):
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"cases": [CASES[f"{H}/SayHello/g_metadata"].to_json()]}))
    proc = subprocess.Popen([sys.executable, "-m", "harness.engines.python_peer", "serve", "--protos", str(REPO / "protos"),
                             "--addr", "127.0.0.1:0", "--cases", str(cases), *flavour],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("LISTENING 127.0.0.1:")
        with grpc.insecure_channel(line.split()[1], options=CHANNEL_OPTIONS) as ch:
            assert_pass(run_case(ch, seed_gen, CASES[f"{H}/SayHello/g_metadata"], "py-py", "test"))
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_a_missing_server_confirmation_is_a_failure(seed_gen) -> None:
    """Without the `interop-server-checked` trailer, "no server diffs" proves nothing."""
    from harness.cases.model import Call
    from python_impl.contract import Outcome
    from python_impl.check import check

    call = Call(method="tutorial.HelloService/SayHello", streaming="unary", request_type="tutorial.HelloRequest",
                response_type="tutorial.HelloResponse", requests=[{}], expect={"status": "OK"}, checked_by_server=True)
    assert [(d.path, d.got) for d in check(call, Outcome(), 0)] == [("server.checked", "missing")]
    assert check(call, Outcome(trailers=[("interop-server-checked", "1"), ("interop-server-status", "OK")]), 0) == []
    cancelled = Call(**{**call.__dict__, "expect": {"status": "CANCELLED"}, "cancel_after_responses": 0})
    assert check(cancelled, Outcome(status="CANCELLED"), 0) == []


def test_a_case_with_no_calls_is_an_error_in_both_client_flavours(seed_gen) -> None:
    """Nothing exchanged is nothing checked (the Go client says `error` too), never a pass."""
    empty = Case(name=f"{H}/SayHello/no_calls", calls=[], source="mine.yaml")
    with grpc.insecure_channel("127.0.0.1:1", options=CHANNEL_OPTIONS) as ch:
        r = run_case(ch, seed_gen, empty, "py→py", "test")
    assert (r.verdict, [d.path for d in r.diffs]) == ("error", ["error"])

    async def aio() -> Result:
        async with grpc.aio.insecure_channel("127.0.0.1:1", options=CHANNEL_OPTIONS) as ch:
            return await run_case_aio(ch, seed_gen, empty, "pyaio→pyaio", "test")
    assert asyncio.run(aio()).verdict == "error"


def test_server_diffs_trailer_must_be_a_list(seed_gen) -> None:
    from python_impl.check import server_diffs

    for body in (b"null", b"{}", b"not json"):
        assert [d.path for d in server_diffs([("interop-server-diffs-bin", body)], 0)] == ["server.diffs"], body
    assert server_diffs([("interop-server-diffs-bin", b"[]")], 0) == []


@pytest.mark.parametrize("code", ["CANCELLED", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "UNIMPLEMENTED"])
def test_a_status_the_generic_server_produces_needs_its_confirmation(seed_gen, code: str) -> None:
    """A server that returns the case's status without looking at the request fails, whatever the code."""
    from harness.cases.model import Call
    from python_impl.check import check
    from python_impl.contract import Outcome

    call = Call(method="tutorial.HelloService/SayHello", streaming="unary", request_type="tutorial.HelloRequest",
                response_type="tutorial.HelloResponse", requests=[{}], expect={"status": code}, checked_by_server=True)
    assert [(d.path, d.got) for d in check(call, Outcome(status=code), 0)] == [("server.checked", "missing")]
    # the client reaches the outcome itself when the data says what the server would answer instead
    own = Call(**{**call.__dict__, "server": {"status": "OK", "delay_ms": 3000}})
    assert check(own, Outcome(status=code), 0) == []


def test_generated_status_cases_require_the_server_check(seed_gen) -> None:
    from harness.cases import generate
    from harness.protoset import discover
    from python_impl.check import server_must_confirm

    cases = generate.generate(discover(REPO / "protos"))
    by_pattern = {c.name.rsplit("/", 1)[1]: c.calls[0] for c in cases if c.name.startswith("shapes.v1.Shapes/Unary/")}
    # the library patterns (codes past 16 among them) run once per streaming mode, on the set's first
    # unary method (generate.LIBRARY_PATTERNS)
    by_pattern |= {c.name.rsplit("/", 1)[1]: c.calls[0] for c in cases
                   if generate._pattern(c) in generate.LIBRARY_PATTERNS and c.calls[0].streaming == "unary"}
    for pattern in ("status_cancelled", "status_resource_exhausted", "status_deadline_exceeded",
                    "status_unimplemented", "code_17", "code_99"):  # a code past 16 only comes from a server
        assert server_must_confirm(dataclasses.replace(by_pattern[pattern], checked_by_server=True)), pattern
    for pattern in ("request_over_limit", "response_over_limit", "deadline_exceeded", "unimplemented_method"):
        assert not server_must_confirm(dataclasses.replace(by_pattern[pattern], checked_by_server=True)), pattern


def test_a_deadline_case_reported_as_cancelled_fails_in_the_case_itself(seed_gen) -> None:
    """CANCELLED for a deadline is excused only as a known divergence of the Go-server directions,
    never by the case data, which applies in all seven."""
    from harness.cases import generate
    from harness.protoset import discover
    from python_impl.check import check
    from python_impl.contract import Outcome

    deadline = [c for c in generate.generate(discover(REPO / "protos")) if c.name.endswith("/stream/deadline_exceeded")]
    assert deadline
    for case in deadline:
        assert [d.path for d in check(case.calls[0], Outcome(status="CANCELLED"), 0)] == ["status.code"], case.name
