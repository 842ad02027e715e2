"""The probe's checks (docs/probe.md), one small function each, schemathesis style.

A per-request check takes the `Exchange` (one probe call and every client flavour's outcome of it)
and returns None, or the text of a finding: what was expected and what came back. Check 6 looks at
the server once (harness/probe/standard.py); check 7 (non-determinism) is not a finding: it marks a
method, and check 2 then compares only status codes and shapes for it."""

from __future__ import annotations

import base64
import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from google.protobuf.message_factory import GetMessageClass

from harness.probe import decodes

CODE_NAMES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
              "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
              "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")
SERVER_ERRORS = frozenset({2, 13, 15})  # UNKNOWN, INTERNAL, DATA_LOSS
DEADLINE_EXCEEDED, CANCELLED = 4, 1
# grpcio's default limit on received metadata (GRPC_ARG_MAX_METADATA_SIZE, 8 KiB, counted as HPACK does:
# name + value + 32 per entry); grpc-go's own limit (16 MiB) is far above it, so this is the binding one
METADATA_LIMIT = 8 * 1024
HPACK_ENTRY_OVERHEAD = 32
KEY = re.compile(r"^[0-9a-z_.\-]+$")
# transport keys a client library may show among the metadata (grpc-go shows content-type), and the
# gRPC keys a server may send (grpc-retry-pushback-ms: a server's retry pushback, gRFC A6, which grpc-go
# reads from the trailer metadata); any other grpc- key is reserved for gRPC itself
TRANSPORT_KEYS = frozenset({"content-type", "grpc-encoding", "grpc-accept-encoding", "grpc-status", "grpc-message",
                            "grpc-status-details-bin", "grpc-retry-pushback-ms", "date", "server", "user-agent"})
# a deadline must end the call within this much of it (scheduling on a busy machine included)
DEADLINE_GRACE_MS = 1000.0


def code_name(code: int | None) -> str:
    if code is None or code < 0:
        return "no status"
    return CODE_NAMES[code] if 0 <= code < len(CODE_NAMES) else f"code {code}"


@dataclass
class Exchange:
    """One probe call and each client flavour's outcome of it."""
    method: str                       # pkg.Service/Method
    call: dict[str, Any]              # the probe call (contract shape)
    outcomes: dict[str, dict[str, Any]]
    pool: Any = None
    nondeterministic: bool = False
    allowed_errors: frozenset[int] = field(default_factory=frozenset)


def canonical(pool: Any, method: str, raw_b64: str) -> bytes:
    """A response's bytes in one canonical form (map entries sorted: grpc-go marshals maps in random
    order), so equal messages compare equal whichever server or client carried them."""
    raw = base64.b64decode(raw_b64)
    try:
        cls = GetMessageClass(pool.FindMethodByName(method.replace("/", ".")).output_type)
        return cls.FromString(raw).SerializeToString(deterministic=True)
    except Exception:  # noqa: BLE001 - not decodable with the schema: the raw bytes are the answer
        return raw


def signature(x: Exchange, o: dict[str, Any], shapes_only: bool) -> tuple:
    if o.get("code") is None or o["code"] < 0:  # the call was not made as asked: the client's error
        return ("client error", o.get("error"))
    base = (code_name(o["code"]), len(o["responses"]))
    if shapes_only:
        return base
    return base + tuple(canonical(x.pool, x.method, r) for r in o["responses"])


def not_a_server_error(x: Exchange) -> str | None:
    """1: UNKNOWN, INTERNAL or DATA_LOSS for a schema-valid request (unless allow-listed for the method),
    as every client flavour saw it. When only some flavours see it, it is one library's reading of the
    server's answer (grpc-go's INTERNAL for status details that contradict the status): clients_agree
    reports that, with every flavour's outcome."""
    seen = {c: o for c, o in x.outcomes.items() if not o.get("known_race")}
    bad = {c: o for c, o in seen.items() if o.get("code") in SERVER_ERRORS - x.allowed_errors}
    if not bad or len(bad) < len(seen):
        return None
    c, o = next(iter(bad.items()))
    return (f"{code_name(o['code'])} {o['message']!r} for a schema-valid request (seen by {', '.join(bad)}); "
            f"if the method documents it, allow it with --allow-error '{x.method}={code_name(o['code'])}'")


def clients_agree(x: Exchange) -> str | None:
    """2: every client flavour gets the same outcome: status code, message count and responses (codes
    and counts only on a non-deterministic method)."""
    if x.call.get("cancel_after_responses") is not None:
        return None  # a cancel races the server's own end: CANCELLED and OK are both right (calls_end checks it)
    sigs = {c: signature(x, o, x.nondeterministic) for c, o in x.outcomes.items() if not o.get("known_race")}
    if len(set(sigs.values())) <= 1:
        return None
    same = len({s[:2] for s in sigs.values()}) == 1
    parts = []
    for c, o in x.outcomes.items():
        what = f"{code_name(o['code'])} {o['message']!r}, {len(o['responses'])} response(s)" + (
            f" ({o['error']})" if o.get("error") else "")
        if same:  # the difference is in the responses: show them, as this client decoded them
            shown = [d.get("json") for d in o.get("decoded") or []] or o["responses"]
            what += f" {json.dumps(shown, ensure_ascii=False)[:300]}"
        parts.append(f"{c}: {what}")
    return f"the client flavours disagree ({'same codes and counts' if same else 'different outcomes'}): " + "; ".join(parts)


