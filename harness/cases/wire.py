"""The misbehaving-peer cases (issue 20 §2, docs/wire.md) and their scripts, as data. Each script
names the frames the raw peer sends, and what the gRPC library on the other side must report: what
the gRPC-over-HTTP/2 protocol requires. Where the libraries differ, the difference is a measured
known divergence (harness/run/known_divergences.yaml).

A server script answers its case's first call with a list of steps, and any further call as a
well-behaved server would (harness/wire/server.py plays them). A client script is one request the
raw client sends (harness/wire/client.py). They are modelled on grpc's test/http2_test scenarios,
with one small declaration each instead of a class each: the engines hold the h2 handling, and a
script only says which frames go out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.cases.model import _EXPECT_KEYS, STATUS_CODES, Call, Case

# HTTP/2 error codes the scripts send (RFC 9113 §7)
NO_ERROR, INTERNAL_ERROR, CANCEL, ENHANCE_YOUR_CALM = 0, 2, 8, 11
MAX_CONCURRENT_STREAMS = 0x3
PING_FLOOD = 100  # PINGs a flood sends: bounded, far past any client's politeness
GRPC = "application/grpc"
TIMEOUT_MS = 5_000  # a call's deadline: a client that waits for what never comes ends then


@dataclass(frozen=True)
class Step:
    """One thing the raw server does on a call's stream, in order."""
    kind: str                    # headers | message | trailers | trailers_only | rst | goaway | pings
    status: int = 0              # trailers: grpc-status
    message: str | None = None   # trailers: grpc-message
    with_status: bool = True     # trailers: False leaves grpc-status out
    content_type: str = GRPC     # headers
    payload: bytes = b""         # message: the serialized message (google.protobuf.Empty: nothing)
    compressed: bool = False     # message: the compressed flag
    declared: int | None = None  # message: the length prefix, when it lies
    pad: int = 0                 # message: DATA frame padding
    code: int = NO_ERROR         # rst / goaway: the error code
    count: int = 0               # pings
    http_status: int = 200       # headers, trailers_only: :status
    status_text: str | None = None  # trailers: the grpc-status value as sent, when it is no number


def headers(content_type: str = GRPC) -> Step:
    return Step("headers", content_type=content_type)


def message(payload: bytes = b"", compressed: bool = False, declared: int | None = None, pad: int = 0) -> Step:
    return Step("message", payload=payload, compressed=compressed, declared=declared, pad=pad)


def trailers(status: int = 0, text: str | None = None, with_status: bool = True,
             status_text: str | None = None) -> Step:
    return Step("trailers", status=status, message=text, with_status=with_status, status_text=status_text)


def trailers_only(status: int, text: str | None = None) -> Step:
    return Step("trailers_only", status=status, message=text)


def http_error(http_status: int) -> Step:
    """HEADERS with END_STREAM, a non-200 :status and no grpc-status: an HTTP proxy's answer."""
    return Step("trailers_only", http_status=http_status, with_status=False, content_type="text/plain")


def rst(code: int = INTERNAL_ERROR) -> Step:
    return Step("rst", code=code)


def goaway(code: int = NO_ERROR) -> Step:
    """GOAWAY naming the call's own stream as the last: the call may finish, no new one may start."""
    return Step("goaway", code=code)


def pings(count: int) -> Step:
    return Step("pings", count=count)


# What a well-behaved server answers: one google.protobuf.Empty, status OK.
ANSWER = (headers(), message(), trailers())
OK_ONE = {"status": "OK", "responses": [{}]}


@dataclass(frozen=True)
class ServerScript:
    name: str
    doc: str
    steps: tuple[Step, ...]                    # the answer to the case's first call
    expect: dict[str, Any]                     # what the client must report for it
    # the case's further calls: each answered well-behaved, each expected OK (a new call after GOAWAY)
    more_calls: int = 0
    settings: dict[int, int] = field(default_factory=dict)  # the raw server's SETTINGS
    close_after: bool = False                  # the connection closes once the first call is answered
    hold_ms: int = 0                           # every answer waits this long after its request ended
    # the case's calls are sent at once on one connection (harness/run/wirecases.py), not one by one
    at_once: bool = False
    timeout_ms: int = TIMEOUT_MS               # the first call's deadline


def _internal(*reasons: str) -> dict[str, Any]:
    return _status("INTERNAL", *reasons)


def _status(code: str, *reasons: str) -> dict[str, Any]:
    """The status a client must end with, and its reason in each library's wording (one must appear):
    a client that reaches the code for another reason of its own fails (measured, grpcio 1.85.1 and
    grpc-go 1.85.0)."""
    return {"status": code, **({"message_contains": list(reasons)} if reasons else {})}


