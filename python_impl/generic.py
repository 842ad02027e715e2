"""The generic server engine (docs/peer-contract.md, contract v2): the server follows the case.

For every service of the generated package a servicer class is built at runtime on the REAL
generated `<Svc>Servicer` base and registered with the REAL generated `add_<Svc>Servicer_to_server`,
so requests and responses go through the generated (de)serialisers. Each RPC is dispatched:

1. its case (`interop-case`) is in the catalogue: call `interop-call` of that case is answered
   generically (delay, metadata check, reading by mode, request comparison, headers, responses,
   trailers, status + rich details, compression, server diffs in `interop-server-diffs-bin`);
2. else the hand-written seed servicer of the service, if any (python_impl/seeds);
3. else UNIMPLEMENTED `no case "<name>" in the catalogue and no implementation of <service>`.

A call whose method is not the case's call method is answered FAILED_PRECONDITION (a harness bug).
Both grpcio flavours are served: a sync `grpc.server` and a `grpc.aio` server; the sync seeds are
bridged into the aio server through a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import importlib
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Callable, Iterable

import google.rpc.error_details_pb2  # noqa: F401  registers the google.rpc detail types (Any JSON)
import grpc
from google.protobuf import any_pb2, json_format
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import status_pb2
from grpc_status import rpc_status

from python_impl.client import CALL_HEADER, CASE_HEADER, CHECKED_TRAILER, DIFFS_TRAILER, metadata_pairs
from python_impl.compare import Tolerance, diff_messages, render
from python_impl.seeds import seed_servicers

log = logging.getLogger("python_impl.generic")

_POLL = 0.02  # seconds between liveness checks while delaying
_ENDED = "the call ended during the server's delay"


# ---------------------------------------------------------------- generated services

@dataclass(frozen=True)
class Binding:
    """One service of the generated package: its descriptor and the generated servicer glue."""
    name: str                                  # full service name
    descriptor: ServiceDescriptor
    servicer_base: type                        # generated <Svc>Servicer
    add_to_server: Callable[[Any, Any], None]  # generated add_<Svc>Servicer_to_server


def generated_services(gen: ModuleType) -> list[Binding]:
    """Every service of the generated package, found through its _pb2 modules' descriptors."""
    root = Path(gen.__file__).parent
    out: list[Binding] = []
    for path in sorted(root.rglob("*_pb2.py")):
        mod_name = ".".join([gen.__name__, *path.relative_to(root).with_suffix("").parts])
        pb2 = importlib.import_module(mod_name)
        if not pb2.DESCRIPTOR.services_by_name:
            continue
        pb2_grpc = importlib.import_module(mod_name + "_grpc")
        for short, svc in pb2.DESCRIPTOR.services_by_name.items():
            out.append(Binding(svc.full_name, svc, getattr(pb2_grpc, f"{short}Servicer"),
                               getattr(pb2_grpc, f"add_{short}Servicer_to_server")))
    return out


# ---------------------------------------------------------------- catalogue

def load_catalogue(catalogue: Any) -> dict[str, list[Any]]:
    """Case name -> its calls. Takes harness `Case` objects, case dicts (the client-input JSON form),
    or the whole client-input document (only `cases` is read)."""
    if catalogue is None:
        return {}
    if isinstance(catalogue, dict):
        catalogue = catalogue.get("cases") or []
    out: dict[str, list[Any]] = {}
    for c in catalogue:
        if isinstance(c, dict):
            out[c["name"]] = [SimpleNamespace(**call) for call in c["calls"]]
        else:
            out[c.name] = list(c.calls)
    return out


