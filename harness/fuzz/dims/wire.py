"""The `wire` fuzz dimension: messages the JSON case format cannot carry, sent as exact bytes.

A message is drawn valid (harness/fuzz/strategies.py), serialized, and then fields are appended to
its bytes that only the wire can hold:
- a string field carrying any bytes, invalid UTF-8 included (proto3 and editions strings must be
  refused by the parser; proto2 strings are not checked);
- unknown fields of every wire type (varint, fixed32, fixed64, length-delimited);
- a closed enum field with a number outside its declared set (the parser keeps it as an unknown
  field);
- a Timestamp or Duration outside its JSON-valid range (past year 9999, past ±10000 years, nanos out
  of range): the binary format does not check them.
Appending a field is what a newer or a foreign writer does; a singular field appended last wins,
a message field merges, a repeated one grows, as the encoding says.

The appended fields are written by protobuf itself, through one-field "twin" message types built
at runtime in a private descriptor pool (the field's number with a type of the same wire type:
bytes for a string or a message, int64 for an enum), never by hand.

What each library must make of the bytes is what Python's own parser makes of them, serialized
again (docs/cases.md, "Wire bytes and protojson"): the request side in `server.requests_wire` (the
server's library parses the client's exact bytes), the response side in `expect.responses_wire`
(the server's library parses and re-sends `server.responses_wire`, the client's library parses
that). Each receiver parses the expected bytes with its own library and compares by meaning,
unknown fields included, so a field the other library dropped, moved or changed shows. Bytes
Python's parser refuses are request-only: every gRPC server answers INTERNAL before its handler
runs, so the case expects INTERNAL and gives the server `status: OK` (a server that accepted them
answers OK, and the case fails).
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor as FD, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.unknown_fields import UnknownFieldSet
from hypothesis import assume, strategies as st

from harness.cases.model import Call, streaming_mode
from harness.cases.values import MESSAGE_BUDGET
from harness.fuzz.strategies import TIMEOUT_MS, known_types, messages

MAX_FIELD_NUMBER = 2**29 - 1
RESERVED_NUMBERS = range(19000, 20000)  # protobuf's own: no twin can declare them
MAX_APPENDED = 3        # fields appended to one message
MAX_MESSAGES = 3        # messages per direction of a streaming call

# byte strings no UTF-8 decoder accepts: a lone continuation byte, a truncated sequence, an overlong
# encoding, an encoded surrogate, a code point past U+10FFFF, 0xFF
INVALID_UTF8 = (b"\x80", b"\xc3", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff",
                b"ok\xfe")

# the JSON-valid ranges (google/protobuf/timestamp.proto, duration.proto) and values just past them
_TS_SECONDS = (-62135596801, 253402300800, -2**63, 2**63 - 1)
_DUR_SECONDS = (315576000001, -315576000001, 2**63 - 1, -2**63)
_NANOS = (-1, 1_000_000_000, 2**31 - 1, -2**31)

_WIRE_KINDS = {"varint": FD.TYPE_UINT64, "fixed32": FD.TYPE_FIXED32, "fixed64": FD.TYPE_FIXED64,
               "len": FD.TYPE_BYTES, "enum": FD.TYPE_INT64}
_POOL = descriptor_pool.DescriptorPool()


@functools.cache
def _twin(number: int, kind: str) -> type[Message]:
    """A message type with one field, `number`, of a type that has the wire type `kind` needs."""
    name = f"Twin{kind.capitalize()}{number}"
    file = descriptor_pb2.FileDescriptorProto(name=f"interop_wire/{name}.proto", package="interop_wire",
                                              syntax="proto2")
    msg = file.message_type.add(name=name)
    msg.field.add(name="f", number=number, type=_WIRE_KINDS[kind], label=FD.LABEL_OPTIONAL)
    _POOL.Add(file)
    return GetMessageClass(_POOL.FindMessageTypeByName(f"interop_wire.{name}"))


def field_bytes(number: int, kind: str, value: Any) -> bytes:
    """One field as protobuf writes it: tag and value."""
    twin = _twin(number, kind)()
    twin.f = value
    return twin.SerializeToString()


def _taken(desc: Descriptor, number: int) -> bool:
    return (number in desc.fields_by_number or number in RESERVED_NUMBERS
            or any(lo <= number < hi for lo, hi in desc.extension_ranges))


def _singular_or_list(fd: FD) -> bool:
    return fd.message_type is None or not fd.message_type.GetOptions().map_entry


_TIMES = ("google.protobuf.Timestamp", "google.protobuf.Duration")
MAX_DEPTH = 3  # a field appended inside a message field, this many levels down at most


def _holds(fd: FD) -> bool:
    """A message field a nested wire-only field can go into: length-delimited (not a group), not a
    map entry or a well-known type, no required field (merged in alone, it would lack it)."""
    t = fd.message_type
    return (fd.type == FD.TYPE_MESSAGE and _singular_or_list(fd) and not t.full_name.startswith("google.protobuf.")
            and not any(f.is_required for f in t.fields))


@st.composite
def appended(draw: Any, desc: Descriptor, depth: int = 0) -> tuple[bool, bytes]:
    """One field the case JSON cannot carry, as bytes to append to a message of type desc (inside a
    message field of it: a length-delimited field merges into the one already there); True with
    it when it is (or holds) a closed enum's undeclared number (see wire_message)."""
    strings = [f for f in desc.fields if f.type == FD.TYPE_STRING]
    closed = [f for f in desc.fields if f.type == FD.TYPE_ENUM and f.enum_type.is_closed]
    times = [f for f in desc.fields if f.type == FD.TYPE_MESSAGE and _singular_or_list(f)
             and f.message_type.full_name in _TIMES]
    nested = [f for f in desc.fields if _holds(f)] if depth < MAX_DEPTH else []
    kinds = (["unknown"] + ["string"] * bool(strings) + ["closed_enum"] * bool(closed) + ["time"] * bool(times)
             + ["nested"] * bool(nested))
    kind = draw(st.sampled_from(kinds))
    if kind == "nested":
        fd = draw(st.sampled_from(nested))
        enum, inner = draw(appended(fd.message_type, depth + 1))
        return enum, field_bytes(fd.number, "len", inner)
    if kind == "string":
        fd = draw(st.sampled_from(strings))
        value = draw(st.one_of(st.sampled_from(INVALID_UTF8), st.binary(max_size=16)))
        return False, field_bytes(fd.number, "len", value)
    if kind == "closed_enum":
        fd = draw(st.sampled_from(closed))
        declared = {v.number for v in fd.enum_type.values}
        value = draw(st.one_of(st.sampled_from([-1, 0, 4, 2**31 - 1, -2**31]), st.integers(-2**31, 2**31 - 1)))
        assume(value not in declared)
        return True, field_bytes(fd.number, "enum", value)
    if kind == "time":
        fd = draw(st.sampled_from(times))
        ts = fd.message_type.full_name == "google.protobuf.Timestamp"
        seconds = draw(st.one_of(st.sampled_from(_TS_SECONDS if ts else _DUR_SECONDS), st.integers(-2**63, 2**63 - 1)))
        nanos = draw(st.one_of(st.just(0), st.sampled_from(_NANOS), st.integers(-2**31, 2**31 - 1)))
        inner = (timestamp_pb2.Timestamp if ts else duration_pb2.Duration)(seconds=seconds, nanos=nanos)
        return False, field_bytes(fd.number, "len", inner.SerializeToString())
    edges = sorted({max((f.number for f in desc.fields), default=0) + 1, 15, 16, 2047, 2048, 18999, 20000,
                    MAX_FIELD_NUMBER})
    number = draw(st.one_of(st.sampled_from(edges), st.integers(1, MAX_FIELD_NUMBER)))
    assume(not _taken(desc, number))
    wire = draw(st.sampled_from(["varint", "fixed32", "fixed64", "len"]))
    value = {"varint": st.integers(0, 2**64 - 1), "fixed32": st.integers(0, 2**32 - 1),
             "fixed64": st.integers(0, 2**64 - 1), "len": st.binary(max_size=16)}[wire]
    return False, field_bytes(number, wire, draw(value))


