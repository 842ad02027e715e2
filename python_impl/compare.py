"""Field-level comparison of parsed protobuf messages.

Bytes on the wire are not canonical (map order, packed vs unpacked, unknown-field order), so the
engines compare decoded messages: every field, presence where the field tracks it, NaN equal to NaN,
floats within an optional tolerance. Every difference is reported, not only the first.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.unknown_fields import UnknownFieldSet

_FLOATS = (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE)


@dataclass(frozen=True)
class Tolerance:
    abs: float = 0.0
    rel: float = 0.0

    @classmethod
    def from_json(cls, raw: dict[str, float] | None) -> Tolerance:
        return cls(**(raw or {}))


def render(value: Any, float32: bool = False) -> str:
    """Values as text, the same way the Go engine renders them (docs/peer-contract.md): floats in
    Python's shortest round-trip form (nan, inf), `float` fields at float32 precision."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).translate(_INVISIBLE)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float):
        return _repr_float32(value) if float32 else repr(value)
    if isinstance(value, Message):
        return "{" + value.DESCRIPTOR.full_name + "}"
    if isinstance(value, (list, tuple)):  # metadata values: ["a", "b"]
        return "[" + ", ".join(render(v) for v in value) + "]"
    return str(value)


# Characters json.dumps leaves raw that would hide in a report or break its lines: DEL, the C1
# controls (U+0085 NEL among them), LINE and PARAGRAPH SEPARATOR. Escaped like the C0 controls
# json.dumps already escapes, so "\u2028" reads like "\u0000" (the Go engine's quote does the same).
_INVISIBLE = {c: f"\\u{c:04x}" for c in [*range(0x7F, 0xA0), 0x2028, 0x2029]}


