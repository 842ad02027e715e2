"""The fuzz strategies (harness/fuzz/strategies.py) and seeded examples (harness/fuzz/examples.py):
every field kind is drawn, the edges come up, recursion stops, the size budget holds, examples
load as ordinary cases, and the same seed gives the same examples."""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from typing import Any, Iterator

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor as FD
from google.protobuf.message import Message

from harness.cases import model
from harness.cases.values import INT_RANGE, MESSAGE_BUDGET
from harness.fuzz import examples, run, strategies

SEED = 1  # the seed of conftest's `draw` here
EXAMPLES = 100


def _type(name: str) -> Any:
    return descriptor_pool.Default().FindMessageTypeByName(name)


def _method(name: str) -> Any:
    svc, _, meth = name.partition("/")
    return descriptor_pool.Default().FindServiceByName(svc).methods_by_name[meth]


def _walk(msg: Message, depth: int = 0) -> Iterator[tuple[FD, Any, int]]:
    """Every set field (extensions too) of msg and its sub-messages, with its depth."""
    for fd, value in msg.ListFields():
        is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry
        values = list(value.values()) if is_map else (list(value) if fd.is_repeated else [value])
        for v in values:
            yield fd, v, depth
            if isinstance(v, Message):
                yield from _walk(v, depth + 1)
        if is_map:
            for k in value:
                yield fd.message_type.fields_by_name["key"], k, depth


@pytest.fixture(scope="module")
def everything(seed_gen: Any, draw: Any) -> list[Message]:
    return draw(strategies.messages(_type("shapes.v1.Everything")), 200)


@pytest.mark.parametrize("name", ["shapes.v1.Scalars", "shapes.v1.Repeats", "shapes.v1.Maps", "shapes.v1.Choice",
                                  "shapes.v1.Presence", "shapes.v1.WellKnown", "shapes.v1.Everything"])
def test_every_field_kind_of_every_shape_is_drawn(seed_gen: Any, name: str, draw: Any) -> None:
    drawn = draw(strategies.messages(_type(name)), EXAMPLES)
    seen = {fd.full_name for msg in drawn for fd, _, _ in _walk(msg)}
    missing = [fd.full_name for fd in _type(name).fields if fd.full_name not in seen]
    assert not missing, f"never drawn: {missing}"
    if name == "shapes.v1.Maps":  # map keys of every key type
        keys = {fd.containing_type.full_name for msg in drawn for fd, _, _ in _walk(msg) if fd.name == "key"}
        assert len(keys) == 15


def test_extensions_and_closed_enums(seed_gen: Any, draw: Any) -> None:
    drawn = draw(strategies.messages(_type("shapes.legacy.Legacy")), EXAMPLES)
    extensions = {fd.full_name for msg in drawn for fd, _, _ in _walk(msg) if fd.is_extension}
    assert {"shapes.legacy.note", "shapes.legacy.Annex.serial", "shapes.more.Holder.holder_level", "shapes.more.more_tags"} <= extensions
    levels = {v for msg in drawn for fd, v, _ in _walk(msg) if fd.enum_type is not None}
    known = {v.number for v in _type("shapes.legacy.Legacy").fields_by_name["level"].enum_type.values}
    assert levels <= known  # a closed enum gets known numbers only (an unknown one becomes an unknown field)
    assert all(msg.IsInitialized() for msg in drawn)  # required fields always set


def test_edges_come_up(everything: list[Message], draw: Any) -> None:
    by_type: dict[int, set[Any]] = {}
    floats: dict[int, list[float]] = {FD.TYPE_FLOAT: [], FD.TYPE_DOUBLE: []}
    strings: list[str] = []
    open_enums: list[tuple[FD, int]] = []
    for msg in everything:
        for fd, v, _ in _walk(msg):
            if fd.type in INT_RANGE:
                by_type.setdefault(fd.type, set()).add(v)
            elif fd.type in floats:
                floats[fd.type].append(v)
            elif fd.type == FD.TYPE_STRING:
                strings.append(v)
            elif fd.type == FD.TYPE_ENUM and not fd.enum_type.is_closed:
                open_enums.append((fd, v))
    # the integer and float edges, from the field strategy itself (400 draws): which values 200 whole
    # messages happen to hold depends on Hypothesis' draws, which vary with the modules loaded (a
    # proto3 field set to 0 is not even on the message)
    scalars_type = _type("shapes.v1.Scalars")
    for fd in scalars_type.fields:
        if fd.type in floats:
            floats[fd.type] += draw(strategies.scalar(fd), 400)
        elif fd.type in INT_RANGE:
            by_type.setdefault(fd.type, set()).update(draw(strategies.scalar(fd), 400))
    for t, (lo, hi) in INT_RANGE.items():
        assert {lo, hi} <= by_type[t], f"type {t}: edges {lo}, {hi} not both drawn"
    for t, values in floats.items():
        assert any(math.isnan(v) for v in values) and math.inf in values and -math.inf in values
        assert any(v == 0 and math.copysign(1, v) < 0 for v in values)  # -0.0
        assert any(0 < abs(v) < 2.3e-308 for v in values) or t == FD.TYPE_FLOAT  # double subnormals
    # float fields hold float32 values exactly: the expectation is what both languages hold
    assert all(math.isnan(v) or struct.unpack("<f", struct.pack("<f", v))[0] == v for v in floats[FD.TYPE_FLOAT])
    assert any(0 < abs(v) < 1.2e-38 for v in floats[FD.TYPE_FLOAT])  # float32 subnormals
    assert any("\x00" in s for s in strings) and any(len(s.encode()) > len(s) for s in strings)
    assert not any(0xD800 <= ord(c) <= 0xDFFF for s in strings for c in s)  # valid UTF-8 only (see module doc)
    assert any(v not in fd.enum_type.values_by_number for fd, v in open_enums)  # unknown open-enum numbers


