"""Hypothesis strategies built from the descriptors: messages, then whole calls (a case's data).

Like Hypothesis' own `from_type`/`builds`, the strategy of a message type is derived from its
descriptor, field by field, so any proto set is fuzzed with no code. A field is drawn as "unset" or a
value (unset shrinks first), so a shrunk example keeps only the fields its failure needs.

What is generated, and why:
- integers over their whole range, with the range's edges (min, max, 0, ±1) drawn explicitly;
- `double` over all floats (NaN, ±inf, -0.0, subnormals); `float` over float32 values (width=32),
  so the expected value is exactly what both languages hold. NaN is generated because both engines'
  comparisons treat NaN as equal to NaN (python_impl/compare.py floats_equal, the Go engine alike);
- strings: any Unicode scalar values (NUL, U+2028, non-BMP...). Unpaired surrogates are NOT values:
  protobuf strings must be valid UTF-8, Python's runtime refuses to serialize a `str` holding one and
  protobuf-go refuses to marshal invalid UTF-8 (proto3), and the case JSON cannot carry one to the Go
  peer unchanged (encoding/json turns it into U+FFFD). Sending one is an error path of each language's
  own serializer, before any gRPC, not an interop value; so they are left out;
- bytes, repeated fields (packed and not, as the proto says), maps with every key type, oneofs
  (one member or none), proto3 `optional` and proto2 presence, required fields always set;
- message fields recursively, to MAX_DEPTH levels (deeper only where a required field demands it);
- open enums: known numbers and any other int32 (unknown numbers must survive); closed enums: known
  numbers only (an unknown number on a closed enum becomes an unknown field, which the case JSON
  cannot express, see below);
- extensions of the type (proto2 / editions), at every depth;
- the well-known types within their JSON rules (Timestamp and Duration ranges, finite Struct numbers,
  FieldMask paths that survive the camelCase round trip); an Any carries a message of a type the
  service's file reaches (known_types), drawn like any other: the Go peer knows no other type.
- Unknown fields are not generated: a case is protobuf JSON, which has no form for them, so neither
  engine could be told to send or expect one. `grpc-interop compat` sends them on the wire (an old
  reader of a new writer's message).

Sizes are small (a few elements per list, short strings) so an example stays far inside
values.MESSAGE_BUDGET; an example over it is rejected (hypothesis.assume), never sent.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterator

from google.protobuf import any_pb2, duration_pb2, empty_pb2, struct_pb2, timestamp_pb2, wrappers_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor as FD, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import assume, strategies as st

from harness.cases.model import STATUS_CODES, Call, streaming_mode
from harness.cases.values import FLOAT_MAX, FLOAT_TINY, INT_RANGE, MESSAGE_BUDGET, to_json
from harness.protoset.runtime import GO_LINKED, GRPC_FILES, is_well_known

MAX_DEPTH = 3          # message fields nest at most this deep (recursive types stop here)
MAX_ELEMENTS = (4, 2, 1, 1)  # elements of a repeated field or map, by depth
MAX_TEXT = 24          # characters of a drawn string (edge strings may be longer)
MAX_BYTES = 32
MAX_MESSAGES = 5       # messages per direction of a streaming call
TIMEOUT_MS = 10_000

EDGE_STRINGS = ("", "\x00", "a\x00b", "ü€😀", "\u2028\u2029", "\ufeff", "\U0010ffff", "\t\r\n", "x" * 300)
EDGE_BYTES = (b"", b"\x00", bytes(range(256)), b"\xff\xfe", b"\xc3\x28")  # the last: invalid UTF-8, fine in bytes


def _int_edges(lo: int, hi: int) -> list[int]:
    return sorted({lo, hi, 0, 1, max(lo, -1), hi - 1, lo + 1})


def scalar(fd: FD) -> st.SearchStrategy[Any]:
    """Any value of one scalar field (or one element of a repeated one), edges included."""
    t = fd.type
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t == FD.TYPE_STRING:
        return st.one_of(st.text(max_size=MAX_TEXT), st.sampled_from(EDGE_STRINGS))
    if t == FD.TYPE_BYTES:
        return st.one_of(st.binary(max_size=MAX_BYTES), st.sampled_from(EDGE_BYTES))
    if t == FD.TYPE_ENUM:
        known = st.sampled_from([v.number for v in fd.enum_type.values])
        if fd.enum_type.is_closed:
            return known
        return st.one_of(known, st.integers(-2**31, 2**31 - 1))  # open: unknown numbers are values
    if t in FLOAT_MAX:
        big, tiny = FLOAT_MAX[t], FLOAT_TINY[t]
        edges = [0.0, -0.0, math.inf, -math.inf, math.nan, big, -big, tiny, -tiny]
        width = 32 if t == FD.TYPE_FLOAT else 64
        return st.one_of(st.floats(width=width), st.sampled_from(edges))
    lo, hi = INT_RANGE[t]
    return st.one_of(st.integers(lo, hi), st.sampled_from(_int_edges(lo, hi)))


def map_key(fd: FD) -> st.SearchStrategy[Any]:
    if fd.type == FD.TYPE_BOOL:
        return st.booleans()
    if fd.type == FD.TYPE_STRING:
        return st.one_of(st.text(max_size=MAX_TEXT), st.sampled_from(EDGE_STRINGS[:5]))
    lo, hi = INT_RANGE[fd.type]
    return st.one_of(st.integers(lo, hi), st.sampled_from(_int_edges(lo, hi)))


def _is_map(fd: FD) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _real_oneof(fd: FD) -> Any:
    """The oneof fd belongs to, unless it is a proto3 `optional` field's synthetic one."""
    oneof = fd.containing_oneof
    if oneof is None or (len(oneof.fields) == 1 and oneof.name == f"_{oneof.fields[0].name}"):
        return None
    return oneof


