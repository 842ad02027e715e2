"""The generic server engine (docs/peer-contract.md, contract v2): the server follows the case.

For every service of the generated package a servicer class is built at runtime on the REAL
generated `<Svc>Servicer` base and registered with the REAL generated `add_<Svc>Servicer_to_server`,
so requests and responses go through the generated (de)serialisers. Each RPC is dispatched:

1. its case (`interop-case`) is in the catalogue: call `interop-call` of that case is answered
   generically (delay, metadata check, reading by mode, request comparison, headers, responses,
   trailers, status + rich details, compression, server diffs in `interop-server-diffs-bin`).
   What to do is `python_impl.plan.Plan.script`, free of I/O; the two flavours here only perform
   its steps;
2. else the hand-written seed servicer of the service, if any (python_impl/seeds);
3. else UNIMPLEMENTED `no case "<name>" in the catalogue and no implementation of <service>`.

A call whose method is not the case's call method is answered FAILED_PRECONDITION (a harness bug).
Both grpcio flavours are served: a sync `grpc.server` and a `grpc.aio` server; the sync seeds are
bridged into the aio server through a worker thread.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Callable, Iterable, Iterator

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from python_impl import channels
from python_impl.contract import CALL_HEADER, CASE_HEADER
from python_impl.plan import Compress, Finish, Headers, Plan, Read, Run, Send, Wait
from python_impl.seeds import seed_servicers

log = logging.getLogger("python_impl.generic")

_POLL = 0.02  # seconds between liveness checks while delaying
_ENDED = "the call ended during the server's delay"


class HandlerError(Exception):
    """What a handler told to raise (server.end: raise) raises: grpcio ends the call UNKNOWN."""


# ---------------------------------------------------------------- generated services

@dataclass(frozen=True)
class Binding:
    """One service of the generated package: its descriptor and the generated servicer glue."""
    name: str                                  # full service name
    descriptor: ServiceDescriptor
    servicer_base: type                        # generated <Svc>Servicer
    add_to_server: Callable[[Any, Any], None]  # generated add_<Svc>Servicer_to_server


def generated_services(gen: ModuleType) -> list[Binding]:
    """Every service of the generated package, found through its _pb2 modules' descriptors, and of
    the runtime modules it names in RUNTIME_MODULES (files the proto set vendors that the runtime
    registers already, like grpc_health.v1.health_pb2: not generated twice, served all the same)."""
    root = Path(gen.__file__).parent
    out: list[Binding] = []
    names = [".".join([gen.__name__, *path.relative_to(root).with_suffix("").parts])
             for path in sorted(root.rglob("*_pb2.py"))]
    for mod_name in [*names, *getattr(gen, "RUNTIME_MODULES", ())]:
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
    return {name: calls for name, (calls, _) in _entries(catalogue).items()}


def _entries(catalogue: Any) -> dict[str, tuple[list[Any], channels.Channel | None]]:
    """Case name -> (its calls, its channel)."""
    if catalogue is None:
        return {}
    if isinstance(catalogue, dict):
        catalogue = catalogue.get("cases") or []
    out: dict[str, tuple[list[Any], channels.Channel | None]] = {}
    for c in catalogue:
        calls = [SimpleNamespace(**call) for call in c["calls"]] if isinstance(c, dict) else list(c.calls)
        out[c["name"] if isinstance(c, dict) else c.name] = (calls, channels.of_case(c))
    return out


def _md_value(metadata: Iterable[Any], key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return v if isinstance(v, str) else v.decode("utf-8", "replace")
    return None


class Engine:
    """Dispatch shared by both server flavours."""

    def __init__(self, gen: ModuleType, catalogue: Any = None) -> None:
        entries = _entries(catalogue)
        self.cases = {name: calls for name, (calls, _) in entries.items()}
        self.channels = {name: ch for name, (_, ch) in entries.items() if ch is not None}
        self.seeds = seed_servicers(gen)
        self.bindings = generated_services(gen)

    @property
    def names(self) -> list[str]:
        """The full names of the services this engine serves."""
        return [b.name for b in self.bindings]

    def fall_back_to(self, servicers: dict[str, Any]) -> None:
        """Sync servicers that answer calls of these services with no case (like the seeds): the
        server's real health and reflection servicers, when the proto set vendors their protos."""
        self.seeds.update({name: s for name, s in servicers.items() if name in self.names})
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
                    plan = Plan(case, index, call, method, self.channels.get(case))
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