def _reset(code: int, name: str) -> tuple[str, ...]:
    """A RST_STREAM's reason as grpcio and grpc-go word it: grpcio 1.85.1 follows the code with ')',
    grpcio 1.72.2's whole message is "Received RST_STREAM with error code <code>" (measured by `make
    matrix-oldest`). The texts are substrings, so the 1.72 one admits only a longer number after the
    code: an error code no script sends (RFC 9113 defines 0 to 13: none is 2, 8 or 11 followed by a digit)."""
    return (f"Received RST_STREAM with error code {code})", f"stream terminated by RST_STREAM with error code: {name}",
            f"Received RST_STREAM with error code {code}")


def _http(status: int) -> tuple[str, str]:
    """A non-200 :status without grpc-status, as grpcio and grpc-go word it."""
    return (f"Received http2 header with status: {status}",
            f"unexpected HTTP status code received from server: {status} ")


SERVER_SCRIPTS: tuple[ServerScript, ...] = (
    ServerScript("trailers_only", "HEADERS with END_STREAM carrying :status 200 and grpc-status 5: the "
                 "call ends NOT_FOUND with its message, no response.",
                 (trailers_only(5, "no such thing"),), {"status": "NOT_FOUND", "message": "no such thing",
                                                        "responses": []}),
    ServerScript("trailers_without_status", "A response, then trailers without grpc-status: the call "
                 "must not end OK (the status is missing).",
                 (headers(), message(), trailers(with_status=False)), {"status": "UNKNOWN"}),
    ServerScript("rst_after_headers", "Response HEADERS, then RST_STREAM INTERNAL_ERROR: INTERNAL.",
                 (headers(), rst()), _internal(*_reset(INTERNAL_ERROR, "INTERNAL_ERROR"))),
    ServerScript("rst_mid_data", "Response HEADERS, half a message (the prefix says 10 bytes, 3 come), "
                 "then RST_STREAM INTERNAL_ERROR: INTERNAL.",
                 (headers(), message(b"\x08\x01\x10", declared=10), rst()),
                 _internal(*_reset(INTERNAL_ERROR, "INTERNAL_ERROR"))),
    ServerScript("rst_after_data", "Response HEADERS and a whole message, then RST_STREAM INTERNAL_ERROR "
                 "instead of trailers: INTERNAL.", (headers(), message(), rst()),
                 _internal(*_reset(INTERNAL_ERROR, "INTERNAL_ERROR"))),
    ServerScript("goaway_then_new_call", "Response HEADERS, GOAWAY NO_ERROR naming the call's stream as "
                 "the last, the message and trailers OK, then the connection closes: the call ends OK and "
                 "the next call succeeds on a new connection.",
                 (headers(), goaway(), message(), trailers()), OK_ONE, more_calls=1, close_after=True),
    ServerScript("max_concurrent_streams_1", "SETTINGS_MAX_CONCURRENT_STREAMS = 1, then ten calls at once on "
                 "the connection, each answered 100 ms after its request: each must wait for the stream "
                 "before it and end OK (a second open stream is a protocol error the raw server reports).",
                 ANSWER, OK_ONE, more_calls=9, settings={MAX_CONCURRENT_STREAMS: 1}, hold_ms=100, at_once=True),
    ServerScript("padded_data", "The response message in a DATA frame with 32 bytes of padding: OK.",
                 (headers(), message(b"", pad=32), trailers()), OK_ONE),
    ServerScript("unary_zero_responses", "A unary call answered with HEADERS and trailers OK but no "
                 "message: the client must not report OK without a response.",
                 (headers(), trailers()), _internal()),
    ServerScript("unary_two_responses", "A unary call answered with two messages and trailers OK: the "
                 "client must not report OK for a unary call.",
                 (headers(), message(), message(), trailers()), _internal(),
                 timeout_ms=2_000),  # grpcio's client waits for its deadline (a known divergence): a short one
    ServerScript("compressed_flag_without_encoding", "A message with the compressed flag set and no "
                 "grpc-encoding header: INTERNAL.",
                 (headers(), message(compressed=True), trailers()),
                 _internal("Compression bit set but no encoding configured",
                           "grpc: compressed flag set with identity or empty encoding")),
    ServerScript("wrong_content_type", "Response HEADERS with content-type text/html: the client must "
                 "not read it as gRPC.",
                 (headers("text/html"), message(), trailers()), {"status": "UNKNOWN"}),
    ServerScript("length_prefix_too_long", "A message whose length prefix says 100 bytes, followed by 2, "
                 "then trailers OK: INTERNAL (the stream ended inside a message).",
                 (headers(), message(b"\x08\x01", declared=100), trailers()), _internal()),
    ServerScript("rst_cancel", "Response HEADERS, then RST_STREAM CANCEL: CANCELLED (the protocol's mapping "
                 "of CANCEL).", (headers(), rst(CANCEL)), _status("CANCELLED", *_reset(CANCEL, "CANCEL"))),
    ServerScript("rst_enhance_your_calm", "Response HEADERS, then RST_STREAM ENHANCE_YOUR_CALM: "
                 "RESOURCE_EXHAUSTED (the protocol's mapping).", (headers(), rst(ENHANCE_YOUR_CALM)),
                 _status("RESOURCE_EXHAUSTED", *_reset(ENHANCE_YOUR_CALM, "ENHANCE_YOUR_CALM"))),
    ServerScript("http_503", "HEADERS [END_STREAM] :status 503, content-type text/plain, no grpc-status: "
                 "UNAVAILABLE (the HTTP-to-gRPC status mapping).", (http_error(503),),
                 _status("UNAVAILABLE", *_http(503))),
    ServerScript("http_404", "HEADERS [END_STREAM] :status 404, content-type text/plain, no grpc-status: "
                 "UNIMPLEMENTED (the HTTP-to-gRPC status mapping).", (http_error(404),),
                 _status("UNIMPLEMENTED", *_http(404))),
    ServerScript("status_not_a_number", "A response, then trailers with grpc-status: abc: as with no "
                 "grpc-status at all, UNKNOWN.", (headers(), message(), trailers(status_text="abc")), {"status": "UNKNOWN"}),
    ServerScript("message_bad_percent_encoding", "Trailers grpc-status 2 with grpc-message 'bad %zz %E2%28 end' "
                 "(an invalid escape and an invalid UTF-8 sequence): UNKNOWN, and the message is kept (the "
                 "protocol: a client never throws a status message away; a broken escape stays as it came or becomes a "
                 "replacement character, '?' or U+FFFD).",
                 (headers(), trailers(2, "bad %zz %E2%28 end")),
                 {"status": "UNKNOWN", "message_contains": ["bad %zz ", "bad ?", "bad \ufffd"]}),
    ServerScript("ping_flood", f"Response HEADERS, {PING_FLOOD} PINGs, then the message and trailers OK: "
                 "the client answers them (or not) and the call ends OK.",
                 (headers(), pings(PING_FLOOD), message(), trailers()), OK_ONE),
)


