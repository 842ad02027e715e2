"""The standard gRPC services, health and reflection, as the Python peer serves and calls them.

Their cases must reach the REAL library implementations on both sides (grpcio-health-checking,
grpcio-reflection; grpc-go's health and reflection packages), never the generic engine, and must
work with any proto set, which usually does not contain health.proto or reflection.proto. So:

- the client calls them through multicallables built from the runtime's own modules, not through
  the generated package's stubs;
- grpcio-reflection ships only v1alpha (grpcio 1.85). The v1 protocol is the same messages under
  another package (the same field numbers), so a v1 call carries v1alpha messages on the v1 path;
- the server flips a reserved health name while a Watch on it runs (`FLIP_SERVICE`, below), so a
  Watch sees status changes the server pushes during the call, deterministically;
- the reflecting client rebuilds the descriptors it receives in a fresh pool and compares each file
  with the one it compiled itself (`check_reflection`; docs/peer-contract.md, "Standard services").
"""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from python_impl.compare import diff_messages, render
from python_impl.contract import Diff, Outcome, message_class

HEALTH = "grpc.health.v1.Health"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
SERVICES = (HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA)

# A Watch on this name runs on a fresh health servicer of the real library, whose status for it
# goes SERVICE_UNKNOWN (the initial answer) -> SERVING -> NOT_SERVING, each change made once the
# previous status was sent. A fresh servicer per Watch keeps concurrent cases and repeated runs
# apart, and keeps the name out of the server's own statuses (Check and List never see it).
FLIP_SERVICE = "interop.health.v1.WatchFlip"
FLIP_STEPS = (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)

# v1 reflection types, carried by their v1alpha twins (wire-identical; see the module docstring)
_V1_TYPES = {f"grpc.reflection.v1.{m}": f"grpc.reflection.v1alpha.{m}"
             for m in ("ServerReflectionRequest", "ServerReflectionResponse")}
_FACTORIES = {"unary": "unary_unary", "server_stream": "unary_stream",
              "client_stream": "stream_unary", "bidi": "stream_stream"}
_KINDS = {"services": "list_services_response", "files": "file_descriptor_response",
          "extension_numbers": "all_extension_numbers_response", "error_code": "error_response"}


def is_standard(service: str) -> bool:
    return service in SERVICES


def message_type(name: str) -> type[Message]:
    """The Python class of a message type, v1 reflection types included."""
    return message_class(_V1_TYPES.get(name, name))


def multicallable(channel: Any, call: Any) -> Any:
    """A multicallable for a standard method on a sync or aio channel, whatever the proto set."""
    factory = getattr(channel, _FACTORIES[call.streaming])
    return factory("/" + call.method.lstrip("/"), request_serializer=message_type(call.request_type).SerializeToString,
                   response_deserializer=message_type(call.response_type).FromString)


# ---------------------------------------------------------------- servers

class FlipHealthServicer(health.HealthServicer):
    """grpcio-health-checking's servicer; a Watch on FLIP_SERVICE runs on a fresh one that flips.

    Every Watch runs in the library's blocking mode and this thread sends what it yields. In its
    non-blocking mode the library sends while holding its lock, and a send waits for the server's
    event thread, which takes the same lock to run the call's close callback when the client
    cancels: with calls in flight at once that deadlocked the whole server (measured: a run hung)."""

    def Watch(self, request: Any, context: Any, send_response_callback: Any = None) -> Any:  # noqa: N802
        flip = request.service == FLIP_SERVICE
        servicer = health.HealthServicer() if flip else self
        watcher = health.HealthServicer.Watch(servicer, request, context)  # no callback: blocking mode
        responses = _flipping(watcher, servicer, list(FLIP_STEPS)) if flip else watcher
        if send_response_callback is None:
            return responses
        for response in responses:  # ends when the call does (the library closes the watcher)
            send_response_callback(response)
        send_response_callback(None)  # the status, unless the client has gone already
        return None


def _flipping(watcher: Any, fresh: health.HealthServicer, steps: list[Any]) -> Any:
    """Blocking mode (a servicer called through another handler, as a fallback): the library's
    watcher holds only the latest status, so each change waits until the previous one was taken."""
    for response in watcher:
        yield response
        if steps:
            fresh.set(FLIP_SERVICE, steps.pop(0))


