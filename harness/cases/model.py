"""Cases are data: YAML files of calls and expectations, loaded strictly and resolved against the
proto set's descriptors. The resolved form is the JSON both client engines read
(docs/peer-contract.md)."""

from __future__ import annotations

import base64
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message import DecodeError
from python_impl import bulk
from python_impl.channels import Channel, ChannelError
from python_impl.contract import unpinned_responses
from google.protobuf.message_factory import GetMessageClass

STATUS_CODES = (
    "OK CANCELLED UNKNOWN INVALID_ARGUMENT DEADLINE_EXCEEDED NOT_FOUND ALREADY_EXISTS PERMISSION_DENIED "
    "RESOURCE_EXHAUSTED FAILED_PRECONDITION ABORTED OUT_OF_RANGE UNIMPLEMENTED INTERNAL UNAVAILABLE "
    "DATA_LOSS UNAUTHENTICATED").split()
STREAMING = ("unary", "server_stream", "client_stream", "bidi")
DEFAULT_TIMEOUT_MS = 10_000
# a proto file a language cannot compile or load stands as a row of its own: finding/<file> (the
# runner makes the rows, the reports show them)
FINDING_PREFIX = "finding/"

_CALL_KEYS = {"method", "metadata", "requests", "timeout_ms", "bidi", "expect", "server", "compression",
              "cancel_after_responses", "cancel_after_requests", "generic", "wait_for_ready", "no_deadline",
              "requests_wire", "protojson"}
_EXPECT_KEYS = {"status", "status_alternatives", "message", "message_contains", "responses", "headers", "trailers", "details", "float_tolerance", "chunks", "responses_wire"}
_SERVER_KEYS = {"delay_ms", "read_requests", "compression", "responses", "status", "headers", "trailers", "metadata", "details_status",
                "require_token", "requests_wire", "responses_wire", "check_deadline", "end", "ignore_end", "delay_after"}
# server.end: how the generic server's handler ends the call (docs/cases.md, "How a handler ends")
SERVER_ENDS = ("return", "return_none", "raise", "abort")

# libyaml's safe loader when PyYAML has it: the same documents, many times faster (seeds.yaml is large)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CaseError(Exception):
    """A case file is malformed; the message names the file and the case."""


@dataclass(frozen=True)
class Call:
    method: str                 # "pkg.Service/Method"
    streaming: str
    request_type: str
    response_type: str
    requests: list[dict[str, Any]]
    expect: dict[str, Any]
    metadata: dict[str, list[str]] = field(default_factory=dict)
    timeout_ms: float = DEFAULT_TIMEOUT_MS
    bidi: str = "half_duplex"
    server: dict[str, Any] = field(default_factory=dict)   # what a generic server does besides answering
    compression: str | None = None                          # "gzip": the client compresses its requests
    cancel_after_responses: int | None = None               # the client cancels after k responses
    cancel_after_requests: int | None = None                # the client cancels after sending k requests
    raw: bool = False                                       # method outside the proto set (Empty in/out)
    checked_by_server: bool = False                         # a generic server answers it and must say so
    wait_for_ready: bool = False                            # the call waits for a connection instead of failing fast
    no_deadline: bool = False                               # the client sets no deadline (timeout_ms bounds the run only)
    requests_wire: list[str] | None = None                  # the requests as exact bytes (base64), sent as they are
    protojson: bool = False                                 # each side renders its message as protojson for the other

    @property
    def service(self) -> str:
        return self.method.split("/")[0]

    @property
    def ends_early(self) -> bool:
        """The call may end before the client has half-closed: the server stops reading, the client
        cancels, or the call ends with a non-OK status (a deadline, a rejected request, a seed server
        that fails on an input). A call that ends OK after the server read every request cannot."""
        read = self.server.get("read_requests")
        return ((read is not None and read < len(self.requests)) or self.cancel_after_responses is not None
                or self.cancel_after_requests is not None
                or self.expect.get("status", "OK") != "OK")

    def to_json(self) -> dict[str, Any]:
        out = {"method": f"/{self.method}", "streaming": self.streaming, "request_type": self.request_type,
               "response_type": self.response_type, "metadata": self.metadata, "requests": self.requests,
               "timeout_ms": self.timeout_ms, "expect": self.expect}
        if self.streaming == "bidi":
            out["bidi"] = self.bidi
        optional = {"server": self.server, "compression": self.compression,
                    "cancel_after_responses": self.cancel_after_responses,
                    "cancel_after_requests": self.cancel_after_requests, "raw": self.raw,
                    "checked_by_server": self.checked_by_server, "wait_for_ready": self.wait_for_ready,
                    "no_deadline": self.no_deadline, "requests_wire": self.requests_wire, "protojson": self.protojson}
        # `is` tests: 0 (cancel at once) is a value, not an absence (0 == False in Python).
        out.update({k: v for k, v in optional.items() if v is not None and v is not False and v != {}})
        return out


