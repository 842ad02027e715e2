"""The Python client engine: runs a case's calls through the REAL generated stubs and checks what
comes back against the case's expectations, decoded by Python itself.

Two flavours share everything but the I/O: `run_case` (sync grpcio channel) and `run_case_aio`
(grpc.aio channel). The data they produce is in python_impl/contract.py, the checks in
python_impl/check.py. Call fields added by contract v2 (`compression`, `cancel_after_responses`,
`raw`) are read with getattr so older Call objects work too.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import queue
import re
import threading
import time
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Iterator

import grpc
from google.protobuf import descriptor_pool, empty_pb2
from google.protobuf.message import Message
from grpc_status import rpc_status

from python_impl import bulk, channels, standard
from python_impl.check import check
from python_impl.contract import (CALL_HEADER, CASE_HEADER, JSON_KEY, SESSION_HEADER, Diff, Outcome, Result,
                                  message_class, metadata_pairs, protojson_of, unpinned_responses)

_COMPRESSION = {None: None, "": None, "identity": grpc.Compression.NoCompression, "gzip": grpc.Compression.Gzip,
                "deflate": grpc.Compression.Deflate}


_RAW_FACTORIES = {"unary": "unary_unary", "server_stream": "unary_stream",
                  "client_stream": "stream_unary", "bidi": "stream_stream"}


class Stubs:
    """Generated `<Service>Stub`s of one channel (sync or aio), looked up from the generated package."""

    def __init__(self, channel: Any, gen: ModuleType) -> None:
        self._channel, self._gen, self._stubs = channel, gen, {}

    @property
    def channel(self) -> Any:
        return self._channel

    def method(self, full_method: str) -> Any:
        svc_name, meth_name = full_method.lstrip("/").split("/")
        if svc_name not in self._stubs:
            svc = descriptor_pool.Default().FindServiceByName(svc_name)
            pb2 = f"{svc.file.name[:-6].replace('/', '.')}_pb2"
            # a file the runtime registers (grpc_health.v1.health_pb2) is served from its own module
            runtime = pb2 in getattr(self._gen, "RUNTIME_MODULES", ())
            module = importlib.import_module(f"{pb2 if runtime else f'{self._gen.__name__}.{pb2}'}_grpc")
            self._stubs[svc_name] = getattr(module, f"{svc.name}Stub")(self._channel)
        return getattr(self._stubs[svc_name], meth_name)

    def wire(self, full_method: str, streaming: str, resp_cls: type[Message]) -> Any:
        """A multicallable that sends requests as the exact bytes it is given (requests_wire) and
        parses the responses with the generated type, as the stub would."""
        factory = getattr(self._channel, _RAW_FACTORIES[streaming])
        return factory("/" + full_method.lstrip("/"), request_serializer=None, response_deserializer=resp_cls.FromString)

    def raw(self, full_method: str, streaming: str) -> Any:
        """A multicallable for a method that need not exist in the proto set, on google.protobuf.Empty."""
        factory = getattr(self._channel, _RAW_FACTORIES[streaming])
        return factory("/" + full_method.lstrip("/"), request_serializer=empty_pb2.Empty.SerializeToString,
                       response_deserializer=empty_pb2.Empty.FromString)


@dataclass
class _Spec:
    """One call, ready to make: parsed requests and grpcio keyword arguments."""
    fn: Any
    streaming: str
    requests: list[Message]
    kwargs: dict[str, Any]
    ping_pong: bool
    cancel_after: int | None
    cancel_requests: int | None = None  # cancel_after_requests: cancel after sending this many, never half-close
    # a call with no deadline (no_deadline) must still end: the harness cancels it after this many
    # seconds (its timeout_ms) and reports an error naming the call (NoDeadlineOverrun)
    bound: float | None = None

    @classmethod
    def of(cls, stubs: Stubs, call: Any, metadata: list[tuple[str, str | bytes]],
           credentials: grpc.CallCredentials | None = None) -> _Spec:
        raw = bool(getattr(call, "raw", False))
        # health and reflection go to the server's real implementations, with any proto set
        std = standard.is_standard(call.method.lstrip("/").split("/")[0])
        req_cls = empty_pb2.Empty if raw else standard.message_type(call.request_type) if std else message_class(call.request_type)
        compression = getattr(call, "compression", None)
        if compression not in _COMPRESSION:
            raise ValueError(f"unknown compression {compression!r}")
        # no_deadline: the call carries no grpc-timeout (timeout_ms still bounds the run)
        timeout = None if getattr(call, "no_deadline", False) else call.timeout_ms / 1000
        kwargs = {"timeout": timeout, "metadata": metadata}
        if credentials is not None:  # the case's channel sends a bearer token (call credentials)
            kwargs["credentials"] = credentials
        if _COMPRESSION[compression] is not None:
            kwargs["compression"] = _COMPRESSION[compression]
        if getattr(call, "wait_for_ready", False):
            kwargs["wait_for_ready"] = True
        fn = (stubs.raw(call.method, call.streaming) if raw else standard.multicallable(stubs.channel, call) if std
              else stubs.method(call.method))
        wire = getattr(call, "requests_wire", None)
        if wire is not None:  # the exact bytes go out; the responses are parsed as usual
            fn = stubs.wire(call.method, call.streaming, message_class(call.response_type))
        requests = ([base64.b64decode(b) for b in wire] if wire is not None
                    else [bulk.parse(r, req_cls()) for r in call.requests])
        return cls(fn=fn,
                   streaming=call.streaming, requests=requests,
                   kwargs=kwargs, ping_pong=call.streaming == "bidi" and getattr(call, "bidi", "") == "ping_pong",
                   cancel_after=getattr(call, "cancel_after_responses", None),
                   cancel_requests=getattr(call, "cancel_after_requests", None),
                   bound=call.timeout_ms / 1000 if timeout is None else None)

    def overrun(self, call: Any, responses: list[Message]) -> NoDeadlineOverrun:
        return NoDeadlineOverrun(f"{call.method}: the call has no deadline (no_deadline) and had not ended "
                                 f"after its timeout_ms ({call.timeout_ms:g} ms), which bounds it: the harness "
                                 f"cancelled it after {len(responses)} response(s); the server never ended it, "
                                 f"or the client waited for an answer that never came")

    def enough(self, responses: list[Message]) -> bool:
        """True when the client is to cancel now."""
        return self.cancel_after is not None and len(responses) >= self.cancel_after


class NoDeadlineOverrun(Exception):
    """A call with no deadline outlived its timeout_ms: the harness's error, not the library's."""


# ---------------------------------------------------------------- sync calls

def invoke(stubs: Stubs, call: Any, metadata: list[tuple[str, str | bytes]],
           credentials: grpc.CallCredentials | None = None) -> Outcome:
    """Make one call in its streaming mode (sync grpcio); every call has a deadline. An exception
    that grpcio raises instead of ending the call with a status is the call's outcome (raised)."""
    spec, out = _Spec.of(stubs, call, metadata, credentials), Outcome()  # the harness's own errors stay errors
    start = time.perf_counter()  # before grpcio sets the call's deadline (now + timeout)
    try:
        _call(spec, out, start, call)
    except Exception as e:  # noqa: BLE001  only grpcio's own: _raised re-raises anything else
        out.raised = _raised(e)
    return out