@dataclass(frozen=True)
class ClientScript:
    name: str
    doc: str
    messages: tuple[bytes, ...]                 # the serialized requests (HealthCheckRequest{}: nothing)
    expect: dict[str, Any]                      # status (a code name) or http_status the server must answer
    headers: dict[str, str] = field(default_factory=dict)  # request headers added or replaced
    compressed: bool = False                    # the compressed flag on every request message
    declared: int | None = None                 # the length prefix of every request message, when it lies


CLIENT_SCRIPTS: tuple[ClientScript, ...] = (
    ClientScript("unary_zero_requests", "A unary call half-closed with no request message: the server must "
                 "not answer OK.", (), {"status": "INTERNAL"}),
    ClientScript("unary_two_requests", "A unary call with two request messages: the server must not answer OK.",
                 (b"", b""), {"status": "INTERNAL"}),
    ClientScript("malformed_timeout", "grpc-timeout: 1x (no such unit): the server refuses the call, INTERNAL "
                 "(never a call without its deadline).", (b"",),
                 _internal("Error parsing 'grpc-timeout' metadata", "malformed grpc-timeout: "),
                 headers={"grpc-timeout": "1x"}),
    ClientScript("wrong_content_type", "content-type: text/plain: HTTP 415 Unsupported Media Type.", (b"",),
                 {"http_status": 415}, headers={"content-type": "text/plain"}),
    ClientScript("length_prefix_4gib", "A request whose length prefix says 4 GiB - 1 (far past any server's "
                 "receive limit) and no byte of it: RESOURCE_EXHAUSTED.", (b"",),
                 _status("RESOURCE_EXHAUSTED", "Received message larger than max (4294967295 vs. ",
                         "received message larger than max (4294967295 vs. "),
                 declared=0xFFFF_FFFF),
    ClientScript("unknown_encoding", "grpc-encoding: interop-unknown with a compressed message: UNIMPLEMENTED.",
                 (b"",), {"status": "UNIMPLEMENTED"}, headers={"grpc-encoding": "interop-unknown"}, compressed=True),
)