@dataclass(frozen=True)
class Case:
    name: str                   # "pkg.Service/Method/pattern": stable, unique
    calls: list[Call]
    source: str                 # the file it came from, for error messages
    # proto files of the set the case's expectations are about, besides its service's (reflection
    # describing a file, health naming a service): it runs only where both sides load them
    files: tuple[str, ...] = ()
    # the connection its calls share (docs/peer-contract.md, "Channels"); None: the plaintext one
    channel: dict[str, Any] | None = None
    # a case that runs whenever this one does: its pass shows that this one's failure is the one it
    # is about (a refused handshake, not a listener that is not there)
    control: str | None = None

    @property
    def method(self) -> str:
        """The service/method the case is about (its first call), the matrix row."""
        return self.calls[0].method

    @property
    def ends_early(self) -> bool:
        return any(c.ends_early for c in self.calls)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "calls": [c.to_json() for c in self.calls]}
        if self.channel is not None:
            out["channel"] = self.channel
        return out


def streaming_mode(m: Any) -> str:
    """unary, server_stream, client_stream or bidi, from a method descriptor."""
    return {(False, False): "unary", (False, True): "server_stream",
            (True, False): "client_stream", (True, True): "bidi"}[(m.client_streaming, m.server_streaming)]


def _fail(src: str, case: str, msg: str) -> CaseError:
    return CaseError(f"{src}: case {case!r}: {msg}")


