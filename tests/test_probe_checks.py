"""The probe's check functions on outcomes made by hand: what the planted-bug sample (test_probe.py)
cannot plant through grpcio's server API (a status code above 16, Go and Python decoding the same
bytes differently), and the edges of each rule. Pure functions: no server."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pool

from harness.probe import checks
from harness.probe.schema import Schema

DATA = Path(__file__).parent / "data" / "probe_sample"
METHOD = "probe.sample.Sample/Echo"


@pytest.fixture(scope="module")
def pool() -> Any:
    return Schema.from_protos(DATA / "protos").pool


def _outcome(code: int = 0, responses: tuple[bytes, ...] = (b"",), **kw: Any) -> dict[str, Any]:
    out = {"id": "c1", "code": code, "message": "", "details": None,
           "responses": [base64.b64encode(r).decode() for r in responses], "headers": {}, "trailers": {},
           "elapsed_ms": 5.0, "error": None, "decoded": None}
    out.update(kw)
    return out


def _x(pool: Any, **outcomes: dict[str, Any]) -> checks.Exchange:
    call = {"id": "c1", "method": METHOD, "streaming": "unary", "requests": [""], "metadata": {},
            "timeout_ms": 1000, "cancel_after_responses": None}
    return checks.Exchange(METHOD, call, outcomes, pool)


def test_a_status_code_above_16_is_a_protocol_finding(pool: Any) -> None:
    assert "outside 0-16" in checks.protocol_shape(_x(pool, go=_outcome(17, ())))
    assert checks.protocol_shape(_x(pool, go=_outcome(16, ()))) is None


@pytest.mark.parametrize("trailers, problem", [
    ({"x-big": ["a" * 8200]}, "over grpcio's default limit"),
    ({"grpc-mine": ["v"]}, "reserved"),
    ({"X-Upper": ["v"]}, "not a valid gRPC metadata key"),
    ({"x-ctl": ["a\x01"]}, "not well-formed"),
])
def test_malformed_or_oversized_metadata(pool: Any, trailers: dict[str, list[str]], problem: str) -> None:
    assert problem in checks.protocol_shape(_x(pool, py=_outcome(trailers=trailers)))


def test_a_status_message_counts_as_it_travels_percent_encoded(pool: Any) -> None:
    # 3000 characters, 18000 bytes on the wire (each of é's two UTF-8 bytes is %XX): over 8 KiB
    assert "over grpcio's default limit" in checks.protocol_shape(_x(pool, go=_outcome(3, (), message="é" * 3000)))
    assert checks.protocol_shape(_x(pool, go=_outcome(3, (), message="e" * 3000))) is None


def test_well_formed_metadata_passes(pool: Any) -> None:
    ok = {"x-a": ["printable value"], "x-b-bin": [base64.b64encode(b"\x00\xff").decode()],
          "content-type": ["application/grpc"]}
    assert checks.protocol_shape(_x(pool, go=_outcome(headers=ok, trailers={"x-c": ["1"]}))) is None
    # a server's retry pushback (gRFC A6) is gRPC's own key, not a misuse of the reserved prefix
    assert checks.protocol_shape(_x(pool, go=_outcome(14, (), trailers={"grpc-retry-pushback-ms": ["100"]}))) is None


def test_go_and_python_reading_the_same_bytes_differently(pool: Any) -> None:
    raw = bytes.fromhex("0807")  # n = 7
    same = _outcome(responses=(raw,), decoded=[{"json": {"n": 7}, "unknown_fields": False}])
    other = _outcome(responses=(raw,), decoded=[{"json": {"n": 8}, "unknown_fields": False}])
    assert checks.schema_conforms(_x(pool, go=same)) is None
    assert "decodes differently in Go" in checks.schema_conforms(_x(pool, go=other))


def test_clients_agree_compares_messages_not_bytes(pool: Any) -> None:
    # the same message in two encodings (field order): equal; codes and counts only when non-deterministic
    a, b = bytes.fromhex("08071201" + "78"), bytes.fromhex("1201" + "78" + "0807")
    assert checks.clients_agree(_x(pool, py=_outcome(responses=(a,)), go=_outcome(responses=(b,)))) is None
    differ = _x(pool, py=_outcome(responses=(bytes.fromhex("0807"),)), go=_outcome(responses=(bytes.fromhex("0808"),)))
    assert "same codes and counts" in checks.clients_agree(differ)
    differ.nondeterministic = True
    assert checks.clients_agree(differ) is None


def test_deadlines_and_cancels(pool: Any) -> None:
    assert "had not ended 1000 ms" in checks.calls_end(_x(pool, py=_outcome(4, (), elapsed_ms=1001.0)))
    assert "not honoured" in checks.calls_end(_x(pool, py=_outcome(0, elapsed_ms=2500.0)))
    x = _x(pool, py=_outcome(1, (b"", b"")))
    x.call["cancel_after_responses"] = 1
    assert "did not end CANCELLED" in checks.calls_end(x)
    x.outcomes["py"] = _outcome(0, (b"",))  # the server had ended the call first: fine
    assert checks.calls_end(x) is None


def test_allow_error(pool: Any) -> None:
    x = _x(pool, py=_outcome(13, ()))
    assert "--allow-error" in checks.not_a_server_error(x)
    x.allowed_errors = checks.allowed_for(METHOD, checks.parse_allow(["probe.sample.*=INTERNAL"]))
    assert checks.not_a_server_error(x) is None
    with pytest.raises(ValueError, match="METHOD=CODE"):
        checks.parse_allow(["probe.sample.Sample/Echo"])


def test_a_server_error_only_one_library_reports_is_left_to_clients_agree(pool: Any) -> None:
    # grpc-go's INTERNAL for details that contradict the status: a disagreement, not a server error
    x = _x(pool, py=_outcome(3, ()), go=_outcome(13, (), message="grpc-status-details-bin mismatch"))
    assert checks.not_a_server_error(x) is None
    assert "different outcomes" in checks.clients_agree(x)
    assert "seen by py, go" in checks.not_a_server_error(_x(pool, py=_outcome(13, ()), go=_outcome(13, ())))


def test_float32_spellings_are_not_a_decode_difference(pool: Any) -> None:
    # FLT_MAX: protojson writes 3.4028235e+38, json_format another spelling it cannot even parse back
    raw = bytes.fromhex("1d" + "ffff7f7f")  # ratio = FLT_MAX
    go = _outcome(responses=(raw,), decoded=[{"json": {"ratio": 3.4028235e+38}, "unknown_fields": False}])
    assert checks.schema_conforms(_x(pool, go=go)) is None


def test_well_known_types_are_drawn_in_the_probes_own_pool() -> None:
    # the probe's schema lives in a pool of its own; the fuzz strategies build well-known types with the
    # runtime's classes, which a field of that pool refuses (CopyFrom) unless converted
    from hypothesis import given, settings

    from harness.fuzz.strategies import messages

    desc = Schema.from_protos(Path(__file__).parent.parent / "protos").pool.FindMessageTypeByName("shapes.v1.WellKnown")
    assert desc.file.pool is not descriptor_pool.Default()
    seen: list[bytes] = []

    @settings(max_examples=15, database=None, deadline=None)
    @given(messages(desc))
    def draw(msg: Any) -> None:
        seen.append(msg.SerializeToString())

    draw()
    assert len(seen) == 15