_HOLD_LIMIT = 60.0  # seconds


def _then_hold(requests: list[Message], sent: threading.Event, release: threading.Event,
               timeout: float) -> Iterator[Message]:
    """The requests, then no half-close: grpcio asks for the next one only once it has taken the
    last, so `sent` says they all went; the caller cancels, then lets the iterator end."""
    yield from requests
    sent.set()
    release.wait(timeout)


def _cancel_after_requests(spec: _Spec, arg_for: Any) -> Any:
    """Start a streaming-request call that sends spec.cancel_requests requests, then cancels it."""
    sent, release = threading.Event(), threading.Event()
    # a call with no deadline (no_deadline) still waits a bounded time for its requests to go
    timeout = spec.kwargs["timeout"] if spec.kwargs["timeout"] is not None else _HOLD_LIMIT
    rpc = arg_for(_then_hold(spec.requests[: spec.cancel_requests], sent, release, timeout))
    try:
        sent.wait(timeout)
        rpc.cancel()
    finally:
        release.set()
    return rpc


class _Watchdog:
    """Cancels a call with no deadline once its bound has passed (a harness must never hang)."""

    def __init__(self, bound: float | None) -> None:
        self.fired, self._lock, self._rpc = threading.Event(), threading.Lock(), None
        self._timer = threading.Timer(bound, self._fire) if bound is not None else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self.fired.set()
            rpc = self._rpc
        if rpc is not None:
            rpc.cancel()

    def watch(self, rpc: Any) -> None:
        with self._lock:
            self._rpc = rpc
            fired = self.fired.is_set()
        if fired:  # the bound passed while the call was being made
            rpc.cancel()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _call(spec: _Spec, out: Outcome, start: float, call: Any = None) -> None:
    """One call; a call with no deadline runs under a watchdog that cancels it at spec.bound (its
    cancel_after_requests wait is bounded on its own)."""
    dog = _Watchdog(spec.bound if spec.cancel_requests is None else None)
    try:
        _call_bounded(spec, out, start, dog)
    finally:
        dog.stop()
    if dog.fired.is_set():
        raise spec.overrun(call, out.responses)


