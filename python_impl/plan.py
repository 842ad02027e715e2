"""What the generic server does for one call of a case, without any I/O (docs/peer-contract.md,
contract v2). `Plan` parses the call once; `Plan.script` is the call's behaviour as a generator of
steps (wait, compress, send headers, read a request, send a response) that returns how the call ends.
The sync and grpc.aio servers (python_impl/generic.py) only perform the steps, so the two flavours
cannot drift apart.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
from dataclasses import dataclass
from typing import Any, Generator, Iterable

import google.rpc.error_details_pb2  # noqa: F401  registers the google.rpc detail types (Any JSON)
import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import status_pb2
from grpc_status import rpc_status

from python_impl import bulk
from python_impl.channels import Channel
from python_impl.compare import Tolerance, diff_stream, render
from python_impl.contract import (CHECKED_TRAILER, DIFFS_TRAILER, JSON_KEY, STATUS_TRAILER, code_number, detail_any,
                                  metadata_pairs, parsed_json, protojson_of, unpinned_responses, wire_diffs)

log = logging.getLogger("python_impl.generic")


# ---------------------------------------------------------------- steps

@dataclass(frozen=True)
class Wait:
    """Delay the answer; the server ends the call instead when the client goes first, unless told
    to ignore it (server.ignore_end: a handler that sleeps through a cancel or its deadline)."""
    seconds: float
    ignore_end: bool = False


@dataclass(frozen=True)
class Compress:
    """Compress the responses with gzip."""


@dataclass(frozen=True)
class Headers:
    metadata: list[tuple[str, str | bytes]]


@dataclass(frozen=True)
class Read:
    """Read the next request; the server sends back the request, or None at the end of the stream."""


@dataclass(frozen=True)
class Send:
    response: Message


@dataclass(frozen=True)
class Finish:
    """How the call ends: OK with trailers (and a message), or `status` (non-OK, with its trailers).
    `end` (server.end) says how the handler ends it: return (a response, or the status above),
    return_none (a unary handler returns None), raise (an exception carrying `message`, after the
    trailers are set), abort (context.abort with `code`, OK included, after the trailers are set)."""
    trailing: list[tuple[str, str | bytes]]
    message: str
    status: grpc.Status | None
    end: str = "return"
    code: grpc.StatusCode = grpc.StatusCode.OK


    def end_ok(self, context: Any) -> None:
        """Set the trailers and message an OK call ends with (synchronous in both grpcio flavours)."""
        if self.trailing:
            context.set_trailing_metadata(self.trailing)
        if self.message:
            context.set_details(self.message)


Step = Wait | Compress | Headers | Read | Send
Script = Generator[Step, Message | None, Finish]


class Run:
    """A script being carried out: `step(reply)` sends back what the last step read and gives the
    next step, or None when the call is over; then `finish` says how it ends."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self.finish: Finish | None = None

    def step(self, reply: Message | None = None) -> Step | None:
        try:
            return self._script.send(reply)
        except StopIteration as done:
            self.finish = done.value
            return None


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    pass


# server.check_deadline (docs/peer-contract.md): the deadline a server sees is the client's timeout
# less the time the call took to arrive; 500 ms of grace below, as connect's conformance suite
# allows. Above, grpcio's encoder (grpc core's timeout_encoding.cc) keeps few digits and rounds up:
# by up to 4% as measured (100 s arrived as 104 s, 10 000 s as 10 100 s; grpc-go's are exact), so 5%
# more are allowed; and it sends at most 27 000 hours, so a longer timeout arrives as that.
DEADLINE_GRACE_MS = 500.0
MAX_TIMEOUT_MS = 27_000 * 3600 * 1000.0
# A grpcio server's context.time_remaining() for a call with no deadline: not None, as its docstring
# says, but about 2^63 ns (gpr_inf_future, measured 9.2e15 s); any time left past a century is that.
NO_DEADLINE_S = 100 * 365 * 24 * 3600.0


def deadline_range(timeout_ms: float) -> tuple[float, float]:
    """The time left that a server may see for a call of timeout_ms (both engines use this range)."""
    return min(timeout_ms, MAX_TIMEOUT_MS) - DEADLINE_GRACE_MS, timeout_ms * 1.05 + DEADLINE_GRACE_MS


