"""The Python client engine: runs a case's calls through the REAL generated stubs and checks what
comes back against the case's expectations, decoded by Python itself."""

from __future__ import annotations

import base64
import hashlib
import importlib
import queue
import time
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any, Iterator

import grpc
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from python_impl.compare import Tolerance, diff_messages, render

CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]  # grpcio follows http_proxy even for localhost


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


def metadata_pairs(md: dict[str, list[str]]) -> list[tuple[str, str | bytes]]:
    """Case metadata to grpcio pairs: `-bin` values travel as base64 in case data."""
    return [(k, base64.b64decode(v) if k.endswith("-bin") else v) for k, vs in md.items() for v in vs]


class Stubs:
    """Generated `<Service>Stub`s of one channel, looked up from the generated package."""

    def __init__(self, channel: grpc.Channel, gen: ModuleType) -> None:
        self._channel, self._gen, self._stubs = channel, gen, {}

    def method(self, full_method: str) -> Any:
        svc_name, meth_name = full_method.split("/")
        if svc_name not in self._stubs:
            svc = descriptor_pool.Default().FindServiceByName(svc_name)
            module = importlib.import_module(f"{self._gen.__name__}.{svc.file.name[:-6].replace('/', '.')}_pb2_grpc")
            self._stubs[svc_name] = getattr(module, f"{svc.name}Stub")(self._channel)
        return getattr(self._stubs[svc_name], meth_name)


def invoke(stubs: Stubs, call: Any, metadata: list[tuple[str, str | bytes]]) -> Outcome:
    """Make one call in its streaming mode; every call has a deadline."""
    pool = descriptor_pool.Default()
    req_cls = GetMessageClass(pool.FindMessageTypeByName(call.request_type))
    requests = [json_format.ParseDict(r, req_cls()) for r in call.requests]
    fn, timeout, out = stubs.method(call.method), call.timeout_ms / 1000, Outcome()
    rpc = None
    try:
        if call.streaming in ("unary", "client_stream"):
            arg = requests[0] if call.streaming == "unary" else iter(requests)
            resp, rpc = fn.with_call(arg, timeout=timeout, metadata=metadata)
            out.responses.append(resp)
        elif call.streaming == "bidi" and call.bidi == "ping_pong":
            turn: queue.Queue[None] = queue.Queue()
            rpc = fn(_ping_pong(requests, turn, timeout), timeout=timeout, metadata=metadata)
            for resp in rpc:
                out.responses.append(resp)
                turn.put(None)
        else:
            arg = requests[0] if call.streaming == "server_stream" else iter(requests)
            rpc = fn(arg, timeout=timeout, metadata=metadata)
            out.responses.extend(rpc)
        out.headers = list(rpc.initial_metadata() or ())
    except grpc.RpcError as e:
        out.status, out.message = e.code().name, e.details() or ""
        out.headers = list(e.initial_metadata() or ())
    return out


def _ping_pong(requests: list[Message], turn: queue.Queue[None], timeout: float) -> Iterator[Message]:
    for r in requests:
        yield r
        try:
            turn.get(timeout=timeout)  # the answer to this request arrived
        except queue.Empty:
            return


def check(call: Any, out: Outcome, index: int) -> list[Diff]:
    """Every difference between what a call produced and what its case expects."""
    exp, diffs = call.expect, []

    def add(path: str, e: Any, g: Any) -> None:
        diffs.append(Diff(index, path, str(e), str(g)))

    if out.status != exp["status"]:
        add("status.code", exp["status"], out.status)
    if "message" in exp and out.message != exp["message"]:
        add("status.message", render(exp["message"]), render(out.message))
    if exp.get("responses") is not None:
        resp_cls = GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(call.response_type))
        expected = [json_format.ParseDict(r, resp_cls()) for r in exp["responses"]]
        if len(expected) != len(out.responses):
            add("responses.count", len(expected), len(out.responses))
        tol = Tolerance.from_json(exp.get("float_tolerance"))
        for i, (e, g) in enumerate(zip(expected, out.responses)):
            diffs += [Diff(index, p, ev, gv) for p, ev, gv in diff_messages(e, g, f"responses[{i}]", tol)]
    for key, values in (exp.get("headers") or {}).items():
        got = [base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in out.headers if k == key]
        if got != list(values):
            add(f'headers["{key}"]', render(list(values)), render(got))
    if exp.get("chunks"):
        diffs += _check_chunks(exp["chunks"], out.responses, index)
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


def run_case(channel: grpc.Channel, gen: ModuleType, case: Any, direction: str, run_id: str) -> Result:
    """Run every call of a case in order and collect every difference."""
    start, stubs, diffs = time.perf_counter(), Stubs(channel, gen), []
    # Header values must be printable ASCII: the session names the direction by its slug (py-go).
    slug = direction.replace("→", "-")
    session = [("interop-case", case.name), ("interop-session", f"{run_id}:{slug}:{case.name}")]
    verdict = "pass"
    for i, call in enumerate(case.calls):
        try:
            outcome = invoke(stubs, call, session + metadata_pairs(call.metadata))
        except Exception as e:  # noqa: BLE001  a broken case must not stop the others
            diffs.append(Diff(i, "error", "", f"{type(e).__name__}: {e}"))
            verdict = "error"
            break
        diffs += check(call, outcome, i)
    if verdict == "pass" and diffs:
        verdict = "fail"
    return Result(case.name, direction, verdict, diffs, round((time.perf_counter() - start) * 1000, 2))
