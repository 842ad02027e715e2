"""The Go probe client's decode (dynamicpb + protojson) agrees with Python's (json_format) on every
message type of the seed protos, for values drawn like the fuzzer's (NaN, ±inf, -0.0, int64 edges,
any Unicode, bytes, maps, oneofs, well-known types, Any): check 3 (schema drift) compares the two, so
a disagreement here would be a false alarm there. The responses are the request bytes echoed back by
a raw grpcio handler, so both decodes read the very same bytes."""

from __future__ import annotations

import base64
import math
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from harness.fuzz.strategies import messages
from harness.probe import decodes, goclient, schema
from harness.protoset import descriptors, discover

REPO = Path(__file__).resolve().parent.parent
ECHO = "probetest.Echo"


def _types() -> list[str]:
    """Every top-level message type of the seed protos' own files."""
    ps = discover(REPO / "protos")
    own = set(ps.files)
    return sorted(f"{f.package}.{m.name}" if f.package else m.name
                  for f in descriptors.descriptor_set(ps).file if f.name in own for m in f.message_type)


def _echo_file(types: list[str]) -> descriptor_pb2.FileDescriptorProto:
    """A service with one method per type, taking and returning it: what the Go client decodes with."""
    pool = descriptor_pool.Default()
    f = descriptor_pb2.FileDescriptorProto(name="probetest_echo.proto", package="probetest", syntax="proto3")
    f.dependency.extend(sorted({pool.FindMessageTypeByName(t).file.name for t in types}))
    svc = f.service.add(name="Echo")
    for i, t in enumerate(types):
        svc.method.add(name=f"M{i}", input_type=f".{t}", output_type=f".{t}")
    return f


@pytest.fixture(scope="module")
def echo(seed_gen: ModuleType) -> Iterator[tuple[list[str], goclient.GoClient]]:
    types = _types()  # seed_gen: the seed types are in the default pool, with their modules
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handlers = {f"M{i}": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req) for i in range(len(types))}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ECHO, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    fds = schema.from_protos(REPO / "protos")
    fds.file.append(_echo_file(types))
    try:
        with goclient.GoClient(schema.Connection(f"127.0.0.1:{port}"), fds.SerializeToString()) as go:
            yield types, go
    finally:
        server.stop(0)


