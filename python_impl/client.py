"""The Python client engine: runs a case's calls through the REAL generated stubs and checks what
comes back against the case's expectations, decoded by Python itself.

Two flavours share everything but the I/O: `run_case` (sync grpcio channel) and `run_case_aio`
(grpc.aio channel). Call fields added by contract v2 (`compression`, `cancel_after_responses`,
`raw`) are read with getattr so older Call objects work too.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import json
import queue
import time
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any, Iterator

import google.rpc.error_details_pb2  # noqa: F401  registers the google.rpc detail types (Any JSON)
import grpc
from google.protobuf import any_pb2, descriptor_pool, empty_pb2, json_format
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_status import rpc_status

from python_impl.compare import Tolerance, diff_messages, render

CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]  # grpcio follows http_proxy even for localhost
CASE_HEADER = "interop-case"
CALL_HEADER = "interop-call"
SESSION_HEADER = "interop-session"
DIFFS_TRAILER = "interop-server-diffs-bin"
CHECKED_TRAILER = "interop-server-checked"  # the generic server compared this many requests
_COMPRESSION = {None: None, "": None, "identity": grpc.Compression.NoCompression, "gzip": grpc.Compression.Gzip,
                "deflate": grpc.Compression.Deflate}


@dataclass
class Diff:
    call: int
    path: str
    expected: str
    got: str


@dataclass
class Result:
    case: str
    direction: str
    verdict: str                      # pass | fail | error
    diffs: list[Diff] = field(default_factory=list)
    duration_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Result:
        return cls(case=raw["case"], direction=raw["direction"], verdict=raw["verdict"],
                   diffs=[Diff(**d) for d in raw.get("diffs") or []], duration_ms=raw.get("duration_ms", 0.0))


@dataclass
class Outcome:
    """What one call produced, as Python decoded it."""
    status: str = "OK"
    message: str = ""
    responses: list[Message] = field(default_factory=list)
    headers: list[tuple[str, str | bytes]] = field(default_factory=list)
    trailers: list[tuple[str, str | bytes]] = field(default_factory=list)
    details: Any = None               # google.rpc.Status from grpc-status-details-bin, or None
    details_error: str = ""           # grpc_status refused the details (code/message mismatch)


def metadata_pairs(md: dict[str, list[str]]) -> list[tuple[str, str | bytes]]:
    """Case metadata to grpcio pairs: `-bin` values travel as base64 in case data."""
    return [(k, base64.b64decode(v) if k.endswith("-bin") else v) for k, vs in md.items() for v in vs]


def _message_class(name: str) -> type[Message]:
    return GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))


_RAW_FACTORIES = {"unary": "unary_unary", "server_stream": "unary_stream",
                  "client_stream": "stream_unary", "bidi": "stream_stream"}


class Stubs:
    """Generated `<Service>Stub`s of one channel (sync or aio), looked up from the generated package."""

    def __init__(self, channel: Any, gen: ModuleType) -> None:
        self._channel, self._gen, self._stubs = channel, gen, {}

    def method(self, full_method: str) -> Any:
        svc_name, meth_name = full_method.lstrip("/").split("/")
        if svc_name not in self._stubs:
            svc = descriptor_pool.Default().FindServiceByName(svc_name)
            module = importlib.import_module(f"{self._gen.__name__}.{svc.file.name[:-6].replace('/', '.')}_pb2_grpc")
            self._stubs[svc_name] = getattr(module, f"{svc.name}Stub")(self._channel)
        return getattr(self._stubs[svc_name], meth_name)

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

    @classmethod
    def of(cls, stubs: Stubs, call: Any, metadata: list[tuple[str, str | bytes]]) -> _Spec:
        raw = bool(getattr(call, "raw", False))
        req_cls = empty_pb2.Empty if raw else _message_class(call.request_type)
        compression = getattr(call, "compression", None)
        if compression not in _COMPRESSION:
            raise ValueError(f"unknown compression {compression!r}")
        kwargs = {"timeout": call.timeout_ms / 1000, "metadata": metadata}
        if _COMPRESSION[compression] is not None:
            kwargs["compression"] = _COMPRESSION[compression]
        return cls(fn=stubs.raw(call.method, call.streaming) if raw else stubs.method(call.method),
                   streaming=call.streaming, requests=[json_format.ParseDict(r, req_cls()) for r in call.requests],
                   kwargs=kwargs, ping_pong=call.streaming == "bidi" and getattr(call, "bidi", "") == "ping_pong",
                   cancel_after=getattr(call, "cancel_after_responses", None))

    def enough(self, responses: list[Message]) -> bool:
        """True when the client is to cancel now."""
        return self.cancel_after is not None and len(responses) >= self.cancel_after


# ---------------------------------------------------------------- sync calls

def invoke(stubs: Stubs, call: Any, metadata: list[tuple[str, str | bytes]]) -> Outcome:
    """Make one call in its streaming mode (sync grpcio); every call has a deadline."""
    spec, out = _Spec.of(stubs, call, metadata), Outcome()
    if spec.streaming in ("unary", "client_stream"):
        arg = spec.requests[0] if spec.streaming == "unary" else iter(spec.requests)
        rpc = spec.fn.future(arg, **spec.kwargs)
        if spec.enough(out.responses):
            rpc.cancel()
        try:
            out.responses.append(rpc.result())
        except (grpc.RpcError, grpc.FutureCancelledError):
            pass
    else:
        turn: queue.Queue[bool] = queue.Queue()
        if spec.ping_pong:
            arg: Any = _ping_pong(spec.requests, turn, spec.kwargs["timeout"])
        else:
            arg = spec.requests[0] if spec.streaming == "server_stream" else iter(spec.requests)
        rpc = spec.fn(arg, **spec.kwargs)
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
    out.headers = list(rpc.initial_metadata() or ())
    out.trailers = list(rpc.trailing_metadata() or ())
    try:
        out.details = rpc_status.from_call(rpc)
    except ValueError as e:
        out.details_error = str(e)
    return out


def _ping_pong(requests: list[Message], turn: queue.Queue[bool], timeout: float) -> Iterator[Message]:
    for r in requests:
        yield r
        try:
            if not turn.get(timeout=timeout):  # the answer to this request arrived (or the call ended)
                return
        except queue.Empty:
            return


# ---------------------------------------------------------------- aio calls

async def invoke_aio(stubs: Stubs, call: Any, metadata: list[tuple[str, str | bytes]]) -> Outcome:
    """Make one call in its streaming mode on a grpc.aio channel; every call has a deadline."""
    spec, out = _Spec.of(stubs, call, metadata), Outcome()
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
                out.responses.append(await rpc)
        elif spec.streaming == "client_stream":
            rpc = spec.fn(**spec.kwargs)
            if not maybe_cancel():
                await _send_all(rpc, spec.requests)
                out.responses.append(await rpc)
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
    out.headers = list(await rpc.initial_metadata() or ())
    out.trailers = list(await rpc.trailing_metadata() or ())
    try:
        out.details = await rpc_status.aio.from_call(rpc)
    except ValueError as e:
        out.details_error = str(e)
    return out


async def _write(rpc: Any, request: Message | None) -> bool:
    """Write one request (None: half-close); False when the call has already ended."""
    if rpc.done():
        return False
    try:
        await (rpc.done_writing() if request is None else rpc.write(request))
        return True
    except (grpc.RpcError, asyncio.InvalidStateError):  # the server ended the call: its status tells
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


# ---------------------------------------------------------------- checks (shared)

def check(call: Any, out: Outcome, index: int) -> list[Diff]:
    """Every difference between what a call produced and what its case expects."""
    exp, diffs = call.expect, []

    def add(path: str, e: Any, g: Any) -> None:
        diffs.append(Diff(index, path, str(e), str(g)))

    if out.status != exp["status"] and out.status not in exp.get("status_alternatives", ()):
        # the message says why (a library's own error text is often the whole story)
        add("status.code", exp["status"], f"{out.status} {render(out.message)}" if out.message else out.status)
    if "message" in exp and out.message != exp["message"]:
        add("status.message", render(exp["message"]), render(out.message))
    if exp.get("responses") is not None:
        resp_cls = empty_pb2.Empty if getattr(call, "raw", False) else _message_class(call.response_type)
        expected = [json_format.ParseDict(r, resp_cls()) for r in exp["responses"]]
        if len(expected) != len(out.responses):
            add("responses.count", len(expected), len(out.responses))
        tol = Tolerance.from_json(exp.get("float_tolerance"))
        for i, (e, g) in enumerate(zip(expected, out.responses)):
            diffs += [Diff(index, p, ev, gv) for p, ev, gv in diff_messages(e, g, f"responses[{i}]", tol)]
    for where, got_md in (("headers", out.headers), ("trailers", out.trailers)):
        for key, values in (exp.get(where) or {}).items():
            if where == "trailers" and key.startswith("interop-"):  # the harness's own trailers
                continue
            got = [base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in got_md if k == key]
            if got != list(values):
                add(f'{where}["{key}"]', render(list(values)), render(got))
    if exp.get("details") is not None:
        diffs += _check_details(exp["details"], out, index, Tolerance.from_json(exp.get("float_tolerance")))
    if exp.get("chunks"):
        diffs += _check_chunks(exp["chunks"], out.responses, index)
    diffs += server_diffs(out.trailers, index)
    if server_must_confirm(call) and not any(k == CHECKED_TRAILER for k, _ in out.trailers):
        # no trailer would otherwise read as "the server checked and found nothing"
        add("server.checked", "present", "missing")
    return diffs


# Outcomes the client reaches without the server's answer: no server trailer can arrive.
_CLIENT_SIDE = {"DEADLINE_EXCEEDED", "CANCELLED", "RESOURCE_EXHAUSTED", "UNIMPLEMENTED"}


def server_must_confirm(call: Any) -> bool:
    """A generic server answers this call, so its `interop-server-checked` trailer must arrive."""
    return (getattr(call, "checked_by_server", False) and not getattr(call, "raw", False)
            and getattr(call, "cancel_after_responses", None) is None
            and call.expect.get("status", "OK") not in _CLIENT_SIDE)


def server_diffs(trailers: list[tuple[str, str | bytes]], index: int) -> list[Diff]:
    """The server's findings, sent back in the `interop-server-diffs-bin` trailer."""
    out: list[Diff] = []
    for key, value in trailers:
        if key != DIFFS_TRAILER:
            continue
        try:
            items = json.loads(value.decode("utf-8") if isinstance(value, bytes) else value)
            out += [Diff(index, str(d["path"]), str(d["expected"]), str(d["got"])) for d in items]
        except (ValueError, KeyError, TypeError):
            out.append(Diff(index, "server.diffs", "a JSON list of diffs", render(value)))
    return out