def _resolve_call(raw: dict[str, Any], src: str, name: str, pool: descriptor_pool.DescriptorPool) -> Call:
    unknown = set(raw) - _CALL_KEYS
    if unknown:
        raise _fail(src, name, f"unknown call key(s) {sorted(unknown)}; allowed: {sorted(_CALL_KEYS)}")
    method = raw.get("method", "")
    svc_name, _, meth_name = method.partition("/")
    try:
        svc = pool.FindServiceByName(svc_name)
    except KeyError:
        raise _fail(src, name, f"service {svc_name!r} is not in the proto set (method {method!r})") from None
    meth = svc.methods_by_name.get(meth_name)
    if meth is None:
        raise _fail(src, name, f"service {svc_name} ({svc.file.name}) has no method {meth_name!r}")
    streaming = streaming_mode(meth)
    requests = raw.get("requests", [])
    wire = _wire_form(raw, src, name, meth)
    count = len(wire) if wire is not None else len(requests)
    if streaming in ("unary", "server_stream") and count != 1:
        raise _fail(src, name, f"{method} is {streaming}: give exactly one request, not {count}")
    protojson = raw.get("protojson", False)
    wire_responses = (raw.get("server") or {}).get("responses_wire") or (raw.get("expect") or {}).get("responses_wire")
    if not isinstance(protojson, bool) or protojson and (wire is not None or wire_responses or len(requests) != 1):
        # protojson has no form for unknown fields, which wire-form messages carry
        raise _fail(src, name, "protojson is true or false, and needs exactly one request in requests (no wire-form "
                               "messages: requests_wire, server.responses_wire, expect.responses_wire)")
    expect = dict(raw.get("expect") or {})
    unknown = set(expect) - _EXPECT_KEYS
    if unknown:
        raise _fail(src, name, f"unknown expect key(s) {sorted(unknown)}; allowed: {sorted(_EXPECT_KEYS)}")
    expect.setdefault("status", "OK")
    for code in [expect["status"], *expect.get("status_alternatives", [])]:
        if code not in STATUS_CODES:
            raise _fail(src, name, f"status {code!r} is not a gRPC status code name")
    req_cls = GetMessageClass(meth.input_type)
    resp_cls = GetMessageClass(meth.output_type)
    for i, r in enumerate(requests):
        try:
            bulk.parse(r, req_cls())
        except json_format.ParseError as e:
            raise _fail(src, name, f"requests[{i}] is not a valid {meth.input_type.full_name}: {e}") from None
    for i, r in enumerate(expect.get("responses") or []):
        try:
            bulk.parse(r, resp_cls())
        except json_format.ParseError as e:
            raise _fail(src, name, f"expect.responses[{i}] is not a valid {meth.output_type.full_name}: {e}") from None
    bidi = raw.get("bidi", "half_duplex")
    if "bidi" in raw and streaming != "bidi":
        raise _fail(src, name, f"bidi: {bidi} is only for bidi methods; {method} is {streaming}")
    if bidi not in ("half_duplex", "ping_pong"):
        raise _fail(src, name, f"bidi must be half_duplex or ping_pong, not {bidi!r}")
    metadata = _metadata(raw.get("metadata"))
    for key in ("headers", "trailers"):
        if key in expect:
            expect[key] = _metadata(expect[key])
    timeout, cancel = raw.get("timeout_ms", DEFAULT_TIMEOUT_MS), raw.get("cancel_after_responses")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < float("inf"):
        raise _fail(src, name, f"timeout_ms is a positive number of milliseconds, not {timeout!r}")
    if cancel is not None and (not isinstance(cancel, int) or cancel < 0):
        raise _fail(src, name, f"cancel_after_responses is a count of responses (0 or more), not {cancel!r}")
    cancel_requests = raw.get("cancel_after_requests")
    if cancel_requests is not None:
        if not isinstance(cancel_requests, int) or isinstance(cancel_requests, bool) or cancel_requests < 0:
            raise _fail(src, name, f"cancel_after_requests is a count of requests (0 or more), not {cancel_requests!r}")
        if streaming not in ("client_stream", "bidi") or bidi != "half_duplex" or cancel is not None:
            raise _fail(src, name, "cancel_after_requests is for client_stream and half-duplex bidi calls, "
                                   "without cancel_after_responses")
        if cancel_requests >= len(requests):
            raise _fail(src, name, f"cancel_after_requests {cancel_requests} must be under the {len(requests)} "
                                   "requests given (else the client half-closes first)")
    server = dict(raw.get("server") or {})
    for key in ("headers", "trailers", "metadata"):
        if key in server:
            server[key] = _metadata(server[key])
    if set(server) - _SERVER_KEYS:
        raise _fail(src, name, f"unknown server key(s) {sorted(set(server) - _SERVER_KEYS)}; allowed: {sorted(_SERVER_KEYS)}")
    for key in ("delay_ms", "read_requests", "delay_after"):
        value = server.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise _fail(src, name, f"server.{key} is a count (0 or more), not {value!r}")
    if not isinstance(server.get("check_deadline", False), bool):
        raise _fail(src, name, f"server.check_deadline is true or false, not {server['check_deadline']!r}")
    token = server.get("require_token")
    if token is not None and not (isinstance(token, str) and token):
        raise _fail(src, name, f"server.require_token is a non-empty string, not {token!r}")
    if server.get("delay_after") is not None and not server.get("delay_ms"):
        raise _fail(src, name, "server.delay_after moves server.delay_ms after that many responses: give delay_ms")
    end = server.get("end", "return")
    if end not in SERVER_ENDS:
        raise _fail(src, name, f"server.end is one of {', '.join(SERVER_ENDS)}, not {end!r}")
    if end == "return_none" and streaming in ("server_stream", "bidi") and (
            server.get("responses", expect.get("responses")) or []):
        raise _fail(src, name, "server.end return_none sends no responses: give the streaming call none")
    if end in ("raise", "abort") and (expect.get("details") or server.get("details_status")):
        # the handler raises or aborts with a code and a message: it sends no rich details
        raise _fail(src, name, f"server.end {end} sends no details: leave out expect.details and server.details_status")
    if not isinstance(server.get("ignore_end", False), bool):
        raise _fail(src, name, f"server.ignore_end is true or false, not {server['ignore_end']!r}")
    generic = raw.get("generic", False)
    if not isinstance(generic, bool):
        raise _fail(src, name, f"generic is true or false, not {generic!r}")
    wait_for_ready = raw.get("wait_for_ready", False)
    if not isinstance(wait_for_ready, bool):
        raise _fail(src, name, f"wait_for_ready is true or false, not {wait_for_ready!r}")
    no_deadline = raw.get("no_deadline", False)
    if not isinstance(no_deadline, bool):
        raise _fail(src, name, f"no_deadline is true or false, not {no_deadline!r}")
    compression = raw.get("compression")
    # a client may ask for deflate, which grpcio ships and grpc-go does not (docs/fuzz.md)
    if compression not in (None, "gzip", "deflate") or server.get("compression") not in (None, "gzip"):
        raise _fail(src, name, "compression is gzip, deflate (a client's only) or absent")
    unpinned = unpinned_responses(streaming, expect)
    if unpinned is not None:  # unpinned, whatever comes back would pass (both engines refuse it too)
        raise _fail(src, name, f"{method}: {unpinned}")
    return Call(method=method, streaming=streaming, request_type=meth.input_type.full_name,
                response_type=meth.output_type.full_name, requests=list(requests), expect=expect,
                metadata=metadata, timeout_ms=timeout, bidi=bidi,
                server=server, compression=compression, cancel_after_responses=cancel,
                cancel_after_requests=cancel_requests,
                checked_by_server=generic, wait_for_ready=wait_for_ready, no_deadline=no_deadline,
                requests_wire=wire, protojson=protojson)