@seed(1)  # the same values every run, as the fuzz tests draw them (3000 unseeded examples passed once)
@settings(max_examples=100, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_go_decode_agrees_with_json_format(echo: tuple[list[str], goclient.GoClient], data: st.DataObject) -> None:
    types, go = echo
    i = data.draw(st.integers(0, len(types) - 1), label="type")
    msg = data.draw(messages(descriptor_pool.Default().FindMessageTypeByName(types[i])), label="message")
    raw = msg.SerializeToString()
    out = go.call({"id": "d", "method": f"{ECHO}/M{i}", "streaming": "unary", "requests": [base64.b64encode(raw).decode()],
                   "metadata": {}, "timeout_ms": 5000, "cancel_after_responses": None})
    assert out["code"] == 0, out
    assert base64.b64decode(out["responses"][0]) == raw
    python = json_format.MessageToDict(type(msg).FromString(raw))
    go_json = out["decoded"][0]
    assert "error" not in go_json, go_json
    assert not go_json["unknown_fields"]
    assert decodes.same(msg.DESCRIPTOR, go_json["json"], python), f"{types[i]}: Go {go_json['json']!r}\nPython {python!r}"


def _desc(seed_gen: ModuleType, name: str):  # noqa: ANN202
    return descriptor_pool.Default().FindMessageTypeByName(name)


@pytest.mark.parametrize("go, python, same", [
    ({"fFloat": 1e-45}, {"fFloat": 1.4013e-45}, True),              # one float32, two spellings
    ({"fFloat": 3.4028235e+38}, {"fFloat": 3.4028234663852886e+38}, True),  # FLT_MAX (json_format refuses its own)
    ({"fFloat": 0.1}, {"fFloat": 0.2}, False),
    ({"fDouble": 1}, {"fDouble": 1.0}, True),                      # protojson writes 1.0 as 1
    ({"fDouble": 0.1}, {"fDouble": 0.1000000001}, False),          # a double is not rounded
    ({"fDouble": -0.0}, {"fDouble": 0}, False),                    # the sign of zero counts
    ({"fFloat": "NaN"}, {"fFloat": "NaN"}, True),
    ({"fFloat": 1e-45, "fInt32": 1}, {"fFloat": 1.4013e-45, "fInt32": 2}, False),
])
def test_same_rounds_float32_only(seed_gen: ModuleType, go: dict, python: dict, same: bool) -> None:
    assert decodes.same(_desc(seed_gen, "shapes.v1.Scalars"), go, python) is same


def test_same_finds_float32_in_lists_wrappers_structs_and_anys(seed_gen: ModuleType) -> None:
    wk = _desc(seed_gen, "shapes.v1.WellKnown")
    assert decodes.same(wk, {"wFloat": 1e-45, "obj": {"a": 1}}, {"wFloat": 1.4013e-45, "obj": {"a": 1.0}})
    assert not decodes.same(wk, {"wDouble": 1e-45}, {"wDouble": 1.4013e-45})
    packed = "type.googleapis.com/shapes.v1.Scalars"
    assert decodes.same(wk, {"any": {"@type": packed, "fFloat": 1e-45}}, {"any": {"@type": packed, "fFloat": 1.4013e-45}})
    assert not decodes.same(wk, {"any": {"@type": packed, "fFloat": 1}}, {"any": {"@type": packed, "fFloat": 2}})
    rep = _desc(seed_gen, "shapes.v1.Repeats")
    assert decodes.same(rep, {"messages": [{"fFloat": 1e-45}]}, {"messages": [{"fFloat": 1.4013e-45}]})
    assert decodes.same(rep, {"packedDouble": [1, 2]}, {"packedDouble": [1.0, 2.0]})


def test_negative_zero_keeps_its_sign(echo: tuple[list[str], goclient.GoClient]) -> None:
    """protojson writes -0.0 as -0; Python's json would read the int 0 (GoClient reads it as -0.0)."""
    types, go = echo
    cls = GetMessageClass(descriptor_pool.Default().FindMessageTypeByName("shapes.v1.Scalars"))
    raw = cls(f_double=-0.0).SerializeToString()
    i = types.index("shapes.v1.Scalars")
    out = go.call({"id": "z", "method": f"{ECHO}/M{i}", "streaming": "unary", "requests": [base64.b64encode(raw).decode()],
                   "metadata": {}, "timeout_ms": 5000, "cancel_after_responses": None})
    got = out["decoded"][0]["json"]["fDouble"]
    assert got == 0 and math.copysign(1.0, got) == -1.0, got


def test_an_any_of_a_type_outside_the_protos_is_a_decode_error_not_a_crash() -> None:
    """Go's protojson reports an Any it cannot resolve as the response's decode error; Python's decode
    must too (json_format raises), or the probe of the whole method ends as the probe's own failure."""
    from google.protobuf import any_pb2

    from harness.probe import checks, clients

    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(any_pb2.DESCRIPTOR.serialized_pb))
    f = descriptor_pb2.FileDescriptorProto(name="t.proto", package="t", syntax="proto3",
                                           dependency=["google/protobuf/any.proto"])
    f.message_type.add(name="R").field.add(name="a", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                                           label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                                           type_name=".google.protobuf.Any")
    f.service.add(name="S").method.add(name="M", input_type=".t.R", output_type=".t.R")
    pool.Add(f)
    msg = GetMessageClass(pool.FindMessageTypeByName("t.R"))()
    msg.a.type_url, msg.a.value = "type.googleapis.com/no.such.Type", b"\x08\x01"
    raw = msg.SerializeToString()
    decoded = clients.decode(pool, "t.S/M", [raw])
    assert decoded is not None and "no.such.Type" in decoded[0]["error"]
    x = checks.Exchange("t.S/M", {}, {"py": {"responses": [base64.b64encode(raw).decode()], "decoded": decoded}}, pool)
    assert "py: response 0 protojson" in (checks.schema_conforms(x) or "")