def _md_value(metadata: Iterable[Any], key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return v if isinstance(v, str) else v.decode("utf-8", "replace")
    return None


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    pass


class Plan:
    """What the generic server does for call `index` of case `case`, parsed once."""

    def __init__(self, case: str, index: int, call: Any, method: MethodDescriptor) -> None:
        self.case, self.index = case, index
        srv = getattr(call, "server", None) or {}
        self.delay = (srv.get("delay_ms") or 0) / 1000
        self.read_requests: int | None = srv.get("read_requests")
        self.compression = srv.get("compression")
        self.ping_pong = (method.client_streaming and method.server_streaming
                          and getattr(call, "bidi", "half_duplex") == "ping_pong")
        req_cls, self.resp_cls = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
        exp = call.expect or {}
        self.requests = [json_format.ParseDict(r, req_cls()) for r in call.requests or []]
        if self.read_requests is not None:
            self.requests = self.requests[: self.read_requests]
        # server.responses: what to send when the client must not see it (over its receive limit)
        sent = srv["responses"] if srv.get("responses") is not None else exp.get("responses") or []
        self.responses = [json_format.ParseDict(r, self.resp_cls()) for r in sent]
        self.tol = Tolerance.from_json(exp.get("float_tolerance"))
        self.metadata: dict[str, list[str]] = getattr(call, "metadata", None) or {}
        self.headers = metadata_pairs(exp.get("headers") or {})
        self.trailers = metadata_pairs(exp.get("trailers") or {})
        # server.status: the client must reach its expected status itself (cancel, deadline), so the
        # server answers something else and a client that does not cancel cannot pass.
        self.code = grpc.StatusCode[srv.get("status") or exp.get("status", "OK")]
        self.message: str = "" if srv.get("status") else exp.get("message", "")
        self.details = [json_format.ParseDict(d, any_pb2.Any()) for d in exp.get("details") or []]

    def read_limit(self, count: int) -> bool:
        """True when `count` requests are all the server reads."""
        return self.read_requests is not None and count >= self.read_requests

    def check_metadata(self, metadata: Iterable[Any]) -> list[tuple[str, str, str]]:
        pairs = [(k, v) for k, v in metadata or ()]
        diffs = []
        for key, values in self.metadata.items():
            got = [v for k, v in pairs if k == key]
            if key.endswith("-bin"):
                want_ok = [base64.b64decode(v) for v in values] == got
                got = [base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for v in got]
            else:
                want_ok = list(values) == got
            if not want_ok:
                diffs.append((f'server.metadata["{key}"]', render(list(values)), render(got)))
        return diffs

    def compare_requests(self, got: list[Message]) -> list[tuple[str, str, str]]:
        diffs = []
        if len(self.requests) != len(got):
            diffs.append(("server.requests.count", str(len(self.requests)), str(len(got))))
        for i, (e, g) in enumerate(zip(self.requests, got)):
            diffs += diff_messages(e, g, f"server.requests[{i}]", self.tol)
        return diffs

    def trailing(self, diffs: list[tuple[str, str, str]], compared: int) -> list[tuple[str, str | bytes]]:
        """The trailers to send: the expected ones, proof that the server checked, and its findings."""
        md = [*self.trailers, (CHECKED_TRAILER, str(compared))]
        if diffs:
            for p, e, g in diffs:
                log.warning("[%s] server: %s: expected %s, got %s", self.case, p, e, g)
            body = [{"path": p, "expected": e, "got": g} for p, e, g in diffs]
            md.append((DIFFS_TRAILER, json.dumps(body, ensure_ascii=False).encode("utf-8")))
        return md

    def status(self, trailing: list[tuple[str, str | bytes]]) -> grpc.Status:
        """The final non-OK status, with the rich details (google.rpc.Status) when the case has some."""
        if self.details:
            rich = rpc_status.to_status(status_pb2.Status(code=self.code.value[0], message=self.message,
                                                          details=self.details))
            return _Status(rich.code, rich.details, tuple(trailing) + tuple(rich.trailing_metadata))
        return _Status(self.code, self.message, tuple(trailing))


class Engine:
    """Dispatch shared by both server flavours."""

    def __init__(self, gen: ModuleType, catalogue: Any = None) -> None:
        self.cases = load_catalogue(catalogue)
        self.seeds = seed_servicers(gen)
        self.bindings = generated_services(gen)
        self._plans: dict[tuple[str, int], Plan] = {}

    def resolve(self, metadata: Any, service: str, method: MethodDescriptor) -> tuple[str, Any]:
        """("case", Plan) | ("seed", bound seed method) | ("error", (code, message, case))."""
        case = _md_value(metadata, CASE_HEADER) or ""
        calls = self.cases.get(case)
        got = f"/{service}/{method.name}"
        if calls is not None:
            raw_index = _md_value(metadata, CALL_HEADER) or "0"
            if not (raw_index.isascii() and raw_index.isdigit()):
                return "error", (grpc.StatusCode.FAILED_PRECONDITION,
                                 f"case {case}: {CALL_HEADER} {json.dumps(raw_index)} is not a call index", case)
            index = int(raw_index)
            if index >= len(calls):
                return "error", (grpc.StatusCode.FAILED_PRECONDITION, f"case {case} has no call {index}", case)
            call = calls[index]
            want = "/" + call.method.lstrip("/")
            if want != got:
                return "error", (grpc.StatusCode.FAILED_PRECONDITION,
                                 f"case {case} call {index} is for {want}, not {got}", case)
            plan = self._plans.get((case, index))
            if plan is None:
                try:
                    plan = Plan(case, index, call, method)
                except (ValueError, KeyError, TypeError, AttributeError, json_format.ParseError) as e:
                    return "error", (grpc.StatusCode.FAILED_PRECONDITION, f"catalogue case {case}: {e}", case)
                self._plans[(case, index)] = plan
            return "case", plan
        seed = getattr(self.seeds.get(service), method.name, None)
        if seed is not None:
            return "seed", seed
        return "error", (grpc.StatusCode.UNIMPLEMENTED,
                         f'no case "{case}" in the catalogue and no implementation of {service}', case)


def _log_error(code: grpc.StatusCode, message: str, case: str) -> None:
    log.info("[%s] %s: %s", case, code.name, message)


# ---------------------------------------------------------------- sync flavour

def _ended(remaining: float | None) -> grpc.StatusCode:
    """Why a call ended during the delay. Answering CANCELLED after the deadline could reach the
    client before its own deadline fires and turn its DEADLINE_EXCEEDED into CANCELLED."""
    return grpc.StatusCode.DEADLINE_EXCEEDED if remaining is not None and remaining <= 0 else grpc.StatusCode.CANCELLED


def _wait_sync(context: grpc.ServicerContext, delay: float) -> grpc.StatusCode | None:
    """Sleep `delay` seconds; the status to end with when the call ends first (cancel, deadline)."""
    ended = threading.Event()
    if not context.add_callback(ended.set):
        return _ended(context.time_remaining())
    end = time.monotonic() + delay
    while (left := end - time.monotonic()) > 0:
        remaining = context.time_remaining()
        if ended.wait(min(left, _POLL)) or not context.is_active() or (remaining is not None and remaining <= 0):
            return _ended(context.time_remaining())
    return None


def _generic_sync(plan: Plan, request: Any, context: grpc.ServicerContext, client_stream: bool):
    """The generic behaviour as a generator of the responses to send (sync grpcio)."""
    if plan.delay and (why := _wait_sync(context, plan.delay)) is not None:
        context.abort(why, _ENDED)  # nothing is sent: the call is over
    diffs = plan.check_metadata(context.invocation_metadata())
    if plan.compression == "gzip":
        context.set_compression(grpc.Compression.Gzip)
    got: list[Message] = []
    if not client_stream:
        got = [request]
    elif plan.ping_pong:
        if plan.headers:
            context.send_initial_metadata(plan.headers)
        for req in request:
            got.append(req)
            if len(got) <= len(plan.responses):
                yield plan.responses[len(got) - 1]
            if plan.read_limit(len(got)):
                break
    else:
        got = list(itertools.islice(request, plan.read_requests)) if plan.read_requests is not None else list(request)
    diffs += plan.compare_requests(got)
    if not plan.ping_pong:
        if plan.headers:
            context.send_initial_metadata(plan.headers)
        yield from plan.responses
    trailing = plan.trailing(diffs, len(got))
    if plan.code == grpc.StatusCode.OK:
        if trailing:
            context.set_trailing_metadata(trailing)
        if plan.message:
            context.set_details(plan.message)
        return
    context.abort_with_status(plan.status(trailing))


def _sync_method(engine: Engine, binding: Binding, method: MethodDescriptor) -> Callable:
    client_stream, server_stream = method.client_streaming, method.server_streaming

    def handler(self, request, context):
        kind, what = engine.resolve(context.invocation_metadata(), binding.name, method)
        if kind == "seed":
            return what(request, context)
        if kind == "error":
            _log_error(*what)
            context.abort(what[0], what[1])
        responses = _generic_sync(what, request, context, client_stream)
        if server_stream:
            return responses
        first = None
        for r in responses:  # run to the end: trailers and status are set after the responses
            first = r if first is None else first
        return first if first is not None else what.resp_cls()

    handler.__name__ = handler.__qualname__ = method.name
    return handler


# ---------------------------------------------------------------- aio flavour

async def _wait_aio(context: Any, delay: float) -> grpc.StatusCode | None:
    loop = asyncio.get_running_loop()
    end = loop.time() + delay
    while (left := end - loop.time()) > 0:
        remaining = context.time_remaining()
        if context.done() or context.cancelled() or (remaining is not None and remaining <= 0):
            return _ended(context.time_remaining())
        await asyncio.sleep(min(left, _POLL))
    return None


async def _generic_aio(plan: Plan, request: Any, context: Any, client_stream: bool, server_stream: bool) -> Any:
    """The generic behaviour on a grpc.aio context; returns the unary response (None when streaming)."""
    out: list[Message] = []

    async def send(resp: Message) -> None:
        if server_stream:
            await context.write(resp)
        else:
            out.append(resp)

    def result() -> Any:
        return None if server_stream else (out[0] if out else plan.resp_cls())

    if plan.delay and (why := await _wait_aio(context, plan.delay)) is not None:
        await context.abort(why, _ENDED)  # nothing is sent: the call is over
    diffs = plan.check_metadata(context.invocation_metadata())
    if plan.compression == "gzip":
        context.set_compression(grpc.Compression.Gzip)
    got: list[Message] = []
    if not client_stream:
        got = [request]
    else:
        if plan.ping_pong and plan.headers:
            await context.send_initial_metadata(plan.headers)
        async for req in request:
            got.append(req)
            if plan.ping_pong and len(got) <= len(plan.responses):
                await send(plan.responses[len(got) - 1])
            if plan.read_limit(len(got)):
                break
    diffs += plan.compare_requests(got)
    if not plan.ping_pong:
        if plan.headers:
            await context.send_initial_metadata(plan.headers)
        for r in plan.responses:
            await send(r)
    trailing = plan.trailing(diffs, len(got))
    if plan.code == grpc.StatusCode.OK:
        if trailing:
            context.set_trailing_metadata(trailing)
        if plan.message:
            context.set_details(plan.message)
        return result()
    await context.abort_with_status(plan.status(trailing))


class _SeedAbort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code, self.details = code, details


class _SyncContext:
    """The part of a sync ServicerContext the seeds use, over an aio context, from a worker thread."""

    def __init__(self, context: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._context, self._loop = context, loop

    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()

    def send_initial_metadata(self, metadata: Any) -> None:
        asyncio.run_coroutine_threadsafe(self._context.send_initial_metadata(metadata), self._loop).result()

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _SeedAbort(code, details)

    def __getattr__(self, name: str) -> Any:  # peer(), time_remaining(), set_trailing_metadata() …
        return getattr(self._context, name)


_END = object()


def _sync_requests(requests: Any, loop: asyncio.AbstractEventLoop):
    """An aio request iterator as a blocking iterator, for a seed running in a worker thread."""
    it = requests.__aiter__()

    async def pull() -> Any:
        try:
            return await it.__anext__()
        except StopAsyncIteration:
            return _END

    while (item := asyncio.run_coroutine_threadsafe(pull(), loop).result()) is not _END:
        yield item


async def _seed_aio(seed: Callable, request: Any, context: Any, client_stream: bool, server_stream: bool) -> Any:
    loop = asyncio.get_running_loop()
    ctx = _SyncContext(context, loop)
    arg = _sync_requests(request, loop) if client_stream else request
    try:
        if not server_stream:
            return await asyncio.to_thread(seed, arg, ctx)
        it = await asyncio.to_thread(lambda: iter(seed(arg, ctx)))
        while (item := await asyncio.to_thread(next, it, _END)) is not _END:
            await context.write(item)
        return None
    except _SeedAbort as e:
        await context.abort(e.code, e.details)


def _aio_method(engine: Engine, binding: Binding, method: MethodDescriptor) -> Callable:
    client_stream, server_stream = method.client_streaming, method.server_streaming

    async def handler(self, request, context):
        kind, what = engine.resolve(context.invocation_metadata(), binding.name, method)
        if kind == "seed":
            return await _seed_aio(what, request, context, client_stream, server_stream)
        if kind == "error":
            _log_error(*what)
            await context.abort(what[0], what[1])
        return await _generic_aio(what, request, context, client_stream, server_stream)

    handler.__name__ = handler.__qualname__ = method.name
    return handler


# ---------------------------------------------------------------- registration

def register(server: Any, engine: Engine, flavour: str = "sync") -> list[str]:
    """Register one runtime-built servicer per service through the generated add_*_to_server;
    returns the full service names."""
    make = _sync_method if flavour == "sync" else _aio_method
    for b in engine.bindings:
        attrs = {m.name: make(engine, b, m) for m in b.descriptor.methods}
        cls = type(f"Generic{b.descriptor.name}Servicer", (b.servicer_base,), attrs)
        b.add_to_server(cls(), server)
    return [b.name for b in engine.bindings]
