"""What a grpcio client hides about metadata, checked on the wire (harness/run/observed.py, issue 17):
a call with metadata gRPC forbids is never sent, and the server of a call carrying grpc-status as
metadata confirms it did not receive it, even when the grpcio client loses the trailers saying so.
Each known divergence that claims it now depends on it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest
from hpack import Encoder
from hyperframe.frame import DataFrame, HeadersFrame

from harness.cases import generate
from harness.engines import wire
from harness.engines.wire import WireObserver
from harness.protoset import discover
from harness.run import divergences, observed
from harness.run.runner import _for_catalogue
from python_impl.client import run_case, run_case_aio
from python_impl.contract import CHANNEL_OPTIONS, Diff, Result
from python_impl.server import serve

REPO = Path(__file__).resolve().parent.parent
PRE = "tutorial.HelloService/SayHello/protocol/"
BUILTIN = divergences.load(divergences.builtin_files(), builtin=True)


@pytest.fixture(scope="module")
def cases(seed_gen) -> dict:
    wanted = {PRE + p for p in ("metadata_reserved_grpc_keys", "metadata_uppercase_key", "metadata_non_ascii_value")}
    found = {c.name: _for_catalogue(c) for c in generate.generate(discover(REPO / "protos")) if c.name in wanted}
    assert set(found) == wanted
    return found


def _run(gen, case, flavour: str) -> tuple[Result, list]:
    """The case from a Python client of `flavour` to a Python server, through the observer."""
    server, port = serve(gen, "127.0.0.1:0", {"cases": [case.to_json()]})
    try:
        with WireObserver(f"127.0.0.1:{port}") as observer:
            if flavour == "py":
                with grpc.insecure_channel(observer.address, options=CHANNEL_OPTIONS) as ch:
                    result = run_case(ch, gen, case, "py→py", "test")
            else:
                async def main() -> Result:
                    async with grpc.aio.insecure_channel(observer.address, options=CHANNEL_OPTIONS) as ch:
                        return await run_case_aio(ch, gen, case, "pyaio→pyaio", "test")
                result = asyncio.run(main())
            return result, observed.wire_diffs(case, flavour, "py", observer, result.diffs)
    finally:
        server.stop(None)


def _apply(result: Result, slug: str, extra: list) -> str:
    r = Result(result.case, result.direction, "fail", [*result.diffs, *extra])
    return divergences.apply(BUILTIN, r, slug, "unary", True).verdict


@pytest.mark.parametrize("flavour", ["py", "pyaio"])
def test_grpcio_clients_lose_the_answer_but_the_server_confirms_on_the_wire(seed_gen, cases, flavour: str) -> None:
    result, found = _run(seed_gen, cases[PRE + "metadata_reserved_grpc_keys"], flavour)
    assert found == []  # confirmed, no findings: grpc-status never reached the server as metadata
    assert _apply(result, f"{flavour}-py", found) == "divergence"
    # what the grpcio client loses is the response only: the trailers (the server's confirmation,
    # checked by the client itself) arrive, as the divergence's reason says
    assert [d.path for d in result.diffs] == ["responses.count", "responses[0]"]


@pytest.mark.parametrize("pattern", ["metadata_uppercase_key", "metadata_non_ascii_value"])
def test_grpc_aio_sends_nothing_with_forbidden_metadata(seed_gen, cases, pattern: str) -> None:
    case = cases[PRE + pattern]
    assert observed.forbidden_metadata(case.calls[0])
    result, found = _run(seed_gen, case, "pyaio")
    assert found == []
    assert _apply(result, "pyaio-py", found) == "divergence"


def _observe(case_name: str, server_trailers: list[tuple[str, str]] | None,
             trailers_only: bool = False, responses: int = 1) -> WireObserver:
    """An observer that saw one call of case_name, and the server's trailers when given (in the
    response's only header block when trailers_only, else after `responses` messages)."""
    observer = WireObserver("127.0.0.1:1")
    conn = wire._Connection(observer)
    client, server = wire._Direction(conn, True), wire._Direction(conn, False)
    client.feed(wire.PREFACE + HeadersFrame(1, data=Encoder().encode(
        [(":method", "POST"), (":path", "/tutorial.HelloService/SayHello"), ("interop-case", case_name),
         ("interop-call", "0")]), flags=["END_HEADERS"]).serialize())
    if server_trailers is not None and trailers_only:
        server.feed(HeadersFrame(1, data=Encoder().encode([(":status", "200"), ("grpc-status", "0"), *server_trailers]),
                                 flags=["END_HEADERS", "END_STREAM"]).serialize())
    elif server_trailers is not None:
        server.feed(HeadersFrame(1, data=Encoder().encode([(":status", "200")]), flags=["END_HEADERS"]).serialize()
                    + b"".join(DataFrame(1, data=b"\x00\x00\x00\x00\x00").serialize() for _ in range(responses))
                    + HeadersFrame(1, data=Encoder().encode([("grpc-status", "0"), *server_trailers]),
                                   flags=["END_HEADERS", "END_STREAM"]).serialize())
    return observer