def _call_bounded(spec: _Spec, out: Outcome, start: float, dog: _Watchdog) -> None:
    if spec.cancel_requests is not None:
        # client_stream or half-duplex bidi: no response can come before the cancel
        factory = spec.fn.future if spec.streaming == "client_stream" else spec.fn
        rpc = _cancel_after_requests(spec, lambda arg: factory(arg, **spec.kwargs))
        try:
            if spec.streaming == "client_stream":
                _collect(out, rpc.result())
            else:
                out.responses.extend(rpc)
        except (grpc.RpcError, grpc.FutureCancelledError):
            pass
    elif spec.streaming in ("unary", "client_stream"):
        arg = spec.requests[0] if spec.streaming == "unary" else iter(spec.requests)
        rpc = spec.fn.future(arg, **spec.kwargs)
        dog.watch(rpc)
        if spec.enough(out.responses):
            rpc.cancel()
        try:
            _collect(out, rpc.result())
        except (grpc.RpcError, grpc.FutureCancelledError):
            pass
    else:
        turn: queue.Queue[bool] = queue.Queue()
        if spec.ping_pong:
            # each wait for an answer is bounded, by the deadline or (no deadline) the watchdog's bound
            arg: Any = _ping_pong(spec.requests, turn, spec.kwargs["timeout"] or spec.bound)
        else:
            arg = spec.requests[0] if spec.streaming == "server_stream" else iter(spec.requests)
        rpc = spec.fn(arg, **spec.kwargs)
        dog.watch(rpc)
        try:
            if spec.enough(out.responses):
                rpc.cancel()
            for resp in rpc:
                out.responses.append(resp)
                if spec.enough(out.responses):
                    rpc.cancel()
                    break
                turn.put(True)
        except grpc.RpcError:
            pass
        finally:
            turn.put(False)  # releases a ping-pong request generator still waiting for its turn
    out.status, out.message = rpc.code().name, rpc.details() or ""
    out.elapsed_ms = (time.perf_counter() - start) * 1000
    out.headers = list(rpc.initial_metadata() or ())
    out.trailers = list(rpc.trailing_metadata() or ())
    try:
        out.details = rpc_status.from_call(rpc)
    except ValueError as e:
        out.details_error = str(e)


# Memory addresses in a library's exception text (cygrpc names its batch operations' objects):
# they differ from run to run, so they are left out of the recorded outcome.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _raised(e: Exception) -> str:
    """`<type>: <text>` of an exception raised by grpcio itself (its Python modules or cygrpc) while
    making a call: older grpcio releases raise ValueError for invalid metadata, KeyError for a status
    code above 16 (grpc.aio), ExecuteBatchError or UsageError where others end the call with a status.
    That is what the library did with the call, so it is recorded and compared like a status. An
    exception from anywhere else (the harness's own code) is re-raised: it stays an error."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    # Cython frames carry their module's globals, so cygrpc reads as grpc._cython.cygrpc
    module = str(tb.tb_frame.f_globals.get("__name__", "")) if tb is not None else ""
    if module != "grpc" and not module.startswith("grpc."):
        raise e
    text = _ADDRESS.sub("", f"{type(e).__name__}: {e}")
    return text if len(text) <= 600 else f"{text[:300]} … {text[-200:]}"


def _collect(out: Outcome, response: Message | None) -> None:
    """Keep a unary response. grpcio hands back None for an OK call whose response it lost (a request
    carrying grpc-status as metadata does it, docs/limits.md): no response arrived, and the check
    says so."""
    if response is not None:
        out.responses.append(response)


def _ping_pong(requests: list[Message], turn: queue.Queue[bool], timeout: float) -> Iterator[Message]:
    for r in requests:
        yield r
        try:
            if not turn.get(timeout=timeout):  # the answer to this request arrived (or the call ended)
                return
        except queue.Empty:
            return


# ---------------------------------------------------------------- aio calls

async def invoke_aio(stubs: Stubs, call: Any, metadata: list[tuple[str, str | bytes]],
                     credentials: grpc.CallCredentials | None = None) -> Outcome:
    """Make one call in its streaming mode on a grpc.aio channel; every call has a deadline. An
    exception that grpc.aio raises instead of ending the call with a status is the call's outcome."""
    spec, out = _Spec.of(stubs, call, metadata, credentials), Outcome()
    start = time.perf_counter()  # before grpc.aio sets the call's deadline (now + timeout)
    try:
        if spec.bound is None or spec.cancel_requests is not None:
            await _call_aio(spec, out, start)
        else:
            await _bounded_aio(spec, out, start, call)
    except Exception as e:  # noqa: BLE001  only grpcio's own: _raised re-raises anything else
        out.raised = _raised(e)
    return out