def _target(msg: Message, fd: FD) -> Any:
    return msg.Extensions[fd] if fd.is_extension else getattr(msg, fd.name)


def _assign(msg: Message, fd: FD, value: Any) -> None:
    if fd.cpp_type == FD.CPPTYPE_MESSAGE:
        _target(msg, fd).CopyFrom(value)
    elif fd.is_extension:
        msg.Extensions[fd] = value
    else:
        setattr(msg, fd.name, value)


def messages(desc: Descriptor, depth: int = 0, anys: tuple[Descriptor, ...] | None = None) -> st.SearchStrategy[Message]:
    """Messages of type desc: every field unset or drawn, recursion bounded by MAX_DEPTH. `anys`: the
    types a google.protobuf.Any may carry (default: those desc's own file can reach, known_types)."""
    anys = known_types(desc.file) if anys is None else anys
    if desc.full_name == "google.protobuf.Any":
        return _any(depth, anys).map(lambda m: _in_pool(desc, m))
    if is_well_known(desc.file.name) and desc.full_name in _WELL_KNOWN:
        return _WELL_KNOWN[desc.full_name]().map(lambda m: _in_pool(desc, m))
    return _message(desc, depth, anys)


def _in_pool(desc: Descriptor, msg: Message) -> Message:
    """A well-known type drawn with the runtime's class, as desc's own class: a descriptor pool of its
    own (grpc-interop probe's) has its own Timestamp, and CopyFrom refuses the runtime's."""
    cls = GetMessageClass(desc)
    return msg if isinstance(msg, cls) else cls.FromString(msg.SerializeToString())


def known_types(file: Any) -> tuple[Descriptor, ...]:
    """The message types an Any may carry: those of `file` and of every file it imports, directly or
    not (but Any itself and map entries). Both peers know these: the Go peer links only what the
    proto set imports, so a type from elsewhere (a wrapper the set never imports) is unknown there."""
    seen: dict[str, Any] = {}
    todo = [file]
    while todo:
        f = todo.pop()
        if f.name not in seen:
            seen[f.name] = f
            todo += list(f.dependencies)

    def walk(d: Descriptor) -> Iterator[Descriptor]:
        if not d.GetOptions().map_entry and d.full_name != "google.protobuf.Any" and _same_in_both(d):
            yield d
        for nested in d.nested_types:
            yield from walk(nested)

    return tuple(sorted((d for f in seen.values() for top in f.message_types_by_name.values() for d in walk(top)),
                        key=lambda d: d.full_name))


