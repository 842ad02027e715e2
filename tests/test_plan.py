"""The generic server's behaviour as steps (python_impl/plan.py), checked without a server: both
grpcio flavours perform exactly these steps."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from harness.cases.model import Call
from python_impl.contract import CHECKED_TRAILER, DIFFS_TRAILER
from python_impl.plan import Compress, Finish, Headers, Plan, Read, Run, Send, Wait

H = "tutorial.HelloService"
MODES = {"SayHello": "unary", "LotsOfReplies": "server_stream", "LotsOfGreetings": "client_stream",
         "BidiHello": "bidi"}


@pytest.fixture
def plan(seed_gen: ModuleType):
    """A Plan for a call of the hello service (seed_gen puts its types in the default pool)."""
    def make(method: str, greetings: list[str], replies: list[str], **kw: Any) -> Plan:
        expect = {"status": "OK", "responses": [{"reply": r} for r in replies], **kw.pop("expect", {})}
        call = Call(method=f"{H}/{method}", streaming=MODES[method], request_type="tutorial.HelloRequest",
                    response_type="tutorial.HelloResponse", requests=[{"greeting": g} for g in greetings],
                    expect=expect, timeout_ms=1000, **kw)
        md = descriptor_pool.Default().FindServiceByName(H).methods_by_name[method]
        return Plan("case", 0, call, md)
    return make


def request(text: str):
    return GetMessageClass(descriptor_pool.Default().FindMessageTypeByName("tutorial.HelloRequest"))(greeting=text)


def drive(p: Plan, incoming: list[str], client_stream: bool, metadata=()) -> tuple[list[Any], Finish]:
    """Run the script the way a server does, feeding `incoming` to its reads; returns (steps, finish)."""
    queue = [request(t) for t in incoming]
    run = Run(p.script(metadata, None if client_stream else queue[0], client_stream))
    seen, reply = [], None
    while (step := run.step(reply)) is not None:
        seen.append(step)
        reply = (queue.pop(0) if queue else None) if isinstance(step, Read) else None
    return seen, run.finish


def kinds(steps: list[Any]) -> list[str]:
    return [type(s).__name__ + (f":{s.response.reply}" if isinstance(s, Send) else "") for s in steps]


def test_half_duplex_reads_everything_then_answers(plan) -> None:
    steps, finish = drive(plan("BidiHello", ["a", "b"], ["1", "2", "3"],
                               expect={"headers": {"x-h": ["v"]}}), ["a", "b"], True)
    assert kinds(steps) == ["Read", "Read", "Read", "Headers", "Send:1", "Send:2", "Send:3"]
    assert finish.status is None and (CHECKED_TRAILER, "2") in finish.trailing
    assert not any(k == DIFFS_TRAILER for k, _ in finish.trailing)


def test_ping_pong_alternates(plan) -> None:
    steps, _ = drive(plan("BidiHello", ["a", "b"], ["A", "B"], bidi="ping_pong"), ["a", "b"], True)
    assert kinds(steps) == ["Read", "Send:A", "Read", "Send:B", "Read"]


@pytest.mark.parametrize("limit, reads", [(0, 0), (1, 1), (2, 2)])
def test_read_requests_stops_reading(plan, limit, reads) -> None:
    steps, finish = drive(plan("LotsOfGreetings", ["a", "b", "c"][:limit], ["early"],
                               server={"read_requests": limit}), ["a", "b", "c"], True)
    assert kinds(steps) == ["Read"] * reads + ["Send:early"]
    assert (CHECKED_TRAILER, str(reads)) in finish.trailing


def test_delay_and_gzip_come_first(plan) -> None:
    steps, _ = drive(plan("SayHello", ["x"], ["y"], server={"delay_ms": 250, "compression": "gzip"}), ["x"], False)
    assert steps[:2] == [Wait(0.25), Compress()] and kinds(steps)[2:] == ["Send:y"]


def test_wrong_requests_and_metadata_go_back_in_a_trailer(plan) -> None:
    p = plan("SayHello", ["want"], ["y"], metadata={"x-m": ["q"]})
    _, finish = drive(p, ["other"], False, metadata=[("x-m", "r")])
    diffs = json.loads(dict(finish.trailing)[DIFFS_TRAILER])
    assert [d["path"] for d in diffs] == ['server.metadata["x-m"]', "server.requests[0].greeting"]


def test_a_failing_status_carries_trailers_and_details(plan) -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R", "domain": "d"}]
    p = plan("LotsOfReplies", ["x"], ["one"], expect={"status": "ABORTED", "message": "stop", "details": details,
                                                      "trailers": {"x-t": ["e"]}})
    steps, finish = drive(p, ["x"], False)
    assert kinds(steps) == ["Send:one"]
    assert finish.status.code == grpc.StatusCode.ABORTED and finish.status.details == "stop"
    keys = [k for k, _ in finish.status.trailing_metadata]
    assert "x-t" in keys and CHECKED_TRAILER in keys and "grpc-status-details-bin" in keys


def test_headers_before_the_first_pong(plan) -> None:
    steps, _ = drive(plan("BidiHello", ["a"], ["A"], bidi="ping_pong", expect={"headers": {"x-h": ["v"]}}),
                     ["a"], True)
    assert isinstance(steps[0], Headers) and kinds(steps)[1:] == ["Read", "Send:A", "Read"]


# ---------------------------------------------------------------- metadata and status breadth (issue 8)

def test_a_code_past_16_goes_out_as_unknown(plan) -> None:
    """grpcio's server API takes grpc.StatusCode only: CODE_17 is sent as grpc._server sends any
    code it does not know, UNKNOWN (a grpc-go server sends 17 itself)."""
    p = plan("SayHello", ["a"], [], server={"status": "CODE_17"})
    assert p.code == grpc.StatusCode.UNKNOWN
    with pytest.raises(KeyError):  # any other name is still a case error, never UNKNOWN by accident
        plan("SayHello", ["a"], [], server={"status": "CODE_X"})


def test_details_status_contradicts_the_header(plan) -> None:
    from google.rpc import status_pb2

    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R"}
    p = plan("SayHello", ["a"], [], expect={"status": "INVALID_ARGUMENT", "message": "header"},
             server={"details_status": {"code": "NOT_FOUND", "message": "details", "details": [info]}})
    _, finish = drive(p, ["a"], False)
    assert finish.status.code == grpc.StatusCode.INVALID_ARGUMENT and finish.status.details == "header"
    sent = [v for k, v in finish.status.trailing_metadata if k == "grpc-status-details-bin"]
    assert len(sent) == 1
    st = status_pb2.Status.FromString(sent[0])
    assert (st.code, st.message, [d.type_url for d in st.details]) == (
        grpc.StatusCode.NOT_FOUND.value[0], "details", ["type.googleapis.com/google.rpc.ErrorInfo"])


def test_a_detail_of_an_unknown_type_travels_by_its_bytes(plan) -> None:
    from python_impl.contract import detail_any

    unknown = {"@type": "type.googleapis.com/nobody.Knows", "@encoded": "CAE="}
    a = detail_any(unknown)
    assert (a.type_url, a.value) == ("type.googleapis.com/nobody.Knows", b"\x08\x01")
    p = plan("SayHello", ["a"], [], expect={"status": "ABORTED", "details": [unknown]})
    assert p.details == [a]


def test_server_headers_and_metadata_replace_what_the_client_expects(plan) -> None:
    p = plan("SayHello", ["a"], ["1"], expect={"headers": {"grpc-status": []}},
             metadata={"grpc-status": ["3"]},
             server={"headers": {"grpc-status": ["3"]}, "metadata": {"grpc-status": []}})
    steps, finish = drive(p, ["a"], False, metadata=[("x-other", "v")])
    assert Headers([("grpc-status", "3")]) in steps  # sent, though the client must not see it
    assert not any(k == DIFFS_TRAILER for k, _ in finish.trailing)  # absent, as server.metadata says
    steps, finish = drive(p, ["a"], False, metadata=[("grpc-status", "3")])
    found = json.loads(next(v for k, v in finish.trailing if k == DIFFS_TRAILER))
    assert found == [{"path": 'server.metadata["grpc-status"]', "expected": "[]", "got": '["3"]'}]


@pytest.mark.parametrize("method,expect", [("LotsOfReplies", {"status": "OK"}), ("BidiHello", {"status": "ABORTED"}),
                                           ("SayHello", {"status": "OK"}),
                                           ("LotsOfReplies", {"status": "ABORTED", "status_alternatives": ["OK"]})])
def test_a_call_whose_responses_nothing_checks_is_refused(seed_gen: ModuleType, method: str, expect: dict) -> None:
    """Unpinned, five garbage responses gave no diff: the generic server and the client both refuse
    the call (as the Go engine's validateCall does), instead of answering or checking nothing."""
    from python_impl.client import run_case

    call = Call(method=f"{H}/{method}", streaming=MODES[method], request_type="tutorial.HelloRequest",
                response_type="tutorial.HelloResponse", requests=[{"greeting": "g"}], expect=expect, timeout_ms=1000)
    md = descriptor_pool.Default().FindServiceByName(H).methods_by_name[method]
    with pytest.raises(ValueError, match="expect.responses"):
        Plan("case", 0, call, md)
    case = type("Case", (), {"name": f"{H}/{method}/unpinned", "calls": [call], "channel": None})()
    result = run_case(grpc.insecure_channel("127.0.0.1:1"), seed_gen, case, "py→py", "t")  # refused before any call
    assert result.verdict == "error" and "expect.responses" in result.diffs[0].got
    Plan("case", 0, Call(**{**call.__dict__, "expect": {**expect, "responses": []}}), md)  # pinned: accepted
