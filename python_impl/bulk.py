"""Protobuf JSON with compact bulk: the `@repeat` spec (docs/peer-contract.md, "Bulk values").

A size-limit case carries about 4 MiB in one field. Written out as a JSON literal, that value costs
more than the call itself: json_format scans every character of a string for unpaired surrogates
(about 100 ms per 4 MiB) and converts a long repeated field element by element. So a case may
write such a field as

    {"@repeat": {"count": N, "unit": <the JSON of one unit>}}

meaning: a string or bytes field holds `unit` N times over; a repeated field holds N copies of the
element `unit`; an element of a repeated string or bytes field written as the spec holds `unit` N
times over. `parse` is json_format.ParseDict plus that expansion: it parses the rest of the
message as usual, parses the unit once through json_format (so a unit means exactly what it means
anywhere else), and sets the field directly. The Go engine expands the same spec
(go_peer/internal/engine/bulk.go), so both receivers compare the same values field by field.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

REPEAT = "@repeat"

Path = list[str | int]  # JSON keys and list indices from the message to the field


def is_spec(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and REPEAT in value


def parse(value: Any, message: Message, **kwargs: Any) -> Message:
    """json_format.ParseDict(value, message, **kwargs), with every @repeat spec in value expanded."""
    found: list[tuple[Path, dict[str, Any]]] = []
    rest = _strip(value, [], found) if isinstance(value, (dict, list)) else value
    json_format.ParseDict(rest, message, **kwargs)
    for path, spec in found:
        _expand(message, path, spec)
    return message


def _strip(value: Any, path: Path, found: list[tuple[Path, dict[str, Any]]]) -> Any:
    """value without its @repeat specs (recorded in found, with their paths; an element of a list
    becomes "" until it is expanded); value itself when it has none, so the common case copies
    nothing. Only containers are visited: this runs on every message every engine parses."""
    if isinstance(value, dict):
        out = None
        for k, v in value.items():
            if not isinstance(v, (dict, list)):
                continue
            if is_spec(v):
                found.append(([*path, k], v[REPEAT]))
                new: Any = _DROP
            else:
                new = _strip(v, [*path, k], found)
            if new is not v:
                out = dict(value) if out is None else out
                if new is _DROP:
                    del out[k]
                else:
                    out[k] = new
        return value if out is None else out
    items = None
    for i, v in enumerate(value):
        if not isinstance(v, (dict, list)):
            continue
        if is_spec(v):
            found.append(([*path, i], v[REPEAT]))
            new = ""
        else:
            new = _strip(v, [*path, i], found)
        if new is not v:
            items = list(value) if items is None else items
            items[i] = new
    return value if items is None else items


_DROP = object()


def _expand(message: Message, path: Path, spec: Any) -> None:
    where = _render(path)
    if not isinstance(spec, dict) or set(spec) != {"count", "unit"}:
        raise json_format.ParseError(f"{where}: {REPEAT} takes exactly count and unit, got {spec!r}")
    count = spec["count"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise json_format.ParseError(f"{where}: {REPEAT}.count must be a non-negative integer, got {count!r}")
    element = path[-1] if isinstance(path[-1], int) else None  # one element of a repeated string/bytes field
    key_at = -2 if element is not None else -1
    holder = message
    for i, step in enumerate(path[:key_at]):
        if isinstance(step, int):
            holder = holder[step]
            continue
        fd = _field(holder, step, _render(path[: i + 1]))
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            raise json_format.ParseError(f"{where}: {REPEAT} cannot be reached through a map ({fd.full_name})")
        holder = getattr(holder, fd.name)
    fd = _field(holder, str(path[key_at]), where)
    text = fd.type in (fd.TYPE_STRING, fd.TYPE_BYTES)
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        raise json_format.ParseError(f"{where}: {REPEAT} cannot fill a map ({fd.full_name})")
    if element is not None and not text:
        raise json_format.ParseError(f"{where}: {REPEAT} fills a string, bytes or repeated field, or one element "
                                     f"of a repeated string or bytes field; {fd.full_name} is neither")
    if not fd.is_repeated and not text:
        raise json_format.ParseError(f"{where}: {REPEAT} fills a string, bytes or repeated field, not "
                                     f"{fd.full_name}")
    # the unit means what json_format says it means: parse it through a message of the holder's type
    one = getattr(json_format.ParseDict({fd.json_name: [spec["unit"]] if fd.is_repeated else spec["unit"]},
                                        type(holder)()), fd.name)
    if element is not None:
        getattr(holder, fd.name)[element] = one[0] * count
    elif fd.is_repeated:
        getattr(holder, fd.name).extend([one[0]] * count)
    else:
        setattr(holder, fd.name, one * count)


def _field(holder: Message, key: str, where: str) -> Any:
    d = holder.DESCRIPTOR
    fd = d.fields_by_name.get(key) or next((f for f in d.fields if f.json_name == key), None)
    if fd is None:
        raise json_format.ParseError(f"{where}: {d.full_name} has no field {key!r}")
    return fd


def _render(path: Path) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in path).lstrip(".") or "(the message)"
