"""The wire observer (harness/engines/wire.py) and the checks made with it (harness/run/observed.py):
compression that a grpcio peer cannot see is seen on the wire, and a peer that does not compress fails."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import grpc
import pytest

from harness.cases import generate
from harness.engines.wire import WireObserver
from harness.protoset import discover
from harness.run import observed
from harness.run.runner import _for_catalogue
from python_impl.client import run_case
from python_impl.contract import CHANNEL_OPTIONS
from python_impl.server import serve

REPO = Path(__file__).resolve().parent.parent
# The unary gzip cases: once per mode per set (generate.library_cases), on the set's first unary method
UNARY = "tutorial.HelloService/SayHello/protocol/"


@pytest.fixture(scope="module")
def gzip_cases(seed_gen) -> dict:
    names = {UNARY + "gzip_request", UNARY + "gzip_response"}
    cases = [c for c in generate.generate(discover(REPO / "protos")) if c.name in names]
    assert len(cases) == 2, "the unary gzip cases moved: update UNARY"
    return {c.name: _for_catalogue(c) for c in cases}


def _served(gen, catalogue: list) -> tuple[grpc.Server, str]:
    server, port = serve(gen, "127.0.0.1:0", {"cases": [c.to_json() for c in catalogue]})
    return server, f"127.0.0.1:{port}"


def _through_observer(gen, address: str, client_case, checked_case) -> list:
    with WireObserver(address) as observer:
        with grpc.insecure_channel(observer.address, options=CHANNEL_OPTIONS) as ch:
            result = run_case(ch, gen, client_case, "py→py", "test")
        assert result.verdict == "pass", result.diffs
        return observed.compression_diffs(checked_case, "py", "py", observer)


def test_compression_a_grpcio_peer_cannot_see_is_seen_on_the_wire(seed_gen, gzip_cases) -> None:
    server, address = _served(seed_gen, list(gzip_cases.values()))
    try:
        for case in gzip_cases.values():
            assert _through_observer(seed_gen, address, case, case) == [], case.name
    finally:
        server.stop(None)


def test_a_server_that_does_not_compress_fails(seed_gen, gzip_cases) -> None:
    case = gzip_cases[UNARY + "gzip_response"]
    plain = dataclasses.replace(case, calls=[dataclasses.replace(case.calls[0], server={})])
    server, address = _served(seed_gen, [plain])  # the server's catalogue leaves compression out
    try:
        diffs = _through_observer(seed_gen, address, case, case)
    finally:
        server.stop(None)
    assert [(d.path, d.expected, d.got) for d in diffs] == [
        ("compression", "gzip", "identity (messages compressed: 0 of 1)")]


def test_a_client_that_does_not_compress_fails(seed_gen, gzip_cases) -> None:
    case = gzip_cases[UNARY + "gzip_request"]
    plain = dataclasses.replace(case, calls=[dataclasses.replace(case.calls[0], compression=None)])
    server, address = _served(seed_gen, [case])
    try:
        diffs = _through_observer(seed_gen, address, plain, case)  # the client leaves compression out
    finally:
        server.stop(None)
    assert [(d.path, d.got) for d in diffs] == [("server.compression", "identity (messages compressed: 0 of 1)")]


def test_a_call_the_observer_never_saw_is_not_a_pass(seed_gen, gzip_cases) -> None:
    case = gzip_cases[UNARY + "gzip_request"]
    with WireObserver("127.0.0.1:1") as observer:  # nothing went through it
        diffs = observed.compression_diffs(case, "go", "py", observer)
    assert [(d.path, d.got.startswith("<not observed")) for d in diffs] == [("server.compression", True)]


def test_only_python_receivers_are_observed(gzip_cases) -> None:
    cases = list(gzip_cases.values())
    assert observed.needs_observer("go", "py", cases) and observed.needs_observer("py", "go", cases)
    assert not observed.needs_observer("go", "go", cases)
    request_only = [gzip_cases[UNARY + "gzip_request"]]
    assert not observed.needs_observer("py", "go", request_only)  # the Go server checks requests itself


def test_a_parse_failure_on_the_response_side_is_not_observed_never_a_pass(seed_gen, gzip_cases) -> None:
    """The server side's bytes break the parser after the call's headers were seen: the call reads
    as not observed, not as "no response message, nothing to check"."""
    from hpack import Encoder
    from hyperframe.frame import HeadersFrame

    from harness.engines import wire

    case = gzip_cases[UNARY + "gzip_response"]
    observer = WireObserver("127.0.0.1:1")
    conn = wire._Connection(observer)
    client, server = wire._Direction(conn, True), wire._Direction(conn, False)
    block = Encoder().encode([(":method", "POST"), (":path", "/shapes.v1.Shapes/Unary"),
                              ("interop-case", case.name), ("interop-call", "0")])
    client.feed(wire.PREFACE + HeadersFrame(1, data=block, flags=["END_HEADERS"]).serialize())
    server.feed(bytes.fromhex("00000501040000000" + "1ffffffffff"))  # a header block HPACK cannot decode
    assert observer.errors and f"in {case.name} call 0, stream 1" in observer.errors[0]  # names the culprit
    diffs = observed.compression_diffs(case, "py", "py", observer)
    assert [(d.path, d.got.startswith("<not observed: server side")) for d in diffs] == [("compression", True)]


def test_the_observer_stops_listening_on_exit() -> None:
    import socket
    import threading

    with WireObserver("127.0.0.1:1") as observer:
        port = int(observer.address.rsplit(":", 1)[1])
    assert not any(t.name == "wire-observer" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_one_calls_oversized_trailer_stays_with_that_call(seed_gen, gzip_cases) -> None:
    """A 70 KiB trailer (past hpack's 64 KiB default) on one call: the next gzip call on the same
    connection is still observed, not `<not observed: OversizedHeaderListError>`."""
    from hpack import Encoder
    from hyperframe.frame import DataFrame, HeadersFrame

    from harness.engines import wire

    case = gzip_cases[UNARY + "gzip_request"]
    observer = WireObserver("127.0.0.1:1")
    conn = wire._Connection(observer)
    client, server = wire._Direction(conn, True), wire._Direction(conn, False)
    to_server, to_client = Encoder(), Encoder()

    def request(stream: int, name: str) -> bytes:
        block = to_server.encode([(":method", "POST"), (":path", "/shapes.v1.Shapes/Unary"), ("grpc-encoding", "gzip"),
                                  ("interop-case", name), ("interop-call", "0")])
        return (HeadersFrame(stream, data=block, flags=["END_HEADERS"]).serialize()
                + DataFrame(stream, data=b"\x01\x00\x00\x00\x00", flags=["END_STREAM"]).serialize())

    client.feed(wire.PREFACE + request(1, "a.S/M/protocol/big_trailer"))
    trailer = to_client.encode([("grpc-status", "0"), ("x-big", "x" * 70 * 1024)])
    frames, rest = [], trailer
    while rest:  # split into frames of at most 16 KiB, as a peer would
        chunk, rest = rest[:16384], rest[16384:]
        kind = HeadersFrame if not frames else wire.ContinuationFrame
        frames.append(kind(1, data=chunk, flags=[] if rest else ["END_HEADERS"]).serialize())
    server.feed(b"".join(frames))
    client.feed(request(3, case.name))
    assert observer.errors == []
    assert observed.compression_diffs(case, "go", "py", observer) == []


@pytest.mark.parametrize("flag,payload,failing", [
    (0, b"\x0a\x82\x10" + b"x" * 2050, True),   # gzip declared, flag 0, and gzip shrinks it: a fault
    (1, b"\x1f\x8b" + b"\x00" * 30, False),     # compressed
    (0, b"".join(hashlib.sha256(bytes([i])).digest() for i in range(20)), False),  # gzip would not shrink it:
    # a library may send such a message as it is (gRPC Core does)
    (0, b"\x08\x01", False),                    # too small to shrink
])
def test_each_message_must_arrive_compressed_under_gzip(gzip_cases, flag: int, payload: bytes, failing: bool) -> None:
    """The header alone proved nothing: a peer that declares gzip and sends every message with its
    compressed flag at 0 passed. Each message's flag is read on the wire (the payload split over
    two DATA frames, as a peer may send it)."""
    from hpack import Encoder
    from hyperframe.frame import DataFrame, HeadersFrame

    from harness.engines import wire

    case = gzip_cases[UNARY + "gzip_response"]
    observer = WireObserver("127.0.0.1:1")
    conn = wire._Connection(observer)
    client, server = wire._Direction(conn, True), wire._Direction(conn, False)
    block = Encoder().encode([(":method", "POST"), (":path", "/shapes.v1.Shapes/Unary"),
                              ("interop-case", case.name), ("interop-call", "0")])
    client.feed(wire.PREFACE + HeadersFrame(1, data=block, flags=["END_HEADERS"]).serialize())
    headers = Encoder().encode([(":status", "200"), ("grpc-encoding", "gzip")])
    message = bytes([flag]) + len(payload).to_bytes(4, "big") + payload
    half = len(message) // 2
    server.feed(HeadersFrame(1, data=headers, flags=["END_HEADERS"]).serialize()
                + DataFrame(1, data=message[:half]).serialize() + DataFrame(1, data=message[half:]).serialize())
    diffs = observed.compression_diffs(case, "py", "py", observer)
    if not failing:
        assert diffs == []
        return
    assert [(d.path, d.expected, d.got) for d in diffs] == [
        ("compression", "gzip", f"gzip declared, but 1 of 1 messages sent uncompressed (compressed flag 0), first "
                                f"message [0] of {len(payload)} bytes, which gzip shrinks")]
