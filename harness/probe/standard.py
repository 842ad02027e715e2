"""Check 6, standard services: where the server serves reflection or health, they must agree with the
given protos and with the services the server answers. Reflection is asked through v1 first, then
v1alpha (the messages are the same on the wire; grpcio-reflection ships only v1alpha's)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb

REFLECTION = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")
HEALTH_CHECK = "grpc.health.v1.Health/Check"
STANDARD = frozenset({*REFLECTION, "grpc.health.v1.Health"})
# the synthetic echo services grpc-interop's own peers add for message-only files (harness/protoset/echo.py):
# a peer started by `grpc-interop serve` lists them; they are the harness's, not the server's drift
HARNESS_ECHO = ".interop_echo."
# what grpc-go answers for a service the server never registered (as opposed to "unknown method M for
# service S" of a registered one). grpcio's "Method not found!" is no proof: it answers that for an
# unknown method of a registered service too (a server on older protos), so it counts as UNIMPLEMENTED
UNKNOWN_SERVICE = ("unknown service ",)
ANSWERS, UNIMPLEMENTED, UNREGISTERED = "answers", "unimplemented", "unregistered"
TIMEOUT_S = 5.0


def _reflect(channel: grpc.Channel, service: str, reqs: list[rpb.ServerReflectionRequest],
             md: list[tuple[str, Any]]) -> list[rpb.ServerReflectionResponse]:
    stub = channel.stream_stream(f"/{service}/ServerReflectionInfo", request_serializer=rpb.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=rpb.ServerReflectionResponse.FromString)
    return list(stub(iter(reqs), timeout=TIMEOUT_S, metadata=md))


def _signatures(fdps: list[descriptor_pb2.FileDescriptorProto], service: str) -> dict[str, tuple[str, str, bool, bool]] | None:
    for f in fdps:
        for s in f.service:
            if f"{f.package + '.' if f.package else ''}{s.name}" == service:
                return {m.name: (m.input_type.lstrip("."), m.output_type.lstrip("."), m.client_streaming,
                                 m.server_streaming) for m in s.method}
    return None


def standard_services(channel: grpc.Channel, md: list[tuple[str, Any]], schema: Any, answered: dict[str, bool],
                      allowed: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """(findings as (method, text), notes). `answered`: service -> ANSWERS when a probed call of it got
    anything but UNIMPLEMENTED, UNREGISTERED when its calls got grpc-go's unknown-service answer,
    else UNIMPLEMENTED. `allowed(method)`: --methods lets the probe call it."""
    findings: list[tuple[str, str]] = []
    notes: list[str] = []
    # every service the descriptors declare, those of imported files too (a server may serve them)
    declared = {f"{f.package + '.' if f.package else ''}{s.name}" for f in schema.fds.file for s in f.service}
    for svc in REFLECTION:
        method = f"{svc}/ServerReflectionInfo"
        if not allowed(method):
            continue
        try:
            listed = _reflect(channel, svc, [rpb.ServerReflectionRequest(list_services="")], md)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                continue
            findings.append((method, f"list_services failed: {e.code().name} {e.details()!r}"))
            break
        names = [s.name for s in listed[0].list_services_response.service] if listed else []
        notes.append(f"reflection ({svc}) lists {len(names)} service(s)")
        echo = [n for n in names if HARNESS_ECHO in n]
        if echo:
            notes.append(f"reflection lists {len(echo)} echo service(s) of grpc-interop's own peers (interop_echo)")
        for name in names:
            if name not in declared and name not in STANDARD and name not in echo:
                findings.append((method, f"reflection lists {name}, which the given protos do not declare"))
            elif answered.get(name) == UNREGISTERED:
                findings.append((method, f"reflection lists {name}, but the server does not know it: its calls "
                                         f"answered UNIMPLEMENTED as an unknown service"))
        for name, state in sorted(answered.items()):
            if state == ANSWERS and name not in names:
                findings.append((method, f"{name} answers calls, but reflection does not list it"))
        for name in names:
            if name in declared and name not in STANDARD:
                problem = _compare_files(channel, svc, md, schema, name)
                if problem:
                    findings.append((method, problem))
        break
    else:
        notes.append("reflection: not served (or not within --methods)")
    if allowed(HEALTH_CHECK):
        stub = channel.unary_unary(f"/{HEALTH_CHECK}", request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                   response_deserializer=health_pb2.HealthCheckResponse.FromString)
        for name in sorted(answered):
            try:
                status = stub(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT_S, metadata=md).status
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                    notes.append("health: not served")
                    break
                continue  # NOT_FOUND: the server keeps no status for that service, which is allowed
            if status == health_pb2.HealthCheckResponse.SERVING and answered[name] == UNREGISTERED:
                findings.append((HEALTH_CHECK, f"health says {name} is SERVING, but the server does not know it: "
                                               f"its calls answered UNIMPLEMENTED as an unknown service"))
            elif status == health_pb2.HealthCheckResponse.NOT_SERVING and answered[name] == ANSWERS:
                findings.append((HEALTH_CHECK, f"health says {name} is NOT_SERVING, but it answers calls"))
    return findings, notes


def _compare_files(channel: grpc.Channel, svc: str, md: list[tuple[str, Any]], schema: Any, name: str) -> str | None:
    """The methods reflection describes for a service must be the given protos' (names, types, modes)."""
    try:
        resps = _reflect(channel, svc, [rpb.ServerReflectionRequest(file_containing_symbol=name)], md)
    except grpc.RpcError as e:
        return f"reflection cannot describe {name}: {e.code().name} {e.details()!r}"
    if not resps or resps[0].HasField("error_response"):
        err = resps[0].error_response.error_message if resps else "no answer"
        return f"reflection cannot describe {name}: {err}"
    fdps = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in resps[0].file_descriptor_response.file_descriptor_proto]
    theirs = _signatures(fdps, name)
    ours = _signatures(list(schema.fds.file), name)
    if theirs is None:
        return f"reflection's files for {name} do not declare it"
    if theirs != ours:
        diff = sorted(set(theirs.items()) ^ set((ours or {}).items()))
        return f"reflection describes {name} differently from the given protos: {diff[:4]}"
    return None