def _wire_form(raw: dict[str, Any], src: str, name: str, meth: Any) -> list[str] | None:
    """Check the wire-form keys of a call (docs/cases.md, "Wire bytes and protojson"): base64 lists,
    each exclusive of its JSON twin; server.responses_wire must parse as the response type (the
    server parses it). Returns requests_wire (None when absent)."""
    expect, server = raw.get("expect") or {}, raw.get("server") or {}
    lists = {"requests_wire": raw.get("requests_wire"), "expect.responses_wire": expect.get("responses_wire"),
             "server.requests_wire": server.get("requests_wire"), "server.responses_wire": server.get("responses_wire")}
    # requests: [] is no request (a saved case writes it); responses: [] says "none" (the Go engine agrees)
    twins = {"requests_wire": bool(raw.get("requests")), "expect.responses_wire": expect.get("responses") is not None,
             "server.responses_wire": server.get("responses") is not None}
    for key, value in lists.items():
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(src, name, f"{key} is a list of base64 strings")
        try:
            decoded = [base64.b64decode(v, validate=True) for v in value]
        except ValueError as e:
            raise _fail(src, name, f"{key} holds a value that is not base64: {e}") from None
        if twins.get(key, False):
            raise _fail(src, name, f"give {key} or {key.removesuffix('_wire')}, not both")
        if key == "expect.responses_wire" and expect.get("chunks") is not None:
            raise _fail(src, name, "give expect.responses_wire or expect.chunks, not both")
        if key == "server.responses_wire":
            for i, b in enumerate(decoded):
                try:
                    GetMessageClass(meth.output_type).FromString(b)
                except DecodeError as e:
                    raise _fail(src, name, f"{key}[{i}] is not a valid {meth.output_type.full_name}: {e}") from None
    return lists["requests_wire"]