async def _bounded_aio(spec: _Spec, out: Outcome, start: float, call: Any) -> None:
    """A call with no deadline: cancelled at spec.bound, and then the harness's error (never a hang)."""
    made: list[Any] = []
    fn = spec.fn

    def recording(*args: Any, **kwargs: Any) -> Any:
        made.append(fn(*args, **kwargs))
        return made[-1]

    try:
        await asyncio.wait_for(_call_aio(replace(spec, fn=recording), out, start), spec.bound)
    except TimeoutError:
        for rpc in made:
            rpc.cancel()
        raise spec.overrun(call, out.responses) from None


async def _call_aio(spec: _Spec, out: Outcome, start: float) -> None:
    cancelled = False

    def maybe_cancel() -> bool:
        nonlocal cancelled
        if spec.enough(out.responses):
            cancelled = rpc.cancel() or cancelled
            return True
        return False

    # Streamed requests are written by hand, not handed over as an iterator: grpc.aio's iterator
    # consumer turns a write racing a server that already finished (read_requests) into INTERNAL.
    try:
        if spec.streaming == "unary":
            rpc = spec.fn(spec.requests[0], **spec.kwargs)
            if not maybe_cancel():
                _collect(out, await rpc)
        elif spec.cancel_requests is not None:  # client_stream or half-duplex bidi
            rpc = spec.fn(**spec.kwargs)
            for r in spec.requests[: spec.cancel_requests]:
                if not await _write(rpc, r):
                    break
            cancelled = rpc.cancel()
            if spec.streaming == "client_stream":
                _collect(out, await rpc)
            else:
                out.responses += [resp async for resp in rpc]
        elif spec.streaming == "client_stream":
            rpc = spec.fn(**spec.kwargs)
            if not maybe_cancel():
                await _send_all(rpc, spec.requests)
                _collect(out, await rpc)
        elif spec.ping_pong:
            rpc = spec.fn(**spec.kwargs)
            if not maybe_cancel():
                await _ping_pong_aio(rpc, spec, out, maybe_cancel)
        else:
            if spec.streaming == "server_stream":
                rpc = spec.fn(spec.requests[0], **spec.kwargs)
            else:
                rpc = spec.fn(**spec.kwargs)
            if not maybe_cancel():
                if spec.streaming == "bidi":
                    await _send_all(rpc, spec.requests)
                async for resp in rpc:
                    out.responses.append(resp)
                    if maybe_cancel():
                        break
    except grpc.RpcError:
        pass
    except asyncio.CancelledError:
        if not cancelled:  # not our own cancellation: the task itself is being cancelled
            raise
    code = await rpc.code()
    out.status, out.message = code.name, (await rpc.details()) or ""
    out.elapsed_ms = (time.perf_counter() - start) * 1000
    out.headers = list(await rpc.initial_metadata() or ())
    out.trailers = list(await rpc.trailing_metadata() or ())
    try:
        out.details = await rpc_status.aio.from_call(rpc)
    except ValueError as e:
        out.details_error = str(e)


async def _write(rpc: Any, request: Message | None) -> bool:
    """Write one request (None: half-close); False when the call has already ended."""
    if rpc.done():
        return False
    try:
        await (rpc.done_writing() if request is None else rpc.write(request))
        return True
    except (grpc.RpcError, asyncio.InvalidStateError, grpc.aio.InternalError):
        # the call ended (the server, or the deadline): its status tells. A half-close racing the
        # deadline fails inside grpc Core as ExecuteBatchError (an InternalError), seen under load.
        return False


async def _send_all(rpc: Any, requests: list[Message]) -> None:
    for r in requests:
        if not await _write(rpc, r):
            return
    await _write(rpc, None)