LOST = [Diff(0, "responses.count", "1", "0"), Diff(0, "responses[0]", '{reply: "x"}', "<missing>")]
RECEIVED = json.dumps([{"path": 'server.metadata["grpc-status"]', "expected": "[]", "got": '["3"]'}])


@pytest.mark.parametrize("trailers, want", [
    # a server that received grpc-status as metadata says so in trailers the client never saw
    ([("interop-server-checked", "1"), ("interop-server-status", "OK"), ("interop-server-diffs-bin", RECEIVED)],
     [('server.metadata["grpc-status"]', "[]", '["3"]')]),
    # a server that never confirmed the call (it did not answer, or did not check)
    ([], [("wire.server.checked", "present", "missing")]),
    # a server that confirmed the call but answered it otherwise than the case tells it
    ([("interop-server-checked", "1"), ("interop-server-status", "INTERNAL")],
     [("wire.server.status", "OK", "INTERNAL")]),
    ([("interop-server-checked", "1")], [("wire.server.status", "OK", "missing: []")]),
])
def test_the_reserved_keys_divergence_no_longer_hides_the_server(cases, trailers, want) -> None:
    case = cases[PRE + "metadata_reserved_grpc_keys"]
    old = Result(case.name, "py→go", "fail", list(LOST))  # all a grpcio client reported before
    assert divergences.apply(BUILTIN, old, "py-go", "unary", True).verdict == "divergence"
    found = observed.wire_diffs(case, "py", "go", _observe(case.name, trailers), list(LOST))
    assert [(d.path, d.expected, d.got) for d in found] == want
    assert _apply(Result(case.name, "py→go", "fail", list(LOST)), "py-go", found) == "fail"


@pytest.mark.parametrize("pattern", ["metadata_uppercase_key", "metadata_non_ascii_value"])
def test_the_aio_invalid_metadata_divergence_needs_nothing_sent(cases, pattern: str) -> None:
    case = cases[PRE + pattern]
    # grpc.aio raises from a unary call: the raise is the call's outcome (python_impl/client.py)
    batch = [Diff(0, "status.code", "INTERNAL", 'raised ExecuteBatchError: Failed "execute_batch": (...)')]
    assert _apply(Result(case.name, "pyaio→go", "fail", batch), "pyaio-go", []) == "divergence"
    sent = observed.wire_diffs(case, "pyaio", "go", _observe(case.name, None), batch)  # a client that sent it
    assert [d.path for d in sent] == ["wire.request"]
    assert _apply(Result(case.name, "pyaio→go", "fail", batch), "pyaio-go", sent) == "fail"
    # never observed at all (a parse failure) is not "nothing sent"
    broken = WireObserver("127.0.0.1:1")
    broken.errors.append("client side: HPACKDecodingError")
    assert [d.got.startswith("<not observed") for d in observed.wire_diffs(case, "pyaio", "go", broken, [])] == [True]


def test_the_checks_run_for_python_clients_only(cases) -> None:
    all_three = list(cases.values())
    assert observed.needs_observer("py", "go", all_three) and observed.needs_observer("pyaio", "py", all_three)
    assert not observed.needs_observer("go", "go", all_three)



def test_a_trailers_only_answer_carries_the_confirmation(cases) -> None:
    """A server that answers with one header block (:status and grpc-status together) still
    confirms on the wire."""
    case = cases[PRE + "metadata_reserved_grpc_keys"]
    observer = _observe(case.name, [("interop-server-checked", "1"), ("interop-server-status", "OK")],
                        trailers_only=True)
    # (the case's response is missing from a trailers-only answer: the confirmation itself is read)
    assert [d.path for d in observed.wire_diffs(case, "py", "go", observer, [])] == ["wire.server.responses"]
    assert [d.path for d in observed.wire_diffs(case, "py", "go", _observe(case.name, [], trailers_only=True), [])] == [
        "wire.server.checked", "wire.server.responses"]