def schema_conforms(x: Exchange) -> str | None:
    """3: responses carry no unknown fields, parse as the schema says, and decode alike in Python and Go."""
    for c, o in x.outcomes.items():
        for i, d in enumerate(o.get("decoded") or []):
            if d.get("error"):
                return f"{c}: response {i} {d['error']}: the server and the given protos disagree"
            if d.get("unknown_fields"):
                return (f"{c}: response {i} carries fields the given protos do not declare (unknown fields): the "
                        f"server's protos are not the given ones")
    for c, o in x.outcomes.items():  # Go's decode of its bytes against Python's decode of the same bytes
        if c.startswith("go") and o.get("decoded"):
            for i, (raw, d) in enumerate(zip(o["responses"], o["decoded"])):
                py = _python_json(x, raw)
                if py is not None and d.get("json") is not None and not decodes.same(_output(x), d["json"], py):
                    return (f"{c}: response {i} decodes differently in Go ({d['json']}) and Python ({py}), "
                            f"from the same bytes")
    return None


def _output(x: Exchange) -> Any:
    return x.pool.FindMethodByName(x.method.replace("/", ".")).output_type


def _python_json(x: Exchange, raw_b64: str) -> Any:
    """Python's protobuf JSON of the bytes (None when they do not parse: reported above)."""
    from google.protobuf import json_format
    try:
        msg = GetMessageClass(_output(x)).FromString(base64.b64decode(raw_b64))
    except Exception:  # noqa: BLE001
        return None
    return json_format.MessageToDict(msg, descriptor_pool=x.pool)


def calls_end(x: Exchange) -> str | None:
    """4: a call ends within its bound after the client half-closes; a deadline ends it within a grace;
    a cancelled call ends CANCELLED, with no response past the cancel."""
    bound = x.call["timeout_ms"]
    for c, o in x.outcomes.items():
        if o.get("code") is None or o["code"] < 0:
            continue
        if o["code"] == DEADLINE_EXCEEDED and o["elapsed_ms"] >= 0.9 * bound:
            return (f"{c}: the call had not ended {bound} ms after the client half-closed "
                    f"(DEADLINE_EXCEEDED after {o['elapsed_ms']:.0f} ms, {len(o['responses'])} response(s))")
        if o["elapsed_ms"] > bound + DEADLINE_GRACE_MS:
            return f"{c}: the deadline of {bound} ms was not honoured: the call ended after {o['elapsed_ms']:.0f} ms"
        n = x.call.get("cancel_after_responses")
        # OK: the server had ended the call before the cancel reached it (a race every client may lose)
        if n is not None and (o["code"] not in (CANCELLED, 0) or len(o["responses"]) > n):
            return (f"{c}: cancelled after {n} response(s), the call did not end CANCELLED with them: "
                    f"{code_name(o['code'])}, {len(o['responses'])} response(s)")
    return None


def _metadata_problem(kind: str, md: dict[str, list[str]], extra: int = 0) -> str | None:
    size = extra
    for k, values in md.items():
        if not KEY.match(k):
            return f"{kind} key {k!r} is not a valid gRPC metadata key (lower-case letters, digits, _ . - only)"
        if k.startswith("grpc-") and k not in TRANSPORT_KEYS:
            return f"{kind} key {k!r} uses the prefix grpc-, which is reserved for gRPC itself"
        for v in values:
            if not k.endswith("-bin") and (not all(" " <= ch <= "~" for ch in v) or v != v.strip(" \t")):
                return (f"{kind} {k}: value {v[:60]!r} is not well-formed (printable ASCII without leading or "
                        f"trailing whitespace; binary values need a -bin key)")
            size += len(k) + len(v) + HPACK_ENTRY_OVERHEAD
    if size > METADATA_LIMIT:
        return f"{kind} are {size} bytes, over grpcio's default limit of {METADATA_LIMIT} bytes"
    return None


def _wire_length(message: str) -> int:
    """The status message's length as grpc-message carries it: percent-encoded UTF-8, where every byte
    outside printable ASCII, and '%' itself, takes three (gRPC's PROTOCOL-HTTP2)."""
    return sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in message.encode())


def protocol_shape(x: Exchange) -> str | None:
    """5: status codes are 0-16; headers, trailers and status messages are well-formed and within both
    libraries' limits."""
    for c, o in x.outcomes.items():
        if o.get("code") is None or o["code"] < 0:
            continue
        if not 0 <= o["code"] <= 16:
            return f"{c}: status code {o['code']} is outside 0-16"
        problem = (_metadata_problem("headers", o.get("headers") or {})
                   or _metadata_problem("trailers", o.get("trailers") or {},
                                        _wire_length(o.get("message") or "") + len("grpc-message") + HPACK_ENTRY_OVERHEAD))
        if problem:
            return f"{c}: {problem}"
    return None


CHECKS: dict[str, Callable[[Exchange], str | None]] = {
    "not_a_server_error": not_a_server_error,
    "clients_agree": clients_agree,
    "schema_conforms": schema_conforms,
    "calls_end": calls_end,
    "protocol_shape": protocol_shape,
}
STANDARD_CHECK = "standard_services"  # check 6
ALL_CHECKS = (*CHECKS, STANDARD_CHECK)


def parse_allow(entries: list[str]) -> list[tuple[str, int]]:
    """--allow-error 'pkg.Service/Method=INTERNAL' (the method may be a glob)."""
    out = []
    for e in entries:
        pattern, _, name = e.partition("=")
        if name.upper() not in CODE_NAMES or not pattern:
            raise ValueError(f"--allow-error {e!r}: expected METHOD=CODE, CODE one of UNKNOWN, INTERNAL, DATA_LOSS")
        out.append((pattern, CODE_NAMES.index(name.upper())))
    return out


def allowed_for(method: str, allow: list[tuple[str, int]]) -> frozenset[int]:
    return frozenset(code for pattern, code in allow if fnmatch.fnmatchcase(method, pattern))