async def _ping_pong_aio(rpc: Any, spec: _Spec, out: Outcome, maybe_cancel: Any) -> None:
    for r in spec.requests:
        if not await _write(rpc, r):
            break
        resp = await rpc.read()
        if resp is grpc.aio.EOF:
            return
        out.responses.append(resp)
        if maybe_cancel():
            return
    await _write(rpc, None)
    while (resp := await rpc.read()) is not grpc.aio.EOF:
        out.responses.append(resp)
        if maybe_cancel():
            return


# ---------------------------------------------------------------- cases (shared bookkeeping)

class _CaseRun:
    """A case's calls, the metadata each carries, and the diffs collected so far."""

    def __init__(self, case: Any, direction: str, run_id: str, connection: Any) -> None:
        self.case, self.direction = case, direction
        # Header values must be printable ASCII: the session names the direction by its slug (py-go).
        slug = direction.replace("→", "-")
        self.session = [(CASE_HEADER, case.name), (SESSION_HEADER, f"{run_id}:{slug}:{case.name}")]
        self.diffs: list[Diff] = []
        self.notes: dict[str, str] = {}
        self.verdict = "pass"
        self.start = time.perf_counter()
        # the channel the caller connected this case on (channels.Pool): its token, and whether
        # the connection must be refused (then no server confirms the call)
        self.channel = channels.of_case(case)
        self.credentials = channels.call_credentials(self.channel)
        self.handed = channels.handed(connection)  # the certificate this connection was made with

    def metadata(self, index: int, call: Any) -> list[tuple[str, str | bytes]]:
        own = [(JSON_KEY, protojson_of(bulk.parse(call.requests[0], message_class(call.request_type)())))
               ] if getattr(call, "protojson", False) else []
        return [*self.session, (CALL_HEADER, str(index)), *metadata_pairs(call.metadata), *own]

    def add(self, call: Any, out: Outcome, index: int) -> None:
        self.diffs += check(call, out, index, server_reached=not (self.channel and self.channel.refused))
        if self.channel is not None and self.channel.refused and self.channel.secure:  # its own cause, not any refusal
            self.diffs += [Diff(index, *d) for d in channels.refusal(self.channel, out.message, self.handed)]
        if self.channel is not None and out.raised:  # recorded, never compared
            self.notes[f"call {index}"] = f"raised {out.raised}"
        elif self.channel is not None and out.status != "OK":
            self.notes[f"call {index}"] = f"{out.status}: {out.message}"

    def error(self, index: int, e: Exception) -> None:
        text = f"{type(e).__name__}: {e}"
        if len(text) > 600:  # a parse error repeats itself once per nesting level
            text = f"{text[:200]} … {text[-300:]}"
        self.diffs.append(Diff(index, "error", "", text))
        self.verdict = "error"

    def result(self) -> Result:
        if not self.case.calls:  # nothing was exchanged, so nothing was checked (the Go engine agrees)
            self.error(0, ValueError("case has no calls"))
        verdict = "fail" if self.verdict == "pass" and self.diffs else self.verdict
        return Result(self.case.name, self.direction, verdict, self.diffs,
                      round((time.perf_counter() - self.start) * 1000, 2), self.notes)


def _pinned(call: Any, index: int) -> None:
    """A call whose responses nothing checks is refused before it runs, as the Go client refuses it."""
    why = unpinned_responses(call.streaming, call.expect or {})
    if why is not None:
        raise ValueError(f"calls[{index}]: {why}")


def run_case(channel: grpc.Channel, gen: ModuleType, case: Any, direction: str, run_id: str) -> Result:
    """Run every call of a case in order (sync channel) and collect every difference. A case with a
    `channel` must be given the connection it describes (python_impl.channels.Pool.for_case)."""
    run, stubs = _CaseRun(case, direction, run_id, channel), Stubs(channel, gen)
    for i, call in enumerate(case.calls):
        try:  # a broken case must not stop the others
            _pinned(call, i)
            run.add(call, invoke(stubs, call, run.metadata(i, call), run.credentials), i)
        except Exception as e:  # noqa: BLE001
            run.error(i, e)
            break
    return run.result()


async def run_case_aio(channel: grpc.aio.Channel, gen: ModuleType, case: Any, direction: str, run_id: str) -> Result:
    """run_case on a grpc.aio channel: the same calls, metadata and checks."""
    run, stubs = _CaseRun(case, direction, run_id, channel), Stubs(channel, gen)
    for i, call in enumerate(case.calls):
        try:
            _pinned(call, i)
            run.add(call, await invoke_aio(stubs, call, run.metadata(i, call), run.credentials), i)
        except Exception as e:  # noqa: BLE001
            run.error(i, e)
            break
    return run.result()