def test_the_server_answered_with_the_cases_response_on_the_wire(cases) -> None:
    """The reserved keys divergence excuses the response the grpcio client lost: the server must
    have sent it (one message), as its reason says."""
    case = cases[PRE + "metadata_reserved_grpc_keys"]
    ok = [("interop-server-checked", "1"), ("interop-server-status", "OK")]
    assert observed.wire_diffs(case, "py", "go", _observe(case.name, ok), list(LOST)) == []
    found = observed.wire_diffs(case, "py", "go", _observe(case.name, ok, responses=0), list(LOST))
    assert [(d.path, d.expected, d.got) for d in found] == [("wire.server.responses", "1 messages", "0 messages")]
    assert _apply(Result(case.name, "py→go", "fail", list(LOST)), "py-go", found) == "fail"


# ---- codes past 16: grpcio's clients read UNKNOWN, the wire shows the number that came

def _code_case(code: int):  # noqa: ANN202
    name = f"{PRE}code_{code}"
    return next(_for_catalogue(c) for c in generate.generate(discover(REPO / "protos")) if c.name == name)


def _answer(case_name: str, grpc_status: str) -> WireObserver:
    """An observer that saw one call of case_name answered with grpc-status `grpc_status`, the
    server confirming CODE_17 (a trailers-only answer)."""
    observer = WireObserver("127.0.0.1:1")
    conn = wire._Connection(observer)
    client, server = wire._Direction(conn, True), wire._Direction(conn, False)
    client.feed(wire.PREFACE + HeadersFrame(1, data=Encoder().encode(
        [(":method", "POST"), ("interop-case", case_name), ("interop-call", "0")]), flags=["END_HEADERS"]).serialize())
    server.feed(HeadersFrame(1, data=Encoder().encode(
        [(":status", "200"), ("grpc-status", grpc_status), ("interop-server-checked", "1"),
         ("interop-server-status", "CODE_17")]), flags=["END_HEADERS", "END_STREAM"]).serialize())
    return observer


def test_a_code_clamped_on_the_way_fails_with_a_grpcio_client(seed_gen) -> None:
    """A Go server that clamps CODE_17 to UNKNOWN after its engine confirmed 17: a grpcio client
    reads UNKNOWN either way, so py→go passed; the wire shows the 2 that came."""
    case = _code_case(17)
    assert observed.needs_observer("py", "go", [case]) and not observed.needs_observer("go", "go", [case])
    assert observed.wire_diffs(case, "py", "go", _answer(case.name, "17"), []) == []
    found = observed.wire_diffs(case, "pyaio", "go", _answer(case.name, "2"), [])
    assert [(d.path, d.expected, d.got) for d in found] == [("wire.status.code", "17", "2 (UNKNOWN)")]
    assert _apply(Result(case.name, "pyaio→go", "fail", []), "pyaio-go", found) == "fail"
    # the grpcio server's own UNKNOWN is the known divergence only with its confirmation saying so
    confirmed_unknown = [Diff(0, "server.status", "CODE_17", "UNKNOWN")]
    assert _apply(Result(case.name, "py→py", "fail", confirmed_unknown), "py-py", found) == "divergence"
    assert _apply(Result(case.name, "py→py", "fail", []), "py-py", found) == "fail"
    # another number that starts alike is no grpcio server's UNKNOWN
    other = observed.wire_diffs(case, "py", "py", _answer(case.name, "23"), [])
    assert [(d.path, d.got) for d in other] == [("wire.status.code", "23 (CODE_23)")]
    assert _apply(Result(case.name, "py→py", "fail", list(confirmed_unknown)), "py-py", other) == "fail"


@pytest.mark.parametrize("flavour", ["py", "pyaio"])
def test_a_grpcio_server_sends_2_for_a_code_past_16(seed_gen, flavour: str) -> None:
    result, found = _run(seed_gen, _code_case(99), flavour)
    assert [(d.path, d.expected, d.got) for d in found] == [("wire.status.code", "99", "2 (UNKNOWN)")]
    assert _apply(result, f"{flavour}-py", found) == "divergence"