def _serve_sync(plan: Plan, request: Any, context: grpc.ServicerContext, client_stream: bool) -> Iterator[Message]:
    """Perform the plan's steps on a sync grpcio context; yields the responses to send."""
    seen = channels.observed(context) if plan.channel is not None else None
    run = Run(plan.script(context.invocation_metadata(), None if client_stream else request, client_stream, seen,
                          context.time_remaining()))
    requests = iter(request) if client_stream else iter(())
    reply: Message | None = None
    while (step := run.step(reply)) is not None:
        reply = None
        match step:
            case Wait(seconds, ignore_end):
                if ignore_end:  # a handler that sleeps through a cancel or its deadline, then goes on
                    time.sleep(seconds)
                elif (why := _wait_sync(context, seconds)) is not None:
                    context.abort(why, _ENDED)  # nothing is sent: the call is over
            case Compress():
                context.set_compression(grpc.Compression.Gzip)
            case Headers(metadata):
                context.send_initial_metadata(metadata)
            case Read():
                reply = next(requests, None)
            case Send(response):
                yield response
    _end(run.finish, context)
    if run.finish.status is not None:
        context.abort_with_status(run.finish.status)
    run.finish.end_ok(context)


def _end(finish: Finish, context: Any) -> None:
    """server.end raise, and abort on a sync context (grpc.aio's abort is awaited by its caller)."""
    if finish.end == "raise":
        context.set_trailing_metadata(finish.trailing)
        raise HandlerError(finish.message)
    if finish.end == "abort":
        context.set_trailing_metadata(finish.trailing)
        context.abort(finish.code, finish.message)


def _sync_method(engine: Engine, binding: Binding, method: MethodDescriptor) -> Callable:
    client_stream, server_stream = method.client_streaming, method.server_streaming

    def handler(self, request, context):
        kind, what = engine.resolve(context.invocation_metadata(), binding.name, method)
        if kind == "seed":
            return what(request, context)
        if kind == "error":
            _log_error(*what)
            context.abort(what[0], what[1])
        responses = _serve_sync(what, request, context, client_stream)
        if server_stream and what.end != "return_none":
            return responses
        first = None
        for r in responses:  # run to the end: trailers and status are set after the responses
            first = r if first is None else first
        if what.end == "return_none":  # a handler that returns nothing (no response, no iterator)
            return None
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


async def _serve_aio(plan: Plan, request: Any, context: Any, client_stream: bool, server_stream: bool) -> Any:
    """Perform the plan's steps on a grpc.aio context; returns the unary response (None when streaming)."""
    seen = channels.observed(context) if plan.channel is not None else None
    run = Run(plan.script(context.invocation_metadata(), None if client_stream else request, client_stream, seen,
                          context.time_remaining()))
    requests = None  # made on the first read: grpc.aio warns about a request iterator never read
    unary: list[Message] = []
    reply: Message | None = None
    while (step := run.step(reply)) is not None:
        reply = None
        match step:
            case Wait(seconds, ignore_end):
                if ignore_end:  # a handler that sleeps through a cancel or its deadline, then goes on
                    await asyncio.sleep(seconds)
                elif (why := await _wait_aio(context, seconds)) is not None:
                    await context.abort(why, _ENDED)  # nothing is sent: the call is over
            case Compress():
                context.set_compression(grpc.Compression.Gzip)
            case Headers(metadata):
                await context.send_initial_metadata(metadata)
            case Read():
                requests = requests or aiter(request)
                reply = await anext(requests, None)
            case Send(response):
                if server_stream:
                    await context.write(response)
                else:
                    unary.append(response)
    if run.finish.end == "abort":
        context.set_trailing_metadata(run.finish.trailing)
        await context.abort(run.finish.code, run.finish.message)
    _end(run.finish, context)
    if run.finish.status is not None:
        await context.abort_with_status(run.finish.status)
    run.finish.end_ok(context)
    if server_stream or plan.end == "return_none":
        return None
    return unary[0] if unary else plan.resp_cls()


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

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Run callback when the call ends (the health servicer's Watch stops watching then)."""
        self._context.add_done_callback(lambda _context: callback())
        return True

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
        return await _serve_aio(what, request, context, client_stream, server_stream)

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