@st.composite
def wire_message(draw: Any, desc: Descriptor, anys: tuple[Descriptor, ...], refusable: bool = True) -> bytes:
    """A valid message of type desc, serialized, with 0..MAX_APPENDED wire-only fields after it;
    refusable=False leaves out each appended field Python's parser would refuse (a response: the
    server must parse it to send it)."""
    data = draw(messages(desc, 0, anys)).SerializeToString()
    # Closed-enum numbers go first: each library keeps one as an unknown field, but protobuf-go
    # serializes it before the unknown fields it received earlier, Python in arrival order. The
    # order of unknown fields of different numbers carries no meaning (the same message either
    # way), so drawing it would only make a false alarm of the exact comparison.
    extras = sorted(draw(st.lists(appended(desc), max_size=MAX_APPENDED)), key=lambda e: not e[0])
    for _, extra in extras:
        if (refusable or parsed(desc, data + extra) is not None) and not replaces_closed(desc, data + extra):
            data += extra
    assume(len(data) <= MESSAGE_BUDGET)
    return data


def replaces_closed(desc: Descriptor, data: bytes) -> bool:
    """True when data, parsed as a desc, has a singular closed enum field that received an
    undeclared number besides another value (declared, or undeclared too). The libraries measurably
    differ there: protobuf-go keeps only the last occurrence (it clears the field, or drops the
    earlier unknown number), upb keeps them all. That is a known divergence with its own fixed cases
    (tests/data/wire_cases.yaml, fixed_closed_enum_*), not drawn: a known divergence wide enough to
    excuse it in drawn examples would excuse any lost field."""
    try:
        msg = GetMessageClass(desc).FromString(data)
    except DecodeError:
        return False
    return _replaces(msg)