def test_recursion_stops_and_messages_stay_small(seed_gen: Any, draw: Any) -> None:
    drawn = draw(strategies.messages(_type("shapes.v1.Tree")), 60)
    depths = [d for msg in drawn for _, _, d in _walk(msg)]
    assert max(depths) == strategies.MAX_DEPTH  # reached, never passed
    assert all(len(msg.SerializeToString()) <= MESSAGE_BUDGET for msg in drawn)


def test_every_streaming_structure_is_drawn_and_loads_as_a_case(seed_gen: Any, draw: Any) -> None:
    bidi = draw(strategies.calls(_method("routeguide.RouteGuide/RouteChat")), 80)
    assert {c.bidi for c in bidi} == {"half_duplex", "ping_pong"}
    assert any(c.server.get("read_requests") is not None for c in bidi)
    cancels = [c for c in bidi if c.cancel_after_responses is not None]
    assert cancels and all(0 < c.cancel_after_responses < len(c.server["responses"]) for c in cancels)
    assert all(len(c.expect["responses"]) == c.cancel_after_responses for c in cancels)
    assert len(Counter(len(c.requests) for c in bidi)) >= 4  # random message counts
    statuses = Counter(c.expect["status"] for c in bidi)
    # (how many of each depends on the draws: Hypothesis also mines constants from the loaded modules)
    assert statuses["OK"] >= len(bidi) / 4 and statuses["CANCELLED"] >= len(cancels) and len(statuses) >= 4
    unary = draw(strategies.calls(_method("shapes.v1.Shapes/Unary")), 40)
    assert all(len(c.requests) == 1 and len(c.expect["responses"]) == (c.expect["status"] == "OK") for c in unary)
    # as a case file, the calls resolve like any hand-written case (the JSON parses, the shape is legal)
    cases = [model.Case(f"{c.method}/fuzz/e{i}", [c], "test") for i, c in enumerate(bidi + unary)]
    text = run.save_text(cases)
    assert "\\u0085" in json.dumps([c.to_json() for c in cases])  # NEL: a line break to YAML 1.1, kept
    loaded = model.load_file("fuzz.yaml", text=text)
    as_text = lambda cs: [json.dumps(c.to_json(), sort_keys=True) for c in cs]  # noqa: E731 - text: -0.0 is not 0.0
    assert as_text(loaded) == as_text(cases)


def test_same_seed_same_examples_other_seed_others(seed_gen: Any) -> None:
    m = _method("shapes.legacy.LegacyService/Collect")
    first = [json.dumps(c.to_json()) for c in examples.draw(m, 7, 0, 20)]
    # how many of the 20 draws survive depends on the draws themselves (Hypothesis also mines the
    # constants of every loaded module, so any new literal in the harness changes them): not pinned
    assert len(first) >= 10
    assert [json.dumps(c.to_json()) for c in examples.draw(m, 7, 0, 20)] == first
    assert [json.dumps(c.to_json()) for c in examples.draw(m, 8, 0, 20)] != first
    assert [json.dumps(c.to_json()) for c in examples.draw(m, 7, 1, 20)] != first  # the next round: new ones


def test_floats_inside_an_any_are_written_so_they_parse_back(seed_gen: Any) -> None:
    from google.protobuf import json_format, wrappers_pb2
    from google.protobuf.message_factory import GetMessageClass

    big = 3.4028234663852886e38  # float32 max: json_format writes 3.4028235e+38, then refuses it
    cls = GetMessageClass(_type("shapes.v1.WellKnown"))
    scalars = GetMessageClass(_type("shapes.v1.Scalars"))(f_float=big)
    for inner in (wrappers_pb2.FloatValue(value=big), scalars):
        msg = cls()
        msg.any.Pack(inner)
        parsed = json_format.ParseDict(strategies.json_of(msg), cls())
        assert parsed == msg