def _repr_float32(value: float) -> str:
    """Shortest decimal that reads back as the same float32 (0.1, not 0.10000000149011612)."""
    if math.isnan(value) or math.isinf(value):
        return repr(value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        try:
            if struct.unpack("<f", struct.pack("<f", float(text)))[0] == value:
                return repr(float(text))
        except OverflowError:  # rounded past the float32 maximum: needs more digits
            continue
    return repr(value)


def _negative_zero(x: float) -> bool:
    return x == 0.0 and math.copysign(1.0, x) < 0


def floats_equal(exp: float, got: float, tol: Tolerance) -> bool:
    if math.isnan(exp) or math.isnan(got):
        return math.isnan(exp) and math.isnan(got)
    if exp == got:
        # -0.0 == 0.0 numerically, but the sign is a value the sender chose.
        return math.copysign(1.0, exp) == math.copysign(1.0, got)
    if math.isinf(exp) or math.isinf(got) or _negative_zero(exp) or _negative_zero(got):
        # Infinities and -0.0 are exact values, never results of rounding: a tolerance would make
        # rel*|inf| infinite (anything matches) and let 1e-9 stand in for -0.0. (+0.0 keeps the
        # tolerance: a computed -1e-16 may stand for an expected 0.0.)
        return False
    return abs(got - exp) <= tol.abs + tol.rel * abs(exp)


def _scalar_equal(fd: FieldDescriptor, exp: Any, got: Any, tol: Tolerance) -> bool:
    if fd.cpp_type in _FLOATS:
        return floats_equal(exp, got, tol)
    return exp == got


UNSET, SET, MISSING = "<unset>", "<set>", "<missing>"
_WIRE_TYPES = {0: "varint", 1: "fixed64", 2: "len", 3: "group", 5: "fixed32"}


def render_field(fd: FieldDescriptor, value: Any) -> str:
    """A field's value as a diff shows it (docs/peer-contract.md, "Diff rendering"): enums by name
    (by number when the number has none), `float` at float32 precision, messages as `<set>`."""
    if fd.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        return SET
    if fd.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        known = fd.enum_type.values_by_number.get(value)
        return known.name if known is not None else str(value)
    return render(value, fd.type == FieldDescriptor.TYPE_FLOAT)


def diff_messages(exp: Message, got: Message, path: str = "", tol: Tolerance = Tolerance()) -> list[tuple[str, str, str]]:
    """(path, expected, got) for every difference between two messages of the same type: fields in
    declaration order, then set extensions by number, then the unknown fields."""
    if exp.SerializeToString(deterministic=True) == got.SerializeToString(deterministic=True):
        # the same bytes are the same values, presence and unknown fields: no field walk (a
        # near-limit message has millions of elements, and the walk would outlast the deadline)
        return []
    unpacked = _unpack_both(exp, got)
    if unpacked is not None:
        # a packed message's bytes are not canonical (map entries come in any order): compare what
        # they carry, as the Go engine does
        return diff_messages(*unpacked, f"{path}.value" if path else "value", tol)
    out: list[tuple[str, str, str]] = []
    for fd in exp.DESCRIPTOR.fields:
        p = f"{path}.{fd.name}" if path else fd.name
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            _diff_map(fd, getattr(exp, fd.name), getattr(got, fd.name), p, tol, out)
        elif fd.is_repeated:
            _diff_list(fd, list(getattr(exp, fd.name)), list(getattr(got, fd.name)), p, tol, out)
        else:
            he = exp.HasField(fd.name) if fd.has_presence else True
            hg = got.HasField(fd.name) if fd.has_presence else True
            _diff_present(fd, he, getattr(exp, fd.name), hg, getattr(got, fd.name), p, tol, out)
    out.extend(_diff_extensions(exp, got, path, tol))
    ue, ug = _unknown(exp), _unknown(got)
    if ue != ug:
        out.append((f"{path}.<unknown fields>" if path else "<unknown fields>", ue, ug))
    return out


def _unpack_both(exp: Message, got: Message) -> tuple[Message, Message] | None:
    """The messages two google.protobuf.Any values carry, when both name the same type, this peer
    knows it and both values decode; otherwise None, and the Any is compared field by field."""
    if exp.DESCRIPTOR.full_name != "google.protobuf.Any" or not exp.type_url or exp.type_url != got.type_url:
        return None
    try:
        desc = exp.DESCRIPTOR.file.pool.FindMessageTypeByName(exp.type_url.rpartition("/")[2])
    except KeyError:
        desc = None
    if desc is None:
        return None
    cls = GetMessageClass(desc)
    try:
        return cls.FromString(exp.value), cls.FromString(got.value)
    except DecodeError:
        return None


def _diff_present(fd: FieldDescriptor, he: bool, e: Any, hg: bool, g: Any, p: str, tol: Tolerance, out: list,
                  absent: str = UNSET) -> None:
    if he != hg:
        out.append((p, render_field(fd, e) if he else absent, render_field(fd, g) if hg else absent))
    elif he:
        _diff_value(fd, e, g, p, tol, out)


def _diff_list(fd: FieldDescriptor, e: list[Any], g: list[Any], p: str, tol: Tolerance, out: list) -> None:
    if len(e) != len(g):
        out.append((f"{p}.count", str(len(e)), str(len(g))))
    for i, (ev, gv) in enumerate(zip(e, g)):
        _diff_value(fd, ev, gv, f"{p}[{i}]", tol, out)


def _diff_extensions(exp: Message, got: Message, path: str, tol: Tolerance) -> list[tuple[str, str, str]]:
    """Extension fields set on either side (proto2 / editions), by number; path `[full.name]`."""
    if not exp.DESCRIPTOR.extension_ranges:
        return []
    set_e = {fd.full_name: fd for fd, _ in exp.ListFields() if fd.is_extension}
    set_g = {fd.full_name: fd for fd, _ in got.ListFields() if fd.is_extension}
    fds = sorted({**set_e, **set_g}.values(), key=lambda fd: (fd.number, fd.full_name))
    out: list[tuple[str, str, str]] = []
    for fd in fds:
        p = f"{path}.[{fd.full_name}]" if path else f"[{fd.full_name}]"
        if fd.is_repeated:
            _diff_list(fd, list(exp.Extensions[fd]), list(got.Extensions[fd]), p, tol, out)
        else:
            _diff_present(fd, fd.full_name in set_e, exp.Extensions[fd], fd.full_name in set_g, got.Extensions[fd],
                          p, tol, out)
    return out


def _unknown(msg: Message | UnknownFieldSet) -> str:
    """Unknown fields in wire order: `[number:wire type:value, …]`; varints and fixed values as
    unsigned decimals, length-delimited as base64, groups as their own list."""
    fields = UnknownFieldSet(msg) if isinstance(msg, Message) else msg
    parts = []
    for f in fields:
        kind = _WIRE_TYPES.get(f.wire_type, str(f.wire_type))
        value = base64.b64encode(f.data).decode() if isinstance(f.data, bytes) else (
            _unknown(f.data) if kind == "group" else str(f.data))
        parts.append(f"{f.field_number}:{kind}:{value}")
    return "[" + ", ".join(parts) + "]"


def _diff_value(fd: FieldDescriptor, e: Any, g: Any, p: str, tol: Tolerance, out: list) -> None:
    if fd.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        out.extend(diff_messages(e, g, p, tol))
    elif not _scalar_equal(fd, e, g, tol):
        out.append((p, render_field(fd, e), render_field(fd, g)))


def _diff_map(fd: FieldDescriptor, e: Any, g: Any, p: str, tol: Tolerance, out: list) -> None:
    """Entries in key order (numbers by value, false before true, strings by code point)."""
    value_fd = fd.message_type.fields_by_name["value"]
    for k in sorted(set(e) | set(g)):
        _diff_present(value_fd, k in e, e[k] if k in e else None, k in g, g[k] if k in g else None,
                      f"{p}[{render(k)}]", tol, out, MISSING)


# ---------------------------------------------------------------- lists of messages (a stream)

ALIGN_LIMIT = 10_000  # pairs compared at most to align two streams; past it, index by index
SHORT_LIMIT = 80      # code points of a message's short rendering


def diff_stream(exp: list[Message], got: list[Message], path: str, tol: Tolerance = Tolerance()) -> list[tuple[str, str, str]]:
    """The differences between two lists of messages (the responses of a call, the requests a server
    read), docs/peer-contract.md "Streams": the count, then what went missing, arrived extra or moved,
    each by its index and a short rendering, and the field differences of the messages that changed.

    The lists are aligned on their longest common subsequence of equal messages; between two aligned
    messages, the unaligned ones of each side are paired in order (their field differences), and the
    rest are missing (expected index) or extra (received index). An unaligned expected message that
    equals an unaligned received one elsewhere has moved."""
    out: list[tuple[str, str, str]] = []
    if len(exp) != len(got):
        out.append((f"{path}.count", str(len(exp)), str(len(got))))
    n, m = len(exp), len(got)
    if n == m and all(not diff_messages(e, g, "", tol) for e, g in zip(exp, got)):
        return out
    if n * m > ALIGN_LIMIT:  # too long to align: index by index, as the count says
        for i, (e, g) in enumerate(zip(exp, got)):
            out += diff_messages(e, g, f"{path}[{i}]", tol)
        return out
    eq = [[not diff_messages(e, g, "", tol) for g in got] for e in exp]
    # Of the longest common subsequences, the one with the most messages at their own index: a
    # reversed stream keeps its middle in place, and the rest reads as moved (never "moved" to
    # the index it already has). Weight: a pair counts `bonus` (more than any number of same-index
    # pairs), and 1 more at its own index.
    bonus = n + m + 1
    lcs = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            skip = max(lcs[i + 1][j], lcs[i][j + 1])
            lcs[i][j] = max(skip, lcs[i + 1][j + 1] + bonus + (i == j)) if eq[i][j] else skip
    gaps: list[tuple[list[int], list[int]]] = [([], [])]  # unaligned (expected, received) between anchors
    i = j = 0
    while i < n or j < m:
        if i < n and j < m and eq[i][j] and lcs[i][j] == lcs[i + 1][j + 1] + bonus + (i == j):
            gaps.append(([], []))
            i, j = i + 1, j + 1
        elif j >= m or (i < n and lcs[i + 1][j] >= lcs[i][j + 1]):
            gaps[-1][0].append(i)
            i += 1
        else:
            gaps[-1][1].append(j)
            j += 1
    moved: dict[int, int] = {}
    taken: set[int] = set()
    free_got = sorted(j for _, gs in gaps for j in gs)
    for i in sorted(i for es, _ in gaps for i in es):
        j = next((j for j in free_got if j not in taken and eq[i][j]), None)
        if j is not None:
            moved[i] = j
            taken.add(j)
    for es, gs in gaps:
        es = [i for i in es if i not in moved]
        gs = [j for j in gs if j not in taken]
        for i, j in zip(es, gs):
            out += diff_messages(exp[i], got[j], f"{path}[{i}]", tol)
        out += [(f"{path}[{i}]", short(exp[i]), MISSING) for i in es[len(gs):]]
        out += [(f"{path}[{j}]", MISSING, short(got[j])) for j in gs[len(es):]]
    out += [(f"{path}[{i}]", short(exp[i]), f"<moved to [{j}]>") for i, j in sorted(moved.items())]
    return out


def short(msg: Message) -> str:
    """A message in one line: its set fields in declaration order, `name: value` (values as diffs
    render them; a message `{…}`, a list or map by its size `[n]`), cut at SHORT_LIMIT code points."""
    parts = []
    for fd in msg.DESCRIPTOR.fields:
        if fd.is_repeated:
            size = len(getattr(msg, fd.name))
            if size:
                parts.append(f"{fd.name}: [{size}]")
        elif (msg.HasField(fd.name) if fd.has_presence else _set_implicitly(fd, getattr(msg, fd.name))):
            value = getattr(msg, fd.name)
            parts.append(f"{fd.name}: {'{…}' if fd.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE else render_field(fd, value)}")
    text = "{" + ", ".join(parts) + "}"
    return text if len(text) <= SHORT_LIMIT else text[: SHORT_LIMIT - 1] + "…"


def _set_implicitly(fd: FieldDescriptor, value: Any) -> bool:
    """A field without presence is on the wire when it is not its type's zero (-0.0 included)."""
    if fd.cpp_type in _FLOATS:
        return value != 0 or math.copysign(1.0, value) < 0
    return value != fd.default_value
