"""Message values by pattern, built from descriptors with the generated classes.

A pattern decides every scalar, repeated, map, oneof and nested field of a message, recursively.
Values are turned into protobuf JSON (the language-neutral form both peers parse) by the caller.
Deterministic: no randomness, the same descriptor and pattern give the same message.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor as FD
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from harness.protoset.runtime import is_well_known

INT_RANGE = {
    FD.TYPE_INT32: (-2**31, 2**31 - 1), FD.TYPE_SINT32: (-2**31, 2**31 - 1), FD.TYPE_SFIXED32: (-2**31, 2**31 - 1),
    FD.TYPE_INT64: (-2**63, 2**63 - 1), FD.TYPE_SINT64: (-2**63, 2**63 - 1), FD.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1), FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1), FD.TYPE_FIXED64: (0, 2**64 - 1),
}
FLOAT_MAX = {FD.TYPE_DOUBLE: 1.7976931348623157e308, FD.TYPE_FLOAT: 3.4028234663852886e38}
FLOAT_TINY = {FD.TYPE_DOUBLE: 5e-324, FD.TYPE_FLOAT: 1.401298464324817e-45}
UNICODE = "ü € 😀 \u0000 NUL, \t tab, \u2028 sep, 中文, عربى"
LONG_TEXT = "long ✓ text " * 2000  # 24 000 characters, 26 000 UTF-8 bytes
ALL_BYTES = bytes(range(256))
UNKNOWN_ENUM = 12345
MANY = 40
MAX_DEPTH = 3

# Value patterns: each is one case per method where it changes the message (see casegen).
PATTERNS = ("empty", "typical", "min", "max", "neg_zero", "nan", "pos_inf", "neg_inf", "tiny",
            "unicode", "long_strings", "all_bytes", "repeated_one", "repeated_many", "map_edges",
            "enum_unknown", "presence_default")


# Size budget: the wire bytes one generated message may take, whatever its shape. Both languages
# refuse received messages over 4 MiB by default; only the size-limit cases (near_size_limit,
# request_over_limit, response_over_limit in generate.py) are made to cross that line. The budget is
# handed down while building: a message gives each repeated, map or message field an equal share of
# what is left after its scalars, and a repeated field gets as many elements as fit its share (up to
# its pattern's count), so nested repeated levels cannot multiply past it.
MESSAGE_BUDGET = 1024 * 1024
_NESTED = 12  # a nested message's tag and length prefix (or a group's two tags), at most


class Unbuildable(ValueError):
    """No finite message of a type exists: its required fields lead back to it (or to another such
    type). `chain` names the required fields, type by type, to where the cycle closes."""

    def __init__(self, desc: Descriptor, chain: tuple[str, ...]) -> None:
        super().__init__(f"{desc.full_name} ({desc.file.name}) cannot be built: its required fields never end: "
                         f"{' -> '.join(chain)}")
        self.desc, self.chain = desc, chain


def _required_messages(desc: Descriptor) -> list[FD]:
    return [fd for fd in desc.fields if fd.is_required and fd.message_type is not None]


@functools.lru_cache(maxsize=None)
def unbuildable(desc: Descriptor) -> tuple[str, ...] | None:
    """None when a finite message of type desc exists; else the chain of required message fields that
    never ends (`A.next -> B.back -> A`), as proto2's `required A self = 1;` makes. Such a type can
    only be left unset where it is optional; where it is required its holder cannot be built either."""
    types: dict[str, Descriptor] = {}
    todo = [desc]
    while todo:
        d = todo.pop()
        if d.full_name not in types:
            types[d.full_name] = d
            todo += [fd.message_type for fd in _required_messages(d)]
    # least fixpoint: a type is buildable when every required message field's type is
    ok: set[str] = set()
    grown = True
    while grown:
        grown = False
        for name, d in types.items():
            if name not in ok and all(fd.message_type.full_name in ok for fd in _required_messages(d)):
                ok.add(name)
                grown = True
    if desc.full_name in ok:
        return None
    chain: list[str] = []
    seen: set[str] = set()
    d = desc
    while d.full_name not in seen:
        seen.add(d.full_name)
        # the shortest story first: a field of the type itself, else the first that cannot be built
        fd = next((f for f in _required_messages(d) if f.message_type is d),
                  next(f for f in _required_messages(d) if f.message_type.full_name not in ok))
        chain.append(f"{d.full_name}.{fd.name} (required)")
        d = fd.message_type
    return (*chain, d.full_name)


def carried_type(fd: FD) -> Descriptor | None:
    """The message type a field carries: its own, or its map's value type (None for scalars)."""
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        return fd.message_type.fields_by_name["value"].message_type
    return fd.message_type