class _FlipContext:
    """An aio servicer context that sets the flip's next status once a status was written: the aio
    servicer sends only the latest status it sees, so each change waits for the previous write."""

    def __init__(self, context: Any, servicer: health_aio.HealthServicer) -> None:
        self._context, self._servicer, self._steps = context, servicer, list(FLIP_STEPS)
        self._tasks: set[asyncio.Task] = set()

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        if self._steps:
            # the Watch holds the servicer's condition while writing: set the status from a task
            task = asyncio.get_running_loop().create_task(self._servicer.set(FLIP_SERVICE, self._steps.pop(0)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class FlipHealthServicerAio(health_aio.HealthServicer):
    """grpcio-health-checking's aio servicer; a Watch on FLIP_SERVICE runs on a fresh one that flips."""

    async def Watch(self, request: Any, context: Any) -> None:  # noqa: N802
        if request.service != FLIP_SERVICE:
            return await super().Watch(request, context)
        fresh = health_aio.HealthServicer()
        return await fresh.Watch(request, _FlipContext(context, fresh))


def listed_names(services: list[str]) -> list[str]:
    """What a Python server lists through reflection: every service of the set, and the standard
    services it implements (grpc-go's server lists every service it serves). Reflection v1 is left
    out even when the set vendors its proto: grpcio has no v1 implementation, so the generic engine
    answers only the catalogue's cases for it, and a reflection client must not be sent there."""
    return sorted({*services, HEALTH, REFLECTION_V1ALPHA} - {REFLECTION_V1})


def served_names(services: list[str]) -> list[str]:
    """What a Python server marks SERVING: the overall status "" and every name it lists."""
    return ["", *listed_names(services)]


# ---------------------------------------------------------------- reflection: the client's check

def normalise(fdp: descriptor_pb2.FileDescriptorProto, fd: FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    """A file's descriptor (fd, built in a pool, is the same file) without what differs between two
    compilations of the same content: source info, and whether a default json_name is written out
    (protoc writes every field's json_name into the descriptors it gives protoc-gen-go, not into the
    ones it embeds in Python modules). Each field gets its effective json_name, as the pool computed
    it: the default one where none is written, an explicit one as it is, so a custom json_name
    against the default is a difference. The Go engine normalises the same way (standard.go)."""
    f = descriptor_pb2.FileDescriptorProto()
    f.CopyFrom(fdp)
    f.ClearField("source_code_info")

    def fill(fields: Any, by_name: Any) -> None:
        for field in fields:
            field.json_name = by_name[field.name].json_name

    def walk(messages: Any, by_name: Any) -> None:
        for m in messages:
            d = by_name[m.name]
            fill(m.field, d.fields_by_name)
            fill(m.extension, d.extensions_by_name)
            walk(m.nested_type, d.nested_types_by_name)

    walk(f.message_type, fd.message_types_by_name)
    fill(f.extension, fd.extensions_by_name)
    return f


# The standard services' files under the import paths of grpc-proto (and grpc-go), and the names
# grpcio-health-checking / grpcio-reflection register them under in Python's pool.
RUNTIME_NAMES = {"grpc/health/v1/health.proto": "grpc_health/v1/health.proto",
                 "grpc/reflection/v1alpha/reflection.proto": "grpc_reflection/v1alpha/reflection.proto"}


def _own(name: str) -> FileDescriptor | None:
    """The client's own compilation of a file, or None when it has no file of that name. A standard
    service's file is known by its import path too (the content is the same file; the name is the
    one the reflection protocol carries)."""
    pool = descriptor_pool.Default()
    for n in (name, RUNTIME_NAMES.get(name)):
        try:
            return pool.FindFileByName(n) if n else None
        except KeyError:
            continue
    return None


def _proto(fd: FileDescriptor, name: str) -> descriptor_pb2.FileDescriptorProto:
    """fd's FileDescriptorProto under `name` (the name the reflection protocol carries)."""
    out = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(out)
    out.name = name
    return out


def _rebuild(received: dict[str, descriptor_pb2.FileDescriptorProto], name: str) -> FileDescriptor:
    """Build `name` and its dependencies from what the server sent into a fresh pool, as a
    reflection client (grpcurl, a gateway) does; a missing dependency or a bad file raises."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(n: str, chain: tuple[str, ...]) -> None:
        if n in added:
            return
        if n not in received:
            raise KeyError(f"{n} (needed by {' <- '.join(chain)}) was not received on this stream")
        for dep in received[n].dependency:
            add(dep, (n, *chain))
        pool.Add(received[n])
        added.add(n)

    add(name, ())
    return pool.FindFileByName(name)


def check_reflection(call: Any, out: Outcome, index: int) -> list[Diff]:
    """Every difference between a reflection stream's responses and `expect.reflection`: one entry
    per request, in order (docs/peer-contract.md, "Standard services")."""
    expected = call.expect["reflection"]
    req_cls = message_type(call.request_type)
    requests = [json_format.ParseDict(r, req_cls()) for r in call.requests]
    diffs: list[Diff] = []

    def add(path: str, e: Any, g: Any) -> None:
        diffs.append(Diff(index, path, str(e), str(g)))

    if len(out.responses) != len(expected):
        add("responses.count", len(expected), len(out.responses))
    received: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for i, (exp, resp) in enumerate(zip(expected, out.responses)):
        p = f"reflection[{i}]"
        diffs += [Diff(index, q, e, g) for q, e, g in diff_messages(requests[i], resp.original_request,
                                                                     f"{p}.original_request")]
        kind, got_kind = _KINDS[next(k for k in _KINDS if k in exp)], resp.WhichOneof("message_response")
        if got_kind != kind:
            err = resp.error_response
            detail = f" {err.error_code} {render(err.error_message)}" if got_kind == "error_response" else ""
            add(f"{p}.message_response", kind, f"{got_kind}{detail}")
            continue
        if kind == "list_services_response":
            _set_diffs(add, f"{p}.services", exp["services"], [s.name for s in resp.list_services_response.service])
        elif kind == "all_extension_numbers_response":
            got = resp.all_extension_numbers_response
            if got.base_type_name != exp["base_type_name"]:
                add(f"{p}.base_type_name", render(exp["base_type_name"]), render(got.base_type_name))
            _set_diffs(add, f"{p}.extension_numbers", exp["extension_numbers"], list(got.extension_number))
        elif kind == "error_response":
            # the error text is each library's own ("Not found" / "proto: not found"): the code is the contract
            if resp.error_response.error_code != exp["error_code"]:
                add(f"{p}.error_code", exp["error_code"],
                    f"{resp.error_response.error_code} {render(resp.error_response.error_message)}")
        else:
            diffs += _file_diffs(index, p, exp["files"], resp.file_descriptor_response.file_descriptor_proto, received,
                                 set(exp.get("runtime_files", ())))
    return diffs


def _set_diffs(add: Any, path: str, expected: list[Any], got: list[Any]) -> None:
    """A list whose order is not part of the protocol, compared as a set (and for duplicates)."""
    for v in sorted(set(expected) - set(got)):
        add(f"{path}[{render(v)}]", "present", "<missing>")
    for v in sorted(set(got) - set(expected)):
        add(f"{path}[{render(v)}]", "<absent>", "present")
    if len(got) != len(set(got)):
        add(f"{path}.count", len(set(got)), len(got))


def _file_diffs(index: int, path: str, closure: list[str], raws: Any,
                received: dict[str, descriptor_pb2.FileDescriptorProto], bundled: set[str]) -> list[Diff]:
    """A file_descriptor_response: the requested file (closure[0]) and each of its transitive
    dependencies not already sent on this stream; each rebuilt and compared with our own, but the
    `bundled` files (the runtimes' own well-known files: rebuilt, compared in their own case)."""
    diffs: list[Diff] = []
    sent_before = set(received)
    got: list[str] = []
    for j, raw in enumerate(raws):
        fdp = descriptor_pb2.FileDescriptorProto()
        try:
            fdp.ParseFromString(raw)
        except DecodeError as e:
            diffs.append(Diff(index, f"{path}.file_descriptor_proto[{j}]", "a FileDescriptorProto", f"{e}"))
            continue
        got.append(fdp.name)
        received[fdp.name] = fdp
    required = {closure[0], *(set(closure) - sent_before)}
    for name in sorted(required - set(got)):
        diffs.append(Diff(index, f"{path}.files[{render(name)}]", "present", "<missing>"))
    for name in sorted(set(got) - set(closure)):
        diffs.append(Diff(index, f"{path}.files[{render(name)}]", "<absent>", "present"))
    if len(got) != len(set(got)):
        diffs.append(Diff(index, f"{path}.files.count", str(len(set(got))), str(len(got))))
    for name in sorted(set(got) & set(closure)):
        p = f"{path}.files[{render(name)}]"
        own = _own(name)
        if own is None:
            diffs.append(Diff(index, p, "a file this client compiled", "no such file in the client's proto set"))
            continue
        try:
            rebuilt = _rebuild(received, name)
        except (KeyError, TypeError, ValueError) as e:
            diffs.append(Diff(index, f"{p}.rebuild", "the received descriptors build", f"{type(e).__name__}: {e}"))
            continue
        if name not in bundled:
            diffs += [Diff(index, q, e, g) for q, e, g in diff_messages(
                normalise(_proto(own, name), own), normalise(_proto(rebuilt, name), rebuilt), p)]
    return diffs