def _same_in_both(d: Descriptor) -> bool:
    """Whether both peers hold the same definition of d. Each runtime bundles its own copy of
    protobuf's files (descriptor.proto: FeatureSet.ProtoLimitsFeature is in Python's and not in
    grpc-go's protobuf-go) and of grpc's; the Go peer takes google/rpc from genproto: of those, only
    the stable well-known types are packed. The set's own files (and google/api, google/type, which
    both compile from the same sources) are the same on both sides."""
    name = d.file.name
    if is_well_known(name) or name in GO_LINKED or name in GRPC_FILES:
        return d.full_name in _WELL_KNOWN
    return not name.startswith("google/rpc/")


@st.composite
def _message(draw: Any, desc: Descriptor, depth: int, anys: tuple[Descriptor, ...]) -> Message:
    msg = GetMessageClass(desc)()
    oneofs_done: set[str] = set()
    fields = list(desc.fields) + sorted(desc.file.pool.FindAllExtensions(desc), key=lambda f: f.number)
    for fd in fields:
        oneof = _real_oneof(fd)
        if oneof is not None:
            if oneof.full_name in oneofs_done:
                continue
            oneofs_done.add(oneof.full_name)
            member = draw(st.none() | st.sampled_from(list(oneof.fields)))  # none first: shrinks to unset
            if member is not None:
                _set(draw, msg, member, depth, anys, required=True)
            continue
        _set(draw, msg, fd, depth, anys, required=fd.is_required)
    return msg


def _set(draw: Any, msg: Message, fd: FD, depth: int, anys: tuple[Descriptor, ...], required: bool) -> None:
    """Draw field fd of msg (repeated and map fields: a list or dict, maybe empty)."""
    size = MAX_ELEMENTS[min(depth, len(MAX_ELEMENTS) - 1)]
    nested = fd.cpp_type == FD.CPPTYPE_MESSAGE
    if nested and depth >= MAX_DEPTH and not required:
        return  # recursion stops here; a required message field is still built (its own required fields)
    if _is_map(fd):
        key_fd, value_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
        values = messages(value_fd.message_type, depth + 1, anys) if value_fd.message_type else scalar(value_fd)
        entries = draw(st.dictionaries(map_key(key_fd), values, max_size=size))
        container = _target(msg, fd)
        for k, v in entries.items():
            if value_fd.message_type:
                container[k].CopyFrom(v)
            else:
                container[k] = v
        return
    element = messages(fd.message_type, depth + 1, anys) if nested else scalar(fd)
    if fd.is_repeated:
        items = draw(st.lists(element, max_size=size))
        container = _target(msg, fd)
        for v in items:
            if nested:
                container.add().CopyFrom(v)
            else:
                container.append(v)
        return
    if required or draw(st.booleans()):  # False (unset) is what a field shrinks to
        _assign(msg, fd, draw(element))


# ---------------------------------------------------------------- well-known types

_TS = (-62135596800, 253402300799)       # 0001-01-01 .. 9999-12-31, the JSON form's range
_DURATION = 315576000000                 # ±10 000 years, the JSON form's range


def _timestamp() -> st.SearchStrategy[Message]:
    return st.builds(lambda s, n: timestamp_pb2.Timestamp(seconds=s, nanos=n),
                     st.one_of(st.integers(*_TS), st.sampled_from([*_TS, 0])), st.integers(0, 999_999_999))


@st.composite
def _duration(draw: Any) -> Message:
    seconds = draw(st.one_of(st.integers(-_DURATION, _DURATION), st.sampled_from([-_DURATION, _DURATION, 0])))
    nanos = draw(st.integers(0, 999_999_999))
    # seconds and nanos carry the same sign; 0 seconds may carry either
    sign = -1 if seconds < 0 or (seconds == 0 and draw(st.booleans())) else 1
    return duration_pb2.Duration(seconds=seconds, nanos=sign * nanos)


# Struct numbers are doubles, and JSON has no NaN or infinity: finite values only.
_json_scalar = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=MAX_TEXT))
_json_value = st.recursive(_json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)