def _any_message(a: any_pb2.Any) -> Message | None:
    try:
        cls = _message_class(a.TypeName())
    except KeyError:
        return None
    msg = cls()
    msg.ParseFromString(a.value)
    return msg


def _check_details(expected: list[dict[str, Any]], out: Outcome, index: int, tol: Tolerance) -> list[Diff]:
    if out.details_error:
        return [Diff(index, "details", "a google.rpc.Status matching the call's status", out.details_error)]
    want = [json_format.ParseDict(d, any_pb2.Any()) for d in expected]
    got = list(out.details.details) if out.details is not None else []
    diffs = []
    if len(want) != len(got):
        diffs.append(Diff(index, "details.count", str(len(want)), str(len(got))))
    for i, (e, g) in enumerate(zip(want, got)):
        if e.type_url != g.type_url:
            diffs.append(Diff(index, f"details[{i}].@type", render(e.type_url), render(g.type_url)))
            continue
        em, gm = _any_message(e), _any_message(g)
        if em is None or gm is None:
            if e.value != g.value:
                diffs.append(Diff(index, f"details[{i}].value", render(e.value), render(g.value)))
            continue
        diffs += [Diff(index, p, ev, gv) for p, ev, gv in diff_messages(em, gm, f"details[{i}]", tol)]
    return diffs


