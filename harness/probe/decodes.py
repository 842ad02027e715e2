"""How two client flavours' decodes of one response compare (check 3, schema drift).

Each flavour writes its decode as protobuf JSON with its own library: protojson (Go) and json_format
(Python) spell some float32 values differently (1e-45 and 1.4013e-45 are one float32), and reading
a spelling back with json_format is no judge: it refuses its own ±3.4028235e+38 (FLT_MAX, spelled
shortest, is a little above FLT_MAX as a double). So the two JSON values are compared after every
float32 in them, found through the descriptor, is rounded to the float32 it denotes, and every double
is a float (protojson writes 1.0 as 1); everything else compares as written (NaN equal to NaN, -0.0
apart from 0).
"""

from __future__ import annotations

import json
import struct
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_FLOAT_VALUE = "google.protobuf.FloatValue"
_DOUBLES = ("google.protobuf.DoubleValue", "google.protobuf.Value", "google.protobuf.Struct",
            "google.protobuf.ListValue")  # every JSON number in them is a double


def same(desc: Descriptor, a: Any, b: Any) -> bool:
    """Whether two protobuf JSON values of message type desc denote the same message."""
    return _text(comparable(desc, a)) == _text(comparable(desc, b))


def comparable(desc: Descriptor, value: Any) -> Any:
    """value (protobuf JSON of type desc) with each float32 rounded to the float32 it denotes."""
    if desc.full_name == _FLOAT_VALUE:
        return _float32(value)
    if desc.full_name in _DOUBLES:
        return _doubles(value)
    if desc.full_name == "google.protobuf.Any" and isinstance(value, dict):
        return _any(desc, value)
    if not isinstance(value, dict) or desc.file.name.startswith("google/protobuf/"):
        return value  # other well-known types have no float32 in them
    by_json = {f.json_name: f for f in desc.fields} | {f.name: f for f in desc.fields}
    return {k: _field(by_json[k], v) if k in by_json else v for k, v in value.items()}


def _field(fd: FieldDescriptor, v: Any) -> Any:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        value_fd = fd.message_type.fields_by_name["value"]
        return {k: _one(value_fd, x) for k, x in v.items()} if isinstance(v, dict) else v
    if fd.is_repeated and isinstance(v, list):
        return [_one(fd, x) for x in v]
    return _one(fd, v)


def _one(fd: FieldDescriptor, v: Any) -> Any:
    if fd.type == FieldDescriptor.TYPE_FLOAT:
        return _float32(v)
    if fd.type == FieldDescriptor.TYPE_DOUBLE:
        return _doubles(v)
    if fd.message_type is not None:
        return comparable(fd.message_type, v)
    return v


def _any(desc: Descriptor, value: dict[str, Any]) -> Any:
    """An Any's fields are its packed type's (or "value" for a well-known type): found in the pool."""
    name = str(value.get("@type", "")).rpartition("/")[2]
    try:
        packed = desc.file.pool.FindMessageTypeByName(name)
    except KeyError:
        return value
    rest = {k: v for k, v in value.items() if k != "@type"}
    if packed.file.name.startswith("google/protobuf/") and "value" in rest:
        return {"@type": value["@type"], "value": comparable(packed, rest["value"])}
    return {"@type": value["@type"], **comparable(packed, rest)}


def _float32(v: Any) -> Any:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        try:
            return struct.unpack("<f", struct.pack("<f", float(v)))[0]
        except OverflowError:  # not a float32 at all: compared as written
            return v
    return v  # "NaN", "Infinity", "-Infinity", or not a number


def _doubles(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _doubles(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_doubles(x) for x in v]
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _text(v: Any) -> str:
    return json.dumps(v, sort_keys=True)
