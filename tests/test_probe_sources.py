"""The probe's descriptor sources (harness/probe/schema.py): a proto folder, and reflection in both
versions: grpcio-reflection serves v1alpha only, grpc-go serves v1 (and v1alpha). Both servers are
the harness's own peers on the seed protos, so what reflection says is compared with the folder."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path
from types import ModuleType

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from harness.engines import peer
from harness.probe import schema
from harness.protoset import discover
from harness.protoset.codegen import GoBuild, build_go

REPO = Path(__file__).resolve().parent.parent
PROTOS = REPO / "protos"


@pytest.fixture(scope="module")
def go_build() -> GoBuild:
    return build_go(discover(PROTOS))


def _shapes(s: schema.Schema, services: list[str]) -> dict[str, tuple[str, str, str, str]]:
    return {m.name: (m.streaming, m.input.full_name, m.output.full_name, m.idempotency_level) for m in s.methods()
            if m.service in services}


def test_from_protos_lists_the_folders_services_with_modes() -> None:
    s = schema.Schema.from_protos(PROTOS)
    assert "routeguide.RouteGuide" in s.services() and "grpc.health.v1.Health" not in s.services()
    modes = {m.name: m.streaming for m in s.methods() if m.service == "routeguide.RouteGuide"}
    assert modes == {"routeguide.RouteGuide/GetFeature": "unary", "routeguide.RouteGuide/ListFeatures": "server_stream",
                     "routeguide.RouteGuide/RecordRoute": "client_stream", "routeguide.RouteGuide/RouteChat": "bidi"}
    assert s.method("routeguide.RouteGuide/GetFeature").idempotency_level == "IDEMPOTENCY_UNKNOWN"
    with pytest.raises(schema.SchemaError, match="routeguide.RouteGuide/Nope: no such method"):
        s.method("routeguide.RouteGuide/Nope")


def test_idempotency_level_is_read_from_the_method_options() -> None:
    f = descriptor_pb2.FileDescriptorProto(name="idem.proto", package="idem", syntax="proto3")
    f.message_type.add(name="M")
    svc = f.service.add(name="S")
    for name, level in (("Read", "NO_SIDE_EFFECTS"), ("Put", "IDEMPOTENT"), ("Post", None)):
        m = svc.method.add(name=name, input_type=".idem.M", output_type=".idem.M")
        if level:
            m.options.idempotency_level = descriptor_pb2.MethodOptions.IdempotencyLevel.Value(level)
    s = schema.Schema(descriptor_pb2.FileDescriptorSet(file=[f]))
    assert {m.name: m.idempotency_level for m in s.methods()} == {
        "idem.S/Read": "NO_SIDE_EFFECTS", "idem.S/Put": "IDEMPOTENT", "idem.S/Post": "IDEMPOTENCY_UNKNOWN"}


def test_reflection_v1alpha_from_grpcio(seed_gen: ModuleType) -> None:
    folder = schema.Schema.from_protos(PROTOS)
    with peer.PythonServer(seed_gen) as server:
        r = schema.reflect(schema.Connection(server.address))
        reflected = schema.Schema(r.fds, served=r.services, source="grpcio")
    assert r.version == "v1alpha"  # grpcio-reflection answers v1 with UNIMPLEMENTED
    assert "grpc.reflection.v1.ServerReflection" not in r.services
    assert set(folder.services()) <= set(reflected.services())
    assert _shapes(reflected, folder.services()) == _shapes(folder, folder.services())


def test_reflection_v1_from_go_peer(go_build: GoBuild) -> None:
    folder = schema.Schema.from_protos(PROTOS)
    with peer.GoServer(go_build, "process") as server:
        r = schema.reflect(schema.Connection(server.address))
        reflected = schema.Schema(r.fds, served=r.services, source="grpc-go")
    assert r.version == "v1"
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= set(r.services)
    assert set(folder.services()) <= set(reflected.services())
    assert _shapes(reflected, folder.services()) == _shapes(folder, folder.services())
    # grpc-go names health grpc/health/v1/health.proto, grpcio-health-checking registers the same
    # content as grpc_health/v1/health.proto: in a pool that has grpcio's, grpcio's stands for it
    assert "grpc/health/v1/health.proto" in {f.name for f in r.fds.file}
    pool = descriptor_pool.DescriptorPool()
    grpcio_health = descriptor_pb2.FileDescriptorProto()
    health_pb2.DESCRIPTOR.CopyToProto(grpcio_health)
    pool.Add(grpcio_health)
    importer = descriptor_pb2.FileDescriptorProto(name="uses_health.proto", package="uses",
                                                  dependency=["grpc/health/v1/health.proto"])
    importer.message_type.add(name="Holder").field.add(
        name="req", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL, type_name=".grpc.health.v1.HealthCheckRequest")
    fds = descriptor_pb2.FileDescriptorSet()
    fds.CopyFrom(r.fds)
    fds.file.append(importer)
    shared = schema.Schema(fds, served=r.services, pool=pool)
    assert shared.method("grpc.health.v1.Health/Watch").input.file.name == "grpc_health/v1/health.proto"
    assert pool.FindMessageTypeByName("uses.Holder").fields[0].message_type.file.name == "grpc_health/v1/health.proto"


def test_no_reflection_service_says_to_pass_protos() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with pytest.raises(schema.SchemaError, match=r"serves no reflection service \(v1: UNIMPLEMENTED; "
                                                     r"v1alpha: UNIMPLEMENTED\): pass --protos"):
            schema.from_reflection(f"127.0.0.1:{port}")
    finally:
        server.stop(0)


def test_a_service_reflection_cannot_describe_is_left_out() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    reflection.enable_server_reflection(["no.such.Service", "grpc.health.v1.Health", reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        r = schema.reflect(schema.Connection(f"127.0.0.1:{port}"))
    finally:
        server.stop(0)
    assert list(r.unresolved) == ["no.such.Service"] and "service no.such.Service" in r.unresolved["no.such.Service"]
    assert schema.Schema(r.fds, served=r.services).services() == ["grpc.health.v1.Health",
                                                                  "grpc.reflection.v1alpha.ServerReflection"]


def test_a_different_file_of_a_loaded_name_is_refused() -> None:
    s = schema.Schema.from_protos(PROTOS)
    fds = type(s.fds)()
    fds.CopyFrom(s.fds)
    hello = next(f for f in fds.file if f.name == "hello.proto")
    hello.message_type[0].field[0].number = 99
    with pytest.raises(schema.SchemaError, match="hello.proto .* differs from hello.proto"):
        schema.Schema(fds, pool=s.pool)
    assert schema.Schema(s.fds, pool=s.pool).services() == s.services()  # the same files again: kept


def test_connection_options() -> None:
    with pytest.raises(schema.SchemaError, match="--cert and --key go together"):
        schema.Connection("h:1", tls=True, cert=Path("c.pem"))
    c = schema.Connection("h:1", tls=True, ca=Path("ca.pem"), authority="a.test", token="t")
    assert c.go_args() == ["--target", "h:1", "--tls", "--ca", "ca.pem", "--authority", "a.test", "--token", "t"]
    assert ("grpc.ssl_target_name_override", "a.test") in c.channel_options()
    assert ("grpc.enable_http_proxy", 0) in c.channel_options()
    assert c.metadata() == [("authorization", "Bearer t")]