def _struct() -> st.SearchStrategy[Message]:
    def make(d: dict[str, Any]) -> Message:
        s = struct_pb2.Struct()
        s.update(d)
        return s
    return st.dictionaries(st.text(max_size=8), _json_value, max_size=4).map(make)


def _value() -> st.SearchStrategy[Message]:
    def make(v: Any) -> Message:
        s = struct_pb2.Struct()
        s.update({"v": v})
        out = struct_pb2.Value()
        out.CopyFrom(s.fields["v"])
        return out
    return _json_value.map(make)


def _list_value() -> st.SearchStrategy[Message]:
    def make(items: list[Any]) -> Message:
        out = struct_pb2.ListValue()
        out.extend(items)
        return out
    return st.lists(_json_value, max_size=4).map(make)


def _field_mask() -> st.SearchStrategy[Message]:
    from google.protobuf import field_mask_pb2

    # lower-case words joined by single underscores: the paths that survive snake_case <-> camelCase
    word = st.from_regex(r"[a-z]{1,6}", fullmatch=True)
    segment = st.lists(word, min_size=1, max_size=3).map("_".join)
    path = st.lists(segment, min_size=1, max_size=3).map(".".join)
    return st.lists(path, max_size=3).map(lambda ps: field_mask_pb2.FieldMask(paths=ps))


def _any(depth: int, anys: tuple[Descriptor, ...]) -> st.SearchStrategy[Message]:
    """An Any carrying a message of a type both peers know (anys), itself drawn from its descriptor."""
    def pack(inner: Message) -> Message:
        out = any_pb2.Any()
        out.Pack(inner)
        return out
    if not anys or depth >= MAX_DEPTH:
        return st.just(any_pb2.Any())
    return st.sampled_from(anys).flatmap(lambda d: messages(d, depth + 1, anys)).map(pack)


def _wrapper(name: str) -> st.SearchStrategy[Message]:
    cls = getattr(wrappers_pb2, name.rsplit(".", 1)[1])
    return scalar(cls.DESCRIPTOR.fields_by_name["value"]).map(lambda v: cls(value=v))


_WELL_KNOWN: dict[str, Any] = {
    "google.protobuf.Timestamp": _timestamp, "google.protobuf.Duration": _duration,
    "google.protobuf.Struct": _struct, "google.protobuf.Value": _value, "google.protobuf.ListValue": _list_value,
    "google.protobuf.FieldMask": _field_mask,
    "google.protobuf.Empty": lambda: st.just(empty_pb2.Empty()),
    **{f"google.protobuf.{w}": (lambda w=w: _wrapper(f"google.protobuf.{w}")) for w in (
        "DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value", "BoolValue",
        "StringValue", "BytesValue")},
}


# ---------------------------------------------------------------- calls

def message_json(desc: Descriptor, anys: tuple[Descriptor, ...] | None = None) -> st.SearchStrategy[Any]:
    """A message as the protobuf JSON a case carries (within the size budget)."""
    def check(msg: Message) -> Any:
        assume(len(msg.SerializePartialToString()) <= MESSAGE_BUDGET)
        return json_of(msg)
    return messages(desc, 0, anys).map(check)


def json_of(msg: Message) -> Any:
    """Protobuf JSON of msg as values.to_json writes it (float fields as their exact double), also
    inside the messages Anys carry, where json_format writes float32 text it then refuses itself."""
    if msg.DESCRIPTOR.full_name == "google.protobuf.FloatValue" and math.isfinite(msg.value):
        return float(msg.value)  # the exact double, as to_json writes a FloatValue field
    out = to_json(msg)
    _fix_anys(msg, out)
    return out


def _fix_anys(msg: Message, out: Any) -> None:
    if not isinstance(out, dict) or msg.DESCRIPTOR.full_name in _WELL_KNOWN:
        return
    for fd, value in msg.ListFields():
        key = f"[{fd.full_name}]" if fd.is_extension else fd.json_name
        if fd.cpp_type != FD.CPPTYPE_MESSAGE or key not in out:
            continue
        if _is_map(fd):
            if fd.message_type.fields_by_name["value"].message_type is not None:
                for k, v in value.items():
                    jk = ("true" if k else "false") if isinstance(k, bool) else str(k)
                    out[key][jk] = _child(v, out[key][jk])
        elif fd.is_repeated:
            out[key] = [_child(v, j) for v, j in zip(value, out[key])]
        else:
            out[key] = _child(value, out[key])