def server_script(name: str) -> ServerScript:
    for s in SERVER_SCRIPTS:
        if s.name == name:
            return s
    raise KeyError(f"no server script {name!r}; one of {', '.join(s.name for s in SERVER_SCRIPTS)}")


def client_script(name: str) -> ClientScript:
    for s in CLIENT_SCRIPTS:
        if s.name == name:
            return s
    raise KeyError(f"no client script {name!r}; one of {', '.join(s.name for s in CLIENT_SCRIPTS)}")


def frame(payload: bytes, compressed: bool = False, declared: int | None = None) -> bytes:
    """A gRPC length-prefixed message: flag byte, 4-byte big-endian length, payload."""
    n = len(payload) if declared is None else declared
    return bytes([1 if compressed else 0]) + n.to_bytes(4, "big") + payload


# ---------------------------------------------------------------- cases

SOURCE = "misbehaving HTTP/2 peer (harness/cases/wire.py)"
PREFIX = "wire/"
# server scripts answer any method: a raw one (Empty in and out) that no proto set has
SERVER_METHOD = "interop.wire.Misbehaving/Unary"
# client scripts call the standard health service, which every server serves with its library's code
CLIENT_METHOD = "grpc.health.v1.Health/Check"
# the directions the cases run in: the same library on both sides, the raw peer replacing one of them
# (a server script the server, a client script the client): each library meets each script once
DIRECTIONS = ("py-py", "pyaio-pyaio", "go-go")
# cheap enough for the quick profile (a single frame exchange each): trailers_only, and wrong_content_type
# as a server script and as a client script
QUICK = ("trailers_only", "wrong_content_type")


# what the raw client compares (harness/wire/client.py check): a key besides these would be ignored
CLIENT_EXPECT_KEYS = {"status", "http_status", "message_contains"}


def _checked(name: str, expect: dict[str, Any], allowed: set[str]) -> None:
    """Refuse an expectation no checker would compare: a script with it would pass whatever came."""
    if unknown := set(expect) - allowed:
        raise ValueError(f"wire script {name}: expect key(s) {sorted(unknown)} are compared by nobody; "
                         f"allowed: {sorted(allowed)} (harness/cases/wire.py)")
    if "status" in expect and expect["status"] not in STATUS_CODES:
        raise ValueError(f"wire script {name}: status {expect['status']!r} is not a gRPC status code name")
    if not isinstance(expect.get("message_contains", []), list):
        raise ValueError(f"wire script {name}: message_contains is a list of texts (one must appear)")


def generate() -> list[Case]:
    """One case per script; the same for every proto set."""
    out = []
    for s in SERVER_SCRIPTS:
        _checked(s.name, s.expect, _EXPECT_KEYS)
        first = _call(s.expect, s.timeout_ms)
        out.append(Case(f"{SERVER_METHOD}/{PREFIX}{s.name}", [first, *(_call(OK_ONE) for _ in range(s.more_calls))],
                        source=SOURCE))
    for c in CLIENT_SCRIPTS:
        _checked(c.name, c.expect, CLIENT_EXPECT_KEYS)
        # the raw client makes the call: the call here says what it is about, for the reports
        call = Call(method=CLIENT_METHOD, streaming="unary", request_type="grpc.health.v1.HealthCheckRequest",
                    response_type="grpc.health.v1.HealthCheckResponse", requests=[{}], expect=c.expect,
                    timeout_ms=TIMEOUT_MS)
        out.append(Case(f"{CLIENT_METHOD}/{PREFIX}{c.name}", [call], source=SOURCE))
    return out


def _call(expect: dict[str, Any], timeout_ms: int = TIMEOUT_MS) -> Call:
    return Call(method=SERVER_METHOD, streaming="unary", request_type="google.protobuf.Empty",
                response_type="google.protobuf.Empty", requests=[{}], expect=expect, raw=True, timeout_ms=timeout_ms)


def script_of(case_name: str) -> ServerScript | ClientScript | None:
    """The script a case plays (None: not a wire case)."""
    if case_name.startswith(f"{SERVER_METHOD}/{PREFIX}"):
        return server_script(case_name.rsplit("/", 1)[1])
    if case_name.startswith(f"{CLIENT_METHOD}/{PREFIX}"):
        return client_script(case_name.rsplit("/", 1)[1])
    return None


def runs_in(slug: str) -> bool:
    return slug in DIRECTIONS
