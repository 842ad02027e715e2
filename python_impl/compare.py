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
from google.protobuf.message import Message
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
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float):
        return _repr_float32(value) if float32 else repr(value)
    if isinstance(value, Message):
        return "{" + value.DESCRIPTOR.full_name + "}"
    return str(value)


def _repr_float32(value: float) -> str:
    """Shortest decimal that reads back as the same float32 (0.1, not 0.10000000149011612)."""
    if math.isnan(value) or math.isinf(value):
        return repr(value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == value:
            return repr(float(text))
    return repr(value)


def floats_equal(exp: float, got: float, tol: Tolerance) -> bool:
    if math.isnan(exp) or math.isnan(got):
        return math.isnan(exp) and math.isnan(got)
    if exp == got:
        # -0.0 == 0.0 numerically, but the sign is a value the sender chose.
        return math.copysign(1.0, exp) == math.copysign(1.0, got)
    return abs(got - exp) <= tol.abs + tol.rel * abs(exp)


def _scalar_equal(fd: FieldDescriptor, exp: Any, got: Any, tol: Tolerance) -> bool:
    if fd.cpp_type in _FLOATS:
        return floats_equal(exp, got, tol)
    return exp == got


def diff_messages(exp: Message, got: Message, path: str = "", tol: Tolerance = Tolerance()) -> list[tuple[str, str, str]]:
    """(path, expected, got) for every difference between two messages of the same type."""
    out: list[tuple[str, str, str]] = []
    for fd in exp.DESCRIPTOR.fields:
        p = f"{path}.{fd.name}" if path else fd.name
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            _diff_map(fd, getattr(exp, fd.name), getattr(got, fd.name), p, tol, out)
        elif fd.is_repeated:
            e, g = list(getattr(exp, fd.name)), list(getattr(got, fd.name))
            if len(e) != len(g):
                out.append((f"{p}.count", str(len(e)), str(len(g))))
            for i, (ev, gv) in enumerate(zip(e, g)):
                _diff_value(fd, ev, gv, f"{p}[{i}]", tol, out)
        else:
            if fd.has_presence:
                he, hg = exp.HasField(fd.name), got.HasField(fd.name)
                if he != hg:
                    out.append((p, "set" if he else "unset", "set" if hg else "unset"))
                    continue
                if not he:
                    continue
            _diff_value(fd, getattr(exp, fd.name), getattr(got, fd.name), p, tol, out)
    out.extend(_diff_extensions(exp, got, path, tol))
    ue, ug = _unknown(exp), _unknown(got)
    if ue != ug:
        out.append((f"{path}.<unknown fields>" if path else "<unknown fields>", str(ue), str(ug)))
    return out


def _diff_extensions(exp: Message, got: Message, path: str, tol: Tolerance) -> list[tuple[str, str, str]]:
    """Set extension fields (proto2 / editions), compared like fields; path `[full.name]`."""
    if not exp.DESCRIPTOR.extension_ranges:
        return []
    set_e = {fd.full_name: fd for fd, _ in exp.ListFields() if fd.is_extension}
    set_g = {fd.full_name: fd for fd, _ in got.ListFields() if fd.is_extension}
    out: list[tuple[str, str, str]] = []
    for name in sorted(set_e | set_g):
        fd = set_e.get(name) or set_g[name]
        p = f"{path}.[{name}]" if path else f"[{name}]"
        if (name in set_e) != (name in set_g):
            out.append((p, "set" if name in set_e else "unset", "set" if name in set_g else "unset"))
        elif fd.is_repeated:
            e, g = list(exp.Extensions[fd]), list(got.Extensions[fd])
            if len(e) != len(g):
                out.append((f"{p}.count", str(len(e)), str(len(g))))
            for i, (ev, gv) in enumerate(zip(e, g)):
                _diff_value(fd, ev, gv, f"{p}[{i}]", tol, out)
        else:
            _diff_value(fd, exp.Extensions[fd], got.Extensions[fd], p, tol, out)
    return out


def _unknown(msg: Message) -> list[tuple[int, int, str]]:
    """Unknown fields as comparable data: (number, wire type, value), in field-number order."""
    fields = [(f.field_number, f.wire_type, render(f.data) if not hasattr(f.data, "__iter__") or
               isinstance(f.data, bytes) else repr([(x.field_number, x.data) for x in f.data]))
              for f in UnknownFieldSet(msg)]
    return sorted(fields)


def _diff_value(fd: FieldDescriptor, e: Any, g: Any, p: str, tol: Tolerance, out: list) -> None:
    if fd.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        out.extend(diff_messages(e, g, p, tol))
    elif not _scalar_equal(fd, e, g, tol):
        f32 = fd.type == FieldDescriptor.TYPE_FLOAT
        out.append((p, render(e, f32), render(g, f32)))


def _diff_map(fd: FieldDescriptor, e: Any, g: Any, p: str, tol: Tolerance, out: list) -> None:
    value_fd = fd.message_type.fields_by_name["value"]
    for k in sorted(set(e) | set(g), key=lambda k: (str(type(k)), k)):
        kp = f"{p}[{render(k)}]"
        if k not in g:
            out.append((kp, render(e[k]), "missing"))
        elif k not in e:
            out.append((kp, "missing", render(g[k])))
        else:
            _diff_value(value_fd, e[k], g[k], kp, tol, out)