@functools.lru_cache(maxsize=None)
def settable(fd: FD) -> bool:
    """Whether a field can hold a value at all: not one whose message type cannot be built."""
    target = carried_type(fd)
    return target is None or unbuildable(target) is None


def build(desc: Descriptor, pattern: str, depth: int = 0, budget: int = MESSAGE_BUDGET) -> Message:
    """A message of type `desc` whose fields follow `pattern` (required fields always set), of at
    most `budget` bytes on the wire (unless its required fields alone take more). Fields whose type
    cannot be built stay unset; a type that cannot be built itself raises Unbuildable."""
    chain = unbuildable(desc)
    if chain is not None:
        raise Unbuildable(desc, chain)
    msg = GetMessageClass(desc)()
    if is_well_known(desc.file.name):  # exact file names: other files under google/protobuf/ are ordinary
        _well_known(msg, pattern)
        return msg
    chosen: list[FD] = []
    oneofs_done: set[str] = set()
    for fd in desc.fields:
        if not settable(fd):
            continue
        oneof = fd.containing_oneof
        if oneof is not None and not _is_synthetic(oneof):
            if oneof.name in oneofs_done or pattern == "empty":
                continue
            oneofs_done.add(oneof.name)  # the first member: other members get their own cases
        chosen.append(fd)
    # extensions at every level the patterns fill: a MessageSet is usually a nested field
    if pattern in ("typical", "max", "presence_default") and depth < MAX_DEPTH:
        chosen += [ext for ext in _extensions(desc) if settable(ext)]
    # Scalars first (each one set only if it fits), then the composite fields share what is left.
    composite = [fd for fd in chosen if fd.is_repeated or fd.cpp_type == FD.CPPTYPE_MESSAGE]
    left = budget
    for fd in chosen:
        if fd not in composite:
            left -= _set_scalar_field(msg, fd, pattern, left)
    for i, fd in enumerate(composite):
        left -= _set_field(msg, fd, pattern, depth, max(left // (len(composite) - i), 0))
    return msg


def _is_synthetic(oneof: Any) -> bool:
    """proto3 `optional` fields sit in a synthetic oneof of their own."""
    return len(oneof.fields) == 1 and oneof.name == f"_{oneof.fields[0].name}"


def _extensions(desc: Descriptor) -> list[FD]:
    """Every extension of desc the generated code declares: at file level or inside a message's scope,
    in desc's file or in another one (by number, so the cases stay deterministic)."""
    return sorted(desc.file.pool.FindAllExtensions(desc), key=lambda ext: ext.number)


def singular_message_extensions(desc: Descriptor) -> list[FD]:
    """The extensions of desc that hold one message each and can be built (for the case walkers)."""
    return [e for e in _extensions(desc) if e.message_type is not None and not e.is_repeated and settable(e)]


def _target(msg: Message, fd: FD) -> Any:
    return msg.Extensions[fd] if fd.is_extension else getattr(msg, fd.name)


def _varint(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


_FIXED = {FD.TYPE_BOOL: 1, FD.TYPE_FLOAT: 4, FD.TYPE_FIXED32: 4, FD.TYPE_SFIXED32: 4,
          FD.TYPE_DOUBLE: 8, FD.TYPE_FIXED64: 8, FD.TYPE_SFIXED64: 8}


def _cost(fd: FD, v: Any) -> int:
    """Wire bytes of one scalar value of field fd, with its tag (an unpacked element)."""
    tag = _varint(fd.number << 3)
    if isinstance(v, (str, bytes)):
        n = len(v.encode()) if isinstance(v, str) else len(v)
        return tag + _varint(n) + n
    if fd.type in _FIXED:
        return tag + _FIXED[fd.type]
    if fd.type in (FD.TYPE_SINT32, FD.TYPE_SINT64):
        return tag + _varint(2 * v if v >= 0 else -2 * v - 1)
    return tag + (_varint(v) if v >= 0 else 10)


def _size(msg: Message) -> int:
    return len(msg.SerializePartialToString())  # ByteSize() refuses messages missing required fields


def _set_scalar_field(msg: Message, fd: FD, pattern: str, left: int) -> int:
    """Set one singular scalar field if it fits in `left` (a required one always); returns its wire size."""
    if pattern == "empty" and not fd.is_required:
        return 0
    if pattern == "presence_default":
        value = fd.default_value if (fd.has_presence or fd.is_required) else None
    else:
        value = scalar(fd, pattern, 0)
        if value is None and fd.is_required:
            value = scalar(fd, "typical", 0)
    if value is None or (_cost(fd, value) > left and not fd.is_required):
        return 0
    _assign(msg, fd, value)
    return _cost(fd, value)


def _set_field(msg: Message, fd: FD, pattern: str, depth: int, share: int) -> int:
    """Set a repeated, map or message field within `share` bytes; returns its wire size."""
    if pattern == "empty" and not fd.is_required:
        return 0
    if pattern == "presence_default":
        # Set to the default value, which differs from unset only where presence is tracked.
        if fd.cpp_type == FD.CPPTYPE_MESSAGE and not fd.is_repeated and depth < MAX_DEPTH:
            if not (fd.message_type.GetOptions().map_entry or is_well_known(fd.message_type.file.name)):
                return _set_message(msg, fd, build(fd.message_type, pattern, depth + 1, share - _NESTED))
        return 0
    is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry
    if is_map:
        return _fill_map(_target(msg, fd), fd, pattern, depth, share)
    if fd.is_repeated:
        count = {"repeated_one": 1, "repeated_many": MANY}.get(pattern, 2)
        return _fill_repeated(_target(msg, fd), fd, pattern, depth, count, share)
    if depth < MAX_DEPTH or fd.is_required:
        return _set_message(msg, fd, build(fd.message_type, pattern if depth < MAX_DEPTH else "empty", depth + 1,
                                           share - _NESTED))
    return 0


def _set_message(msg: Message, fd: FD, child: Message) -> int:
    _target(msg, fd).CopyFrom(child)
    return _size(child) + _NESTED


def _assign(msg: Message, fd: FD, value: Any) -> None:
    if value is None:
        return
    if fd.is_extension:
        msg.Extensions[fd] = value
    else:
        setattr(msg, fd.name, value)


# Patterns that make single fields big; elements of repeated fields and maps stay typical.
_BIG = {"long_strings", "max", "all_bytes"}


def _element_pattern(pattern: str) -> str:
    return "typical" if pattern in _BIG else pattern


def _fits(desc: Descriptor, pattern: str, share: int, wanted: int) -> tuple[int, int]:
    """How many messages of type desc (up to `wanted`) fit in `share` bytes, and each one's budget.
    An element must at least hold its own scalars (as built at the depth limit), so fewer full
    elements are preferred to many empty ones."""
    n = min(wanted, max(share, 0) // _floor(desc, pattern))
    return n, (share // n if n else 0) - _NESTED


@functools.lru_cache(maxsize=4096)
def _floor(desc: Descriptor, pattern: str) -> int:
    """The wire size of one element of type desc holding only its own scalars (deterministic, so cached)."""
    return _size(build(desc, pattern, MAX_DEPTH)) + _NESTED


def _fill_repeated(container: Any, fd: FD, pattern: str, depth: int, count: int, share: int) -> int:
    pattern = _element_pattern(pattern)
    used = 0
    if fd.cpp_type == FD.CPPTYPE_MESSAGE:
        if depth < MAX_DEPTH:
            n, each = _fits(fd.message_type, pattern, share, count)
            for _ in range(n):
                element = build(fd.message_type, pattern, depth + 1, each)
                container.add().CopyFrom(element)
                used += _size(element) + _NESTED
        return used
    for i in range(count):
        v = scalar(fd, pattern, i)
        v = v if v is not None else scalar(fd, "typical", i)
        if used + _cost(fd, v) > share:
            break
        container.append(v)
        used += _cost(fd, v)
    return used


def _fill_map(container: Any, fd: FD, pattern: str, depth: int, share: int) -> int:
    key_fd, value_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
    keys = map_keys(key_fd, edges=pattern == "map_edges")
    value_pattern = "typical" if pattern == "map_edges" else _element_pattern(pattern)
    used = 0
    if value_fd.cpp_type == FD.CPPTYPE_MESSAGE:
        if depth < MAX_DEPTH:
            key_cost = max(_cost(key_fd, k) for k in keys) + _NESTED
            n, each = _fits(value_fd.message_type, value_pattern, share - key_cost * len(keys), len(keys))
            for k in keys[:n]:
                value = build(value_fd.message_type, value_pattern, depth + 1, each)
                container[k].CopyFrom(value)
                used += key_cost + _size(value) + _NESTED
        return used
    for i, k in enumerate(keys):
        v = scalar(value_fd, value_pattern, i)
        v = v if v is not None else scalar(value_fd, "typical", i)
        entry = _cost(key_fd, k) + _cost(value_fd, v) + _NESTED
        if used + entry > share:
            break
        container[k] = v
        used += entry
    return used


def map_keys(fd: FD, edges: bool) -> list[Any]:
    if fd.type == FD.TYPE_BOOL:
        return [False, True] if edges else [True]
    if fd.type == FD.TYPE_STRING:
        return ["", "ü😀", "with space", "k" * 300] if edges else ["alpha", "beta"]
    lo, hi = INT_RANGE[fd.type]
    return sorted({lo, hi, 0, max(lo, -1), 1}) if edges else [1, 2]


def scalar(fd: FD, pattern: str, i: int) -> Any:
    """The value of one scalar field (or one repeated element) under a pattern."""
    t = fd.type
    if t == FD.TYPE_ENUM:
        values = [v.number for v in fd.enum_type.values]
        if pattern == "enum_unknown" and not fd.enum_type.is_closed:
            return UNKNOWN_ENUM
        if pattern == "min":
            return min(values)
        if pattern in ("max", "typical", "repeated_many", "repeated_one"):
            return max(values) if pattern == "max" else values[(i + 1) % len(values)]
        return values[0] if fd.enum_type.is_closed else None
    if t == FD.TYPE_BOOL:
        return pattern not in ("min",) if pattern in ("typical", "max", "min", "repeated_one", "repeated_many") else None
    if t == FD.TYPE_STRING:
        return {"typical": f"text {i}", "unicode": UNICODE, "long_strings": LONG_TEXT, "max": "m" * 300, "min": "",
                "repeated_one": f"s{i}", "repeated_many": f"s{i}"}.get(pattern)
    if t == FD.TYPE_BYTES:
        return {"typical": b"\x00\x01bytes", "all_bytes": ALL_BYTES, "max": ALL_BYTES * 4, "min": b"",
                "repeated_one": bytes([i]), "repeated_many": bytes([i % 256])}.get(pattern)
    if t in FLOAT_MAX:
        big = FLOAT_MAX[t]
        return {"typical": 1.5 + i, "min": -big, "max": big, "neg_zero": -0.0, "nan": math.nan,
                "pos_inf": math.inf, "neg_inf": -math.inf, "tiny": FLOAT_TINY[t],
                "repeated_one": 0.5, "repeated_many": i / 4}.get(pattern)
    lo, hi = INT_RANGE[t]
    return {"typical": 42 + i if lo == 0 else -42 - i, "min": lo, "max": hi,
            "repeated_one": 7, "repeated_many": i}.get(pattern)


# ---------------------------------------------------------------- what a pattern carries

# Patterns that stand for no value of their own: every type has an empty and a typical value.
CARRY_ANYTHING = ("empty", "typical")


def carries(msg: Message, pattern: str) -> bool:
    """The message holds at least one value of the pattern's kind: a -0.0 for neg_zero, a list of
    one for repeated_one, an edge key for map_edges… A type with none (RouteGuide's Point under
    neg_zero: int32 fields only) gets a message that differs from the others and tests nothing,
    so its case must not be made (generate.value_cases)."""
    if pattern in CARRY_ANYTHING:
        return True
    return any(_carries(fd, value, whole, pattern) for fd, value, whole in _leaves(msg))


def _leaves(msg: Message) -> list[tuple[FD, Any, bool]]:
    """(field, value, whole) for every field set anywhere in msg: a repeated or map field once as a
    whole (whole=True, its container), then each element or map value, and each map key as its
    entry's key field."""
    out: list[tuple[FD, Any, bool]] = []
    for fd, value in msg.ListFields():
        if fd.is_repeated:
            out.append((fd, value, True))
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            key_fd, value_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            for k in value:
                out.append((key_fd, k, False))
                if value_fd.cpp_type == FD.CPPTYPE_MESSAGE:
                    out += [(value_fd, value[k], False), *_leaves(value[k])]
                else:
                    out.append((value_fd, value[k], False))
            continue
        for element in (value if fd.is_repeated else [value]):
            out.append((fd, element, False))
            if fd.cpp_type == FD.CPPTYPE_MESSAGE:
                out += _leaves(element)
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as values on the wire: -0.0 is not 0.0, NaN is NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1.0, a) == math.copysign(1.0, b))
    return type(a) is type(b) and a == b


def _carries(fd: FD, value: Any, whole: bool, pattern: str) -> bool:
    if pattern in ("repeated_one", "repeated_many"):  # a list (not a map) of 1, or of more than typical's 2
        is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry
        return whole and not is_map and (len(value) == 1 if pattern == "repeated_one" else len(value) > 2)
    if whole:
        return False  # a container carries through its elements
    if pattern == "map_edges":  # a key that only the edges give (fd is a map entry's key field)
        if not (fd.containing_type.GetOptions().map_entry and fd.name == "key"):
            return False
        edges = [k for k in map_keys(fd, True) if not any(_same(k, t) for t in map_keys(fd, False))]
        return any(_same(value, k) for k in edges)
    if pattern == "presence_default":  # a singular field whose presence is tracked, set to its default
        if fd.is_repeated or not fd.has_presence:
            return False
        return value.ByteSize() == 0 if fd.cpp_type == FD.CPPTYPE_MESSAGE else _same(value, fd.default_value)
    if fd.cpp_type == FD.CPPTYPE_MESSAGE:
        return False
    if pattern == "enum_unknown":
        return fd.type == FD.TYPE_ENUM and value not in fd.enum_type.values_by_number
    # A scalar pattern: the value it gives this field, where that is its own (not the fallback a
    # closed enum gets under any pattern) and not the field's default (an unset proto3 field).
    own = scalar(fd, pattern, 0)
    return (own is not None and not _same(own, scalar(fd, "empty", 0)) and not _same(own, fd.default_value)
            and _same(value, own))


def _well_known(msg: Message, pattern: str) -> None:
    """Well-known types hold values only within their JSON rules (Timestamp range, Struct numbers…)."""
    name = msg.DESCRIPTOR.full_name
    if pattern == "empty":
        return
    edge = pattern if pattern in ("min", "max") else "typical"
    if name == "google.protobuf.Timestamp":
        msg.seconds, msg.nanos = {"min": (-62135596800, 0), "max": (253402300799, 999999999)}.get(edge, (1700000000, 123000000))
    elif name == "google.protobuf.Duration":
        msg.seconds, msg.nanos = {"min": (-315576000000, -999999999), "max": (315576000000, 999999999)}.get(edge, (90, 500))
    elif name == "google.protobuf.Any":
        from google.protobuf import duration_pb2

        msg.Pack(duration_pb2.Duration(seconds=3, nanos=7))
    elif name == "google.protobuf.Struct":
        msg.update({"n": 1.5, "s": "é", "b": True, "z": None, "l": [1.0, "two", None], "o": {"k": "v"}})
    elif name == "google.protobuf.Value":
        msg.string_value = "value ✓"
    elif name == "google.protobuf.ListValue":
        msg.extend([1.0, "two", None, True])
    elif name == "google.protobuf.FieldMask":
        msg.paths.extend(["f_int32", "scalars.f_string"])
    elif name.endswith("Value") and "value" in msg.DESCRIPTOR.fields_by_name:  # wrappers
        fd = msg.DESCRIPTOR.fields_by_name["value"]
        v = scalar(fd, pattern, 0)
        if v is None:
            v = scalar(fd, "typical", 0)
        msg.value = v


def to_json(msg: Message) -> Any:
    """Protobuf JSON of a message, with `float` fields written as the exact double of their value.

    json_format writes float32 fields in their shortest float32 form ("3.4028235e+38"), which
    json_format itself then rejects as out of range; the exact double parses back in both languages.
    """
    from google.protobuf import json_format

    out = json_format.MessageToDict(msg)
    _exact_floats(msg, out)
    return out


def _exact(v: float) -> Any:
    return v if math.isfinite(v) else None


def _exact_floats(msg: Message, out: Any) -> None:
    if not isinstance(out, dict):
        return
    if msg.DESCRIPTOR.full_name == "google.protobuf.Struct":
        return
    for fd, value in msg.ListFields():
        key = f"[{fd.full_name}]" if fd.is_extension else fd.json_name
        if key not in out:
            continue
        is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry
        if is_map:
            vfd = fd.message_type.fields_by_name["value"]
            for k, v in value.items():
                jk = ("true" if k else "false") if isinstance(k, bool) else str(k)
                if vfd.type == FD.TYPE_FLOAT and _exact(v) is not None:
                    out[key][jk] = float(v)
                elif vfd.cpp_type == FD.CPPTYPE_MESSAGE:
                    _fix_message(v, out[key], jk)
        elif fd.type == FD.TYPE_FLOAT:
            if fd.is_repeated:
                out[key] = [float(v) if _exact(v) is not None else out[key][i] for i, v in enumerate(value)]
            elif _exact(value) is not None:
                out[key] = float(value)
        elif fd.cpp_type == FD.CPPTYPE_MESSAGE:
            if fd.is_repeated:
                for i, v in enumerate(value):
                    _fix_message(v, out[key], i)
            else:
                _fix_message(value, out, key)


def _fix_message(value: Message, parent: Any, key: Any) -> None:
    if value.DESCRIPTOR.full_name == "google.protobuf.FloatValue":
        if _exact(value.value) is not None:
            parent[key] = float(value.value)
    else:
        _exact_floats(value, parent[key])