def _metadata(raw: Any) -> dict[str, list[str]]:
    """Metadata keys, each with a list of values. Keys stay as written: gRPC keys are lower case, and
    a case with an uppercase key is there to see what each client does with it (both refuse it)."""
    return {str(k): [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in (raw or {}).items()}


def load_file(path: Path | str, pool: descriptor_pool.DescriptorPool | None = None, text: str | None = None,
              builtin: bool = False) -> list[Case]:
    """Load and resolve one case file. The generated code must already be imported (its pool).

    A built-in file made for services the proto set does not have (the seed services' cases) is not
    for this run, like a suite's declared needs in connectrpc/conformance. A user's file is there on
    purpose: a service it requires that is missing (a typo, a renamed package) is an error, never a
    file quietly dropped with all its cases."""
    pool = pool or descriptor_pool.Default()
    src = str(path)
    doc = yaml.load(text if text is not None else Path(path).read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list) or set(doc) - {"cases", "requires"}:
        raise CaseError(f"{src}: a case file is a mapping with 'cases' (a list) and optionally 'requires' "
                        "(service names the file is for)")
    for svc in doc.get("requires") or []:
        try:
            pool.FindServiceByName(svc)
        except KeyError:
            if builtin:
                return []
            raise CaseError(f"{src}: requires service {svc!r}, which the proto set does not define; fix the "
                            "name under 'requires' or test the protos that define it") from None
    cases: list[Case] = []
    for i, raw in enumerate(doc["cases"]):
        name = raw.get("name") if isinstance(raw, dict) else None
        if not name:
            raise CaseError(f"{src}: cases[{i}] has no name")
        if not (name.isascii() and name.isprintable()):
            raise _fail(src, name, "case names travel in a header: printable ASCII only")
        if set(raw) - {"name", "calls", "channel"}:
            raise _fail(src, name, f"unknown key(s) {sorted(set(raw) - {'name', 'calls', 'channel'})}; "
                                   "allowed: name, calls, channel")
        try:
            Channel.of(raw.get("channel"))
        except ChannelError as e:
            raise _fail(src, name, str(e)) from None
        calls = [_resolve_call(c, src, name, pool) for c in raw.get("calls") or []]
        if not calls:
            raise _fail(src, name, "has no calls")
        elsewhere = (raw.get("channel") or {}).get("listener", "plaintext") != "plaintext"
        if elsewhere and any(c.compression or c.server.get("compression") for c in calls):
            # the Python side's compression is checked on the wire (harness/run/observed.py), which
            # sees the plaintext listener only (and TLS hides)
            raise _fail(src, name, "compression is checked on the plaintext listener only: give compression cases "
                                   "no channel listener")
        if not name.startswith(calls[0].method + "/") or name.count("/") < 2:
            raise _fail(src, name, f"names are '<service>/<method>/<pattern>' of the first call ({calls[0].method})")
        cases.append(Case(name=name, calls=calls, source=src, channel=raw.get("channel")))
    return cases


def load_all(paths: list[Path], pool: descriptor_pool.DescriptorPool | None = None) -> list[Case]:
    """Load several case files; a case name used twice is an error naming both files."""
    seen: dict[str, str] = {}
    out: list[Case] = []
    builtin = {str(p) for p in builtin_case_files()}
    for p in paths:
        for c in load_file(p, pool, builtin=str(p) in builtin):
            if c.name in seen:
                raise CaseError(f"case {c.name!r} is defined twice: in {seen[c.name]} and {c.source}")
            seen[c.name] = c.source
            out.append(c)
    return out


def builtin_case_files() -> list[Path]:
    """The case files shipped with the harness (the seed services' cases)."""
    folder = importlib.resources.files("harness.cases")
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml"))