def _replaces(msg: Message) -> bool:
    unknown = [f.field_number for f in UnknownFieldSet(msg)]
    for fd in msg.DESCRIPTOR.fields:
        if fd.type == FD.TYPE_ENUM and fd.enum_type.is_closed and not fd.is_repeated:
            n = unknown.count(fd.number)
            if n > 1 or n and msg.HasField(fd.name):
                return True
    for fd, value in msg.ListFields():
        if fd.cpp_type != FD.CPPTYPE_MESSAGE:
            continue
        is_map = fd.message_type.GetOptions().map_entry
        items = value.values() if is_map else value if fd.is_repeated else [value]
        if any(isinstance(v, Message) and _replaces(v) for v in items):
            return True
    return False


def parsed(desc: Descriptor, data: bytes) -> bytes | None:
    """What Python's library makes of data as a desc, serialized again (deterministic); None when
    its parser refuses the bytes."""
    try:
        return GetMessageClass(desc).FromString(data).SerializeToString(deterministic=True)
    except DecodeError:
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@st.composite
def calls(draw: Any, m: MethodDescriptor) -> Call:
    """One call whose requests and responses travel as exact bytes (requests_wire, server.responses_wire)."""
    mode = streaming_mode(m)
    anys = known_types(m.containing_service.file)
    count = st.integers(1, MAX_MESSAGES) if m.client_streaming else st.just(1)
    requests = [draw(wire_message(m.input_type, anys)) for _ in range(draw(count))]
    seen = [parsed(m.input_type, r) for r in requests]
    kw: dict[str, Any] = {"bidi": "half_duplex"} if mode == "bidi" else {}
    if any(s is None for s in seen):
        # refused by the parser: only the first request, alone, so that every server refuses it
        # before its handler reads anything (a stream would have read the valid ones first)
        refused = next(r for r, s in zip(requests, seen) if s is None)
        return Call(method=f"{m.containing_service.full_name}/{m.name}", streaming=mode,
                    request_type=m.input_type.full_name, response_type=m.output_type.full_name,
                    requests=[], requests_wire=[_b64(refused)],
                    expect={"status": "INTERNAL", "responses_wire": []}, server={"status": "OK"},
                    timeout_ms=TIMEOUT_MS, checked_by_server=True, **kw)
    n = draw(st.integers(0, MAX_MESSAGES)) if m.server_streaming else 1
    responses = [draw(wire_message(m.output_type, anys, refusable=False)) for _ in range(n)]
    return Call(method=f"{m.containing_service.full_name}/{m.name}", streaming=mode,
                request_type=m.input_type.full_name, response_type=m.output_type.full_name,
                requests=[], requests_wire=[_b64(r) for r in requests],
                expect={"status": "OK", "responses_wire": [_b64(parsed(m.output_type, r)) for r in responses]},
                server={"requests_wire": [_b64(s) for s in seen], "responses_wire": [_b64(r) for r in responses]},
                timeout_ms=TIMEOUT_MS, checked_by_server=True, **kw)
