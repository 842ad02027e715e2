"""The @repeat spec (python_impl/bulk.py): a compact bulk value that expands to exactly the message
its JSON literal gives, and the size-limit cases written with it."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message_factory import GetMessageClass

from harness.cases import generate as casegen
from harness.protoset import discover
from python_impl import bulk

REPO = Path(__file__).resolve().parent.parent


def cls(name: str):
    return GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))


def spec(count: int, unit) -> dict:
    return {bulk.REPEAT: {"count": count, "unit": unit}}


def test_every_shape_expands_to_its_literal(seed_gen: ModuleType) -> None:
    """A string, a bytes field, an element of a repeated string and of a repeated bytes field, a
    repeated scalar, a repeated message, and a string inside a list element and a message field."""
    scalars = {"fString": spec(5, "hé"), "fBytes": spec(3, base64.b64encode(b"\0\xff").decode()), "fInt32": 7}
    literal = {"fString": "hé" * 5, "fBytes": base64.b64encode(b"\0\xff" * 3).decode(), "fInt32": 7}
    assert bulk.parse(scalars, cls("shapes.v1.Scalars")()) == json_format.ParseDict(literal, cls("shapes.v1.Scalars")())
    repeats = {"strings": ["a", spec(4, "xy"), "b"], "blobs": [spec(2, "AAE=")], "packedInt32": spec(6, -1),
               "messages": spec(3, {"fString": "m", "fDouble": "NaN"})}
    literal = {"strings": ["a", "xyxyxyxy", "b"], "blobs": ["AAEAAQ=="], "packedInt32": [-1] * 6,
               "messages": [{"fString": "m", "fDouble": "NaN"}] * 3}
    got = bulk.parse(repeats, cls("shapes.v1.Repeats")())
    want = json_format.ParseDict(literal, cls("shapes.v1.Repeats")())
    assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)
    drawing = {"shapes": [{"circle": 1.5}, {"label": spec(3, "ab")}]}
    assert bulk.parse(drawing, cls("shapes.draw.Drawing")()) == json_format.ParseDict(
        {"shapes": [{"circle": 1.5}, {"label": "ababab"}]}, cls("shapes.draw.Drawing")())
    # proto field names are accepted as json_format accepts them
    assert bulk.parse({"f_string": spec(2, "q")}, cls("shapes.v1.Scalars")()).f_string == "qq"
    # a value without a spec is json_format's own result, untouched
    plain = {"fString": "plain", "fUint64": "18446744073709551615"}
    assert bulk.parse(plain, cls("shapes.v1.Scalars")()) == json_format.ParseDict(plain, cls("shapes.v1.Scalars")())


@pytest.mark.parametrize(("value", "error"), [
    ({"fInt32": spec(2, 1)}, "fInt32: @repeat fills a string, bytes or repeated field"),
    ({"fString": spec(-1, "x")}, "non-negative"),
    ({"fString": spec(True, "x")}, "non-negative"),
    ({"fString": {bulk.REPEAT: {"count": 2}}}, "exactly count and unit"),
    ({"fString": {bulk.REPEAT: {"count": 2, "unit": "x", "extra": 1}}}, "exactly count and unit"),
    ({"nope": spec(2, "x")}, "has no field 'nope'"),
    ({"fBytes": spec(2, "not base64!")}, "fBytes"),
])
def test_a_bad_spec_is_an_error_naming_the_field(seed_gen: ModuleType, value: dict, error: str) -> None:
    with pytest.raises(json_format.ParseError, match=error.replace("(", r"\(")):
        bulk.parse(value, cls("shapes.v1.Scalars")())


def test_a_spec_into_a_map_is_refused(seed_gen: ModuleType) -> None:
    with pytest.raises(json_format.ParseError, match="map"):
        bulk.parse({"byString": spec(2, {"a": "b"})}, cls("shapes.v1.Maps")())


def test_size_cases_carry_specs_not_literals_and_parse_fast(seed_gen: ModuleType) -> None:
    """Each size-limit case is a few hundred bytes of JSON, and its 4 MiB messages parse in
    milliseconds: the literal they replace took about 100 ms per message in json_format. The bound
    is loose (a busy machine), the literal's cost is measured beside it."""
    made = [c for c in casegen.generate(discover(REPO / "protos"))
            if c.name.rsplit("/", 1)[1] in casegen.SIZE_PATTERNS]
    assert len(made) >= 20
    for c in made:
        call = c.calls[0]
        values = [*call.requests, *(call.expect.get("responses") or []), *((call.server or {}).get("responses") or [])]
        assert any(bulk.REPEAT in repr(v) for v in values), c.name
        assert len(repr(c.to_json())) < 8000, c.name
    call = next(c for c in made if c.name == "tutorial.HelloService/SayHello/protocol/near_size_limit").calls[0]
    request_cls = cls(call.request_type)
    start = time.perf_counter()
    msg = bulk.parse(call.requests[0], request_cls())
    expanded = time.perf_counter() - start
    literal = json_format.MessageToDict(msg)
    start = time.perf_counter()
    assert json_format.ParseDict(literal, request_cls()) == msg
    parsed = time.perf_counter() - start
    assert msg.ByteSize() > casegen.RECV_LIMIT - 128 * 1024
    assert expanded < parsed, (expanded, parsed)