def _check_chunks(spec: dict[str, Any], responses: list[Message], index: int) -> list[Diff]:
    parts = [getattr(r, spec["field"]) for r in responses]
    blob, diffs = b"".join(parts), []
    if len(blob) != spec["size"]:
        diffs.append(Diff(index, "chunks.size", str(spec["size"]), str(len(blob))))
    if hashlib.sha256(blob).hexdigest() != spec["sha256"]:
        diffs.append(Diff(index, "chunks.sha256", spec["sha256"], hashlib.sha256(blob).hexdigest()))
    size = spec.get("chunk_size")
    for i, p in enumerate(parts[:-1]):
        if size is not None and len(p) != size:
            diffs.append(Diff(index, f"chunks[{i}].size", str(size), str(len(p))))
    return diffs


# ---------------------------------------------------------------- cases (shared bookkeeping)

class _CaseRun:
    """A case's calls, the metadata each carries, and the diffs collected so far."""

    def __init__(self, case: Any, direction: str, run_id: str) -> None:
        self.case, self.direction = case, direction
        # Header values must be printable ASCII: the session names the direction by its slug (py-go).
        slug = direction.replace("→", "-")
        self.session = [(CASE_HEADER, case.name), (SESSION_HEADER, f"{run_id}:{slug}:{case.name}")]
        self.diffs: list[Diff] = []
        self.verdict = "pass"
        self.start = time.perf_counter()

    def metadata(self, index: int, call: Any) -> list[tuple[str, str | bytes]]:
        return [*self.session, (CALL_HEADER, str(index)), *metadata_pairs(call.metadata)]

    def add(self, call: Any, out: Outcome, index: int) -> None:
        self.diffs += check(call, out, index)

    def error(self, index: int, e: Exception) -> None:
        text = f"{type(e).__name__}: {e}"
        if len(text) > 600:  # a parse error repeats itself once per nesting level
            text = f"{text[:200]} … {text[-300:]}"
        self.diffs.append(Diff(index, "error", "", text))
        self.verdict = "error"

    def result(self) -> Result:
        verdict = "fail" if self.verdict == "pass" and self.diffs else self.verdict
        return Result(self.case.name, self.direction, verdict, self.diffs,
                      round((time.perf_counter() - self.start) * 1000, 2))


def run_case(channel: grpc.Channel, gen: ModuleType, case: Any, direction: str, run_id: str) -> Result:
    """Run every call of a case in order (sync channel) and collect every difference."""
    run, stubs = _CaseRun(case, direction, run_id), Stubs(channel, gen)
    for i, call in enumerate(case.calls):
        try:  # a broken case must not stop the others
            run.add(call, invoke(stubs, call, run.metadata(i, call)), i)
        except Exception as e:  # noqa: BLE001
            run.error(i, e)
            break
    return run.result()


async def run_case_aio(channel: grpc.aio.Channel, gen: ModuleType, case: Any, direction: str, run_id: str) -> Result:
    """run_case on a grpc.aio channel: the same calls, metadata and checks."""
    run, stubs = _CaseRun(case, direction, run_id), Stubs(channel, gen)
    for i, call in enumerate(case.calls):
        try:
            run.add(call, await invoke_aio(stubs, call, run.metadata(i, call)), i)
        except Exception as e:  # noqa: BLE001
            run.error(i, e)
            break
    return run.result()