def deadline_ok(timeout_ms: float, remaining_ms: float) -> bool:
    low, high = deadline_range(timeout_ms)
    return low <= remaining_ms <= high


def deadline_expected(timeout_ms: float) -> str:
    low, high = deadline_range(timeout_ms)
    return f"{timeout_ms:g} ms (from {low:g} to {high:g})"


def streaming_of(method: MethodDescriptor) -> str:
    return {(False, False): "unary", (False, True): "server_stream", (True, False): "client_stream",
            (True, True): "bidi"}[(method.client_streaming, method.server_streaming)]


def _code(name: str) -> grpc.StatusCode:
    """A status code by name. grpcio's server API takes only grpc.StatusCode: a code outside 0-16
    (`CODE_<n>`) goes out as UNKNOWN, as grpc._server does with any code it does not know."""
    return grpc.StatusCode.UNKNOWN if code_number(name) is not None else grpc.StatusCode[name]


TOKEN_REQUIRED = "bearer token required"


class Plan:
    """What the generic server does for call `index` of case `case`, parsed once."""

    def __init__(self, case: str, index: int, call: Any, method: MethodDescriptor,
                 channel: Channel | None = None) -> None:
        self.case, self.index = case, index
        # the case's channel: what the server must see of the connection (docs/peer-contract.md, "Channels")
        self.channel = channel
        srv = getattr(call, "server", None) or {}
        self.require_token: str | None = srv.get("require_token")
        self.delay = (srv.get("delay_ms") or 0) / 1000
        self.read_requests: int | None = srv.get("read_requests")
        if self.read_requests is not None and self.read_requests < 0:  # the Go engine refuses it too
            raise ValueError(f"server.read_requests must not be negative, got {self.read_requests}")
        self.compression = srv.get("compression")
        self.end: str = srv.get("end") or "return"
        if self.end not in ("return", "return_none", "raise", "abort"):  # the Go engine refuses it too
            raise ValueError(f"server.end {self.end!r} is not return, return_none, raise or abort")
        self.ignore_end = bool(srv.get("ignore_end"))
        # server.delay_after k: the delay comes after the k-th response instead of first (a client
        # that cancels after k responses must do it while the server waits, not after the end)
        self.delay_after: int | None = srv.get("delay_after")
        # server.check_deadline: the timeout the server received must be the call's timeout_ms
        self.check_deadline = bool(srv.get("check_deadline"))
        self.timeout_ms: float | None = None if getattr(call, "no_deadline", False) else getattr(call, "timeout_ms", None)
        self.ping_pong = (method.client_streaming and method.server_streaming
                          and getattr(call, "bidi", "half_duplex") == "ping_pong")
        req_cls, self.resp_cls = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
        exp = call.expect or {}
        unpinned = unpinned_responses(streaming_of(method), exp)
        if unpinned is not None:  # the Go server's validateCall refuses it too
            raise ValueError(unpinned)
        self.requests = [bulk.parse(r, req_cls()) for r in call.requests or []]
        if self.read_requests is not None:
            self.requests = self.requests[: self.read_requests]
        # server.responses: what to send when the client must not see it (over its receive limit)
        sent = srv["responses"] if srv.get("responses") is not None else exp.get("responses") or []
        self.responses = [bulk.parse(r, self.resp_cls()) for r in sent]
        if srv.get("responses_wire") is not None:  # parsed by this library, sent as it serializes them
            self.responses = [self.resp_cls.FromString(base64.b64decode(b)) for b in srv["responses_wire"]]
        # server.requests_wire: what this library must make of the exact bytes the client sent
        self.requests_wire: list[str] | None = srv.get("requests_wire")
        self.protojson = bool(getattr(call, "protojson", False))
        self.tol = Tolerance.from_json(exp.get("float_tolerance"))
        # server.metadata: what must arrive when the client legitimately changes what it was given
        # (drops a reserved key); otherwise the call's own metadata
        self.metadata: dict[str, list[str]] = (srv["metadata"] if srv.get("metadata") is not None
                                               else getattr(call, "metadata", None) or {})
        # server.headers: what to send when the client must refuse it (over its metadata limit)
        self.headers = metadata_pairs(srv["headers"] if srv.get("headers") is not None else exp.get("headers") or {})
        # server.trailers: what to send when the client must refuse it (over its metadata limit)
        self.trailers = metadata_pairs(srv["trailers"] if srv.get("trailers") is not None
                                       else exp.get("trailers") or {})
        # server.status: the client must reach its expected status itself (cancel, deadline), so the
        # server answers something else and a client that does not cancel cannot pass.
        self.code = _code(srv.get("status") or exp.get("status", "OK"))
        self.message: str = "" if srv.get("status") else exp.get("message", "")
        if self.end == "raise":  # the exception's text; each library words the status message around it
            self.message = (exp.get("message_contains") or [""])[0]
        self.details = [detail_any(d) for d in exp.get("details") or []]
        # server.details_status: the google.rpc.Status sent in grpc-status-details-bin when it is to
        # contradict the call's status (its own code, message and details)
        self.details_status: status_pb2.Status | None = None
        if (ds := srv.get("details_status")) is not None:
            self.details_status = status_pb2.Status(code=_code(ds["code"]).value[0], message=ds.get("message", ""),
                                                    details=[detail_any(d) for d in ds.get("details") or []])

    def read_limit(self, count: int) -> bool:
        """True when `count` requests are all the server reads."""
        return self.read_requests is not None and count >= self.read_requests

    def check_metadata(self, metadata: Iterable[Any]) -> list[tuple[str, str, str]]:
        pairs = [(k, v) for k, v in metadata or ()]
        diffs = []
        for key, values in sorted(self.metadata.items()):
            got = [v for k, v in pairs if k == key]
            if key.endswith("-bin"):
                want_ok = [base64.b64decode(v) for v in values] == got
                got = [base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for v in got]
            else:
                want_ok = list(values) == got
            if not want_ok:
                diffs.append((f"server.metadata[{render(key)}]", render(list(values)), render(got)))
        return diffs

    def check_channel(self, seen: dict[str, str] | None) -> list[tuple[str, str, str]]:
        """What the connection was (python_impl.channels.observed) against what the case's channel says."""
        if self.channel is None or seen is None:
            return []
        if self.channel.refused:  # the connection was to fail: that a call arrived is the finding
            return [("server.channel.refused", "no call (a refused handshake)", "the call arrived")]
        want = self.channel.expected()
        return [(f"server.channel.{k}", render(want[k]), render(seen.get(k, ""))) for k in sorted(want)
                if seen.get(k, "") != want[k]]

    def deadline_diffs(self, remaining: float | None) -> list[tuple[str, str, str]]:
        """server.check_deadline: the time left when the call arrived (`remaining`, seconds, None for
        no deadline) against the call's timeout_ms, within DEADLINE_GRACE (docs/peer-contract.md)."""
        if not self.check_deadline:
            return []
        if remaining is not None and remaining > NO_DEADLINE_S:
            remaining = None  # grpcio's "no deadline" (its docs say None; it gives the infinite future)
        got = "no deadline" if remaining is None else f"{remaining * 1000:.0f} ms"
        if not self.timeout_ms:
            return [] if remaining is None else [("server.deadline", "no deadline", got)]
        if remaining is None or not deadline_ok(self.timeout_ms, remaining * 1000):
            return [("server.deadline", deadline_expected(self.timeout_ms), got)]
        return []

    def token_refused(self, metadata: Iterable[Any]) -> bool:
        """server.require_token: the call must carry `authorization: Bearer <token>`."""
        if self.require_token is None:
            return False
        got = [v for k, v in metadata or () if k == "authorization"]
        return got != [f"Bearer {self.require_token}"]

    def compare_requests(self, got: list[Message]) -> list[tuple[str, str, str]]:
        if self.requests_wire is not None:
            return wire_diffs(self.requests_wire, got, "server.requests_wire")
        return diff_stream(self.requests, got, "server.requests", self.tol)

    def trailing(self, diffs: list[tuple[str, str, str]], compared: int,
                 code: grpc.StatusCode) -> list[tuple[str, str | bytes]]:
        """The trailers to send: the expected ones, proof that the server checked (and of the status
        code it ends with: grpcio sends UNKNOWN for a code past 16), and its findings."""
        md = [*self.trailers, (CHECKED_TRAILER, str(compared)), (STATUS_TRAILER, code.name)]
        if self.protojson and code == grpc.StatusCode.OK and self.responses:  # this side's rendering
            md.append((JSON_KEY, protojson_of(self.responses[0])))
        if diffs:
            for p, e, g in diffs:
                log.warning("[%s] server: %s: expected %s, got %s", self.case, p, e, g)
            body = [{"path": p, "expected": e, "got": g} for p, e, g in diffs]
            md.append((DIFFS_TRAILER, json.dumps(body, ensure_ascii=False).encode("utf-8")))
        return md

    def script(self, metadata: Iterable[Any], request: Message | None, client_stream: bool,
               connection: dict[str, str] | None = None, remaining: float | None = None) -> Script:
        """The call's behaviour as steps; `request` is the request of a unary-request call,
        `connection` what the server saw of the call's connection (for a case with a channel), and
        `remaining` the seconds its deadline left when the handler started (None: no deadline)."""
        deadline = self.deadline_diffs(remaining)
        if self.delay and self.delay_after is None:
            yield Wait(self.delay, self.ignore_end)
        diffs = deadline + self.check_metadata(metadata) + self.check_channel(connection)
        if self.token_refused(metadata):  # refused before reading anything; the server still confirms
            trailing = self.trailing(diffs, 0, grpc.StatusCode.UNAUTHENTICATED)
            return Finish(trailing, "", _Status(grpc.StatusCode.UNAUTHENTICATED, TOKEN_REQUIRED, tuple(trailing)))
        if self.compression == "gzip":
            yield Compress()
        got: list[Message] = [] if client_stream else [request]
        if client_stream:
            if self.ping_pong and self.headers:
                yield Headers(self.headers)
            while not self.read_limit(len(got)) and (req := (yield Read())) is not None:
                got.append(req)
                if self.ping_pong and len(got) <= len(self.responses):
                    yield from self._send(len(got) - 1)
        diffs += self.compare_requests(got)
        if self.protojson and got:  # the client's protojson rendering of its request, parsed here
            diffs += parsed_json(metadata, got[0], "server.json.request")
        if not self.ping_pong:
            if self.headers:
                yield Headers(self.headers)
            for i in range(len(self.responses)):
                yield from self._send(i)
        else:  # the client half-closed early (fewer requests than responses): the server streams on
            for i in range(len(got), len(self.responses)):
                yield from self._send(i)
        # a raise ends the call UNKNOWN in every library (the message differs: docs/cases.md)
        code = grpc.StatusCode.UNKNOWN if self.end == "raise" else self.code
        trailing = self.trailing(diffs, len(got), code)
        if self.end in ("raise", "abort"):
            return Finish(trailing, self.message, None, self.end, self.code)
        if self.code == grpc.StatusCode.OK:
            return Finish(trailing, self.message, None, self.end)
        return Finish(trailing, self.message, self.status(trailing))

    def _send(self, i: int) -> Generator[Step, Message | None, None]:
        if self.delay and i == self.delay_after:
            yield Wait(self.delay, self.ignore_end)
        yield Send(self.responses[i])

    def status(self, trailing: list[tuple[str, str | bytes]]) -> grpc.Status:
        """The final non-OK status, with the rich details (google.rpc.Status) when the case has some."""
        if self.details_status is not None:  # set by hand: grpc_status would refuse a contradiction
            rich = (("grpc-status-details-bin", self.details_status.SerializeToString()),)
            return _Status(self.code, self.message, tuple(trailing) + rich)
        if self.details:
            rich = rpc_status.to_status(status_pb2.Status(code=self.code.value[0], message=self.message,
                                                          details=self.details))
            return _Status(rich.code, rich.details, tuple(trailing) + tuple(rich.trailing_metadata))
        return _Status(self.code, self.message, tuple(trailing))