def _child(msg: Message, out: Any) -> Any:
    if msg.DESCRIPTOR.full_name != "google.protobuf.Any" or not msg.type_url or not isinstance(out, dict):
        _fix_anys(msg, out)
        return out
    desc = msg.DESCRIPTOR.file.pool.FindMessageTypeByName(msg.type_url.rpartition("/")[2])
    inner = GetMessageClass(desc).FromString(msg.value)
    if "value" in out and (desc.full_name in _WELL_KNOWN and desc.full_name != "google.protobuf.Empty"):
        return {"@type": msg.type_url, "value": json_of(inner)}  # a special JSON form rides under "value"
    return {"@type": msg.type_url, **json_of(inner)}


_ERRORS = [c for c in STATUS_CODES if c != "OK"]
_status_message = st.text(max_size=MAX_TEXT)


@st.composite
def calls(draw: Any, m: MethodDescriptor) -> Call:
    """One call of method m: its messages and its streaming structure.

    unary and client_stream end OK with one response or with an error status (no response);
    server_stream and bidi send 0..MAX_MESSAGES responses, then OK or an error after them. Bidi is
    half-duplex (all requests, then all responses), ping-pong (n and n, in turn), the server
    finishing early (it reads only some requests), or the client cancelling after k responses of a
    ping-pong (the server would send more: a client that does not cancel fails)."""
    mode = streaming_mode(m)
    anys = known_types(m.containing_service.file)  # the service's file reaches both message types
    req, resp = message_json(m.input_type, anys), message_json(m.output_type, anys)
    kw: dict[str, Any] = {}
    many = st.lists(req, max_size=MAX_MESSAGES)
    requests = draw(many) if m.client_streaming else [draw(req)]
    expect: dict[str, Any] = {"status": "OK"}
    if mode == "bidi":
        shape = draw(st.sampled_from(["half_duplex", "ping_pong", "server_finishes_early", "client_cancels"]))
        if shape == "client_cancels":
            # the server would answer every request; the client cancels after k of n responses
            n = draw(st.integers(2, MAX_MESSAGES))
            requests, answers = [draw(req) for _ in range(n)], [draw(resp) for _ in range(n)]
            k = draw(st.integers(1, n - 1))
            kw.update(bidi="ping_pong", server={"responses": answers, "status": "OK"}, cancel_after_responses=k)
            expect = {"status": "CANCELLED"}
            responses = answers[:k]
        elif shape == "ping_pong":
            kw["bidi"] = "ping_pong"
            responses = [draw(resp) for _ in requests]
        else:
            kw["bidi"] = "half_duplex"
            responses = draw(st.lists(resp, max_size=MAX_MESSAGES))
            if shape == "server_finishes_early" and requests:
                kw["server"] = {"read_requests": draw(st.integers(0, len(requests) - 1))}
    elif m.server_streaming:
        responses = draw(st.lists(resp, max_size=MAX_MESSAGES))
    else:
        responses = [draw(resp)]
    # one in five ends in an error status (4, not 0: an example shrinks towards OK)
    if "cancel_after_responses" not in kw and draw(st.integers(0, 4)) == 4:
        expect = {"status": draw(st.sampled_from(_ERRORS)), "message": draw(_status_message)}
        if not m.server_streaming:
            responses = []  # a unary response never travels with an error
    expect["responses"] = responses
    return Call(method=f"{m.containing_service.full_name}/{m.name}", streaming=mode,
                request_type=m.input_type.full_name, response_type=m.output_type.full_name,
                requests=requests, expect=expect, timeout_ms=TIMEOUT_MS, checked_by_server=True, **kw)


def call_key(call: Call) -> str:
    """A call's identity: equal data, equal key (examples are deduplicated and recognised by it)."""
    return json.dumps(call.to_json(), sort_keys=True, ensure_ascii=False)
