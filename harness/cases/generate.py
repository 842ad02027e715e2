"""Cases from descriptors: one explicit cross-product over every method of the proto set.

    method × value pattern      <svc>/<method>/<RequestType>/<pattern>   (harness.cases.values.PATTERNS, oneof members)
    method × streaming pattern  <svc>/<method>/stream/<pattern>          (by the method's mode)
    service × protocol pattern  <svc>/<method>/protocol/<pattern>        (metadata, status codes, details,
                                                                          unimplemented, gzip, size limits)

The servers answer these with the generic engine (docs/peer-contract.md, contract v2): the same
call data says what the client sends and what the server answers, so both sides check what they
receive. Deterministic: the same proto set gives the same cases, in the same order.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor

from harness.cases.model import STATUS_CODES, Call, Case, streaming_mode
from harness.protoset import ProtoSet
from harness.cases.values import PATTERNS, build, scalar, to_json

SOURCE = "generated from descriptors (harness/cases/generate.py)"
TIMEOUT_MS = 10_000
RECV_LIMIT = 4 * 1024 * 1024  # grpcio's and grpc-go's default maximum received message size
UNICODE_MESSAGE = "tab\there, CR\r, LF\n, BMP ü € 中, non-BMP 😀 𝄞"


def services(ps: ProtoSet, skip: set[str] | frozenset[str] = frozenset()) -> list[ServiceDescriptor]:
    """The set's services, but those of `skip` (files Python could not load: reported as findings)."""
    pool = descriptor_pool.Default()
    return [svc for rel in ps.files if rel not in skip for svc in pool.FindFileByName(rel).services_by_name.values()]


mode = streaming_mode


def generate(ps: ProtoSet, skip: set[str] | frozenset[str] = frozenset()) -> list[Case]:
    cases: list[Case] = []
    for svc in services(ps, skip):
        for m in svc.methods:
            cases += value_cases(m) + stream_cases(m)
        if svc.methods:
            cases += protocol_cases(svc)
    return cases


# ---------------------------------------------------------------- building blocks

def _call(m: MethodDescriptor, requests: list[Any], responses: list[Any] | None, **kw: Any) -> Call:
    expect = {"status": kw.pop("status", "OK")}
    if responses is not None:
        expect["responses"] = responses
    for key in ("status_alternatives", "message", "headers", "trailers", "details"):
        if key in kw:
            expect[key] = kw.pop(key)
    return Call(method=f"{m.containing_service.full_name}/{m.name}", streaming=mode(m),
                request_type=m.input_type.full_name, response_type=m.output_type.full_name,
                requests=requests, expect=expect, timeout_ms=kw.pop("timeout_ms", TIMEOUT_MS), **kw)


def _case(m: MethodDescriptor, shape: str, pattern: str, call: Call) -> Case:
    return Case(name=f"{m.containing_service.full_name}/{m.name}/{shape}/{pattern}", calls=[call], source=SOURCE)


def _value(desc: Descriptor, pattern: str) -> Any:
    return to_json(build(desc, pattern))


def _exchange(m: MethodDescriptor, req: Any, resp: Any, **kw: Any) -> Call:
    """One request and one response, whatever the mode (ping-pong for bidi)."""
    if mode(m) == "bidi":
        kw.setdefault("bidi", "ping_pong")
    return _call(m, [req], [resp], **kw)


# ---------------------------------------------------------------- value patterns

def value_cases(m: MethodDescriptor) -> list[Case]:
    """Every value pattern of the request and response types; patterns that change nothing are dropped."""
    out, seen = [], set()
    variants: list[tuple[str, Callable[[Descriptor], Any]]] = [(p, lambda d, p=p: _value(d, p)) for p in PATTERNS]
    variants += _oneof_variants(m.input_type)
    variants.append(("deep_recursion", lambda d: _deep(d, 60)))
    # Past upb's default nesting limit (100) and far inside protobuf-go's (10 000): see divergences.
    variants.append(("deep_recursion_150", lambda d: _deep(d, 150)))
    for pattern, make in variants:
        req, resp = make(m.input_type), make(m.output_type)
        if req is None and resp is None:
            continue
        req = req if req is not None else _value(m.input_type, "typical")
        resp = resp if resp is not None else _value(m.output_type, "typical")
        key = json.dumps([req, resp], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        out.append(_case(m, m.input_type.name, pattern, _exchange(m, req, resp)))
    return out


def _oneof_variants(desc: Descriptor) -> list[tuple[str, Callable[[Descriptor], Any]]]:
    """Each oneof member set (typical value, then its default value), in messages reachable from desc."""
    variants = []
    for path, holder in _reachable(desc):
        for oneof in holder.oneofs:
            if len(oneof.fields) == 1 and oneof.name == f"_{oneof.fields[0].name}":
                continue  # proto3 optional
            for fd in oneof.fields:
                for suffix, pattern in (("", "typical"), ("_default", "empty")):
                    name = f"oneof_{'.'.join(path + [fd.name])}{suffix}"
                    variants.append((name, lambda d, path=path, fd=fd, pattern=pattern, root=desc:
                                     _with_member(d, root, path, fd, pattern)))
    return variants


def _with_member(d: Descriptor, root: Descriptor, path: list[str], fd: Any, pattern: str) -> Any:
    if d is not root:
        return None
    msg = build(d, "empty")
    holder = msg
    for name in path:
        holder = getattr(holder, name)
    if fd.message_type is not None:
        getattr(holder, fd.name).CopyFrom(build(fd.message_type, pattern))
        if pattern == "empty":
            getattr(holder, fd.name).SetInParent()
    else:
        setattr(holder, fd.name, scalar(fd, "typical", 0) if pattern == "typical" else fd.default_value)
    return to_json(msg)


def _reachable(desc: Descriptor, depth: int = 2) -> list[tuple[list[str], Descriptor]]:
    """(field path, message type) of desc and its singular message fields, a few levels deep."""
    out, queue, seen = [], [([], desc)], set()
    while queue:
        path, d = queue.pop(0)
        if d.full_name in seen or d.file.name.startswith("google/protobuf/"):
            continue
        seen.add(d.full_name)
        out.append((path, d))
        if len(path) < depth:
            queue += [(path + [f.name], f.message_type) for f in d.fields
                      if f.message_type is not None and not f.is_repeated and f.containing_oneof is None]
    return out


def _deep(d: Descriptor, levels: int) -> Any:
    """A chain `levels` deep through a singular self-recursive field reachable from d, or None."""
    for path, holder in _reachable(d):
        rec = next((f for f in holder.fields if f.message_type == holder and not f.is_repeated), None)
        if rec is None:
            continue
        msg = build(d, "empty")
        node = msg
        for name in path:
            node = getattr(node, name)
        for _ in range(levels):
            node = getattr(node, rec.name)
            node.SetInParent()
        _fill_required(msg)
        return to_json(msg)
    return None


def _fill_required(msg: Any) -> None:
    """Required fields along a chain built by hand (proto2 / LEGACY_REQUIRED)."""
    for fd in msg.DESCRIPTOR.fields:
        if fd.is_required and not msg.HasField(fd.name):
            setattr(msg, fd.name, getattr(build(msg.DESCRIPTOR, "typical"), fd.name))
    for fd, value in msg.ListFields():
        if fd.message_type is not None and not fd.is_repeated and not fd.is_extension:
            _fill_required(value)


# ---------------------------------------------------------------- streaming patterns

def stream_cases(m: MethodDescriptor) -> list[Case]:
    req, resp = _value(m.input_type, "typical"), _value(m.output_type, "typical")
    kind, out = mode(m), []

    def add(pattern: str, call: Call) -> None:
        out.append(_case(m, "stream", pattern, call))

    if kind == "server_stream":
        for n, pattern in ((0, "zero"), (1, "one"), (25, "many")):
            add(pattern, _call(m, [req], [resp] * n))
        add("error_after_2", _call(m, [req], [resp] * 2, status="ABORTED", message="stopped after 2"))
    if kind == "client_stream":
        for n, pattern in ((0, "zero"), (1, "one"), (25, "many")):
            add(pattern, _call(m, [req] * n, [resp]))
    if kind == "bidi":
        add("ping_pong", _call(m, [req] * 4, [resp] * 4, bidi="ping_pong"))
        add("half_duplex", _call(m, [req] * 4, [resp] * 3))
        add("server_finishes_early", _call(m, [req] * 3, [resp], server={"read_requests": 1}))
        add("client_cancels_after_first", _call(m, [req] * 3, [resp], status="CANCELLED", cancel_after_responses=1,
                                                bidi="ping_pong", server={"responses": [resp] * 3, "status": "OK"}))
    # When its deadline passes, a grpc-go server resets the stream (RST_STREAM CANCEL); that reset can
    # reach the client before the client's own timer fires, which then reports CANCELLED.
    # server.status OK with an answer: a client that misses its deadline or does not cancel fails.
    late = {"delay_ms": 3000, "responses": [resp], "status": "OK"}
    add("deadline_exceeded", _call(m, [req], [], status="DEADLINE_EXCEEDED", status_alternatives=["CANCELLED"],
                                   timeout_ms=100, server=late))
    add("cancel_before_first_message", _call(m, [req], [], status="CANCELLED", cancel_after_responses=0, server=late))
    return out


# ---------------------------------------------------------------- protocol behaviours

def protocol_cases(svc: ServiceDescriptor) -> list[Case]:
    m = svc.methods[0]
    req, resp = _value(m.input_type, "typical"), _value(m.output_type, "typical")
    error_responses: list[Any] = []
    out: list[Case] = []

    def add(pattern: str, call: Call) -> None:
        out.append(_case(m, "protocol", pattern, call))

    blob = base64.b64encode(bytes(range(256))).decode()
    echo = {"x-ascii": ["plain value", "second"], "x-blob-bin": [blob]}
    add("metadata_echo", _exchange(m, req, resp, metadata=echo, headers=echo, trailers=echo))
    for code in STATUS_CODES[1:]:
        add(f"status_{code.lower()}", _call(m, [req], error_responses, status=code, message=f"plain {code} message"))
    add("status_unicode_message", _call(m, [req], error_responses, status="FAILED_PRECONDITION",
                                        message=UNICODE_MESSAGE))
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "QUOTA", "domain": "example.org",
                "metadata": {"k": "v ✓"}},
               {"@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "a.b", "description": "must be ✓"}]}]
    add("rich_error_details", _call(m, [req], error_responses, status="INVALID_ARGUMENT", message="see details",
                                    details=details))
    add("gzip_request", _exchange(m, req, resp, compression="gzip"))
    add("gzip_response", _exchange(m, req, resp, server={"compression": "gzip"}))
    for pattern, path in (("unimplemented_method", f"{svc.full_name}/NoSuchMethod"),
                          ("unimplemented_service", f"{svc.full_name}NoSuchService/Method")):
        out.append(Case(name=f"{svc.full_name}/{m.name}/protocol/{pattern}", source=SOURCE, calls=[
            Call(method=path, streaming="unary", request_type="google.protobuf.Empty",
                 response_type="google.protobuf.Empty", requests=[{}], expect={"status": "UNIMPLEMENTED"},
                 timeout_ms=TIMEOUT_MS, raw=True)]))
    out += _size_cases(m)
    return out


def _size_cases(m: MethodDescriptor) -> list[Case]:
    """Just under, and just over, the default receive limit, through the first string field found."""
    req_field = _string_field(m.input_type)
    resp_field = _string_field(m.output_type)
    if req_field is None or resp_field is None:
        return []  # nothing to make big: the case is not possible for this method
    near, over = RECV_LIMIT - 64 * 1024, RECV_LIMIT + 1024
    req_near, resp_near = _sized(m.input_type, req_field, near), _sized(m.output_type, resp_field, near)
    cases = [_case(m, "protocol", "near_size_limit", _exchange(m, req_near, resp_near))]
    cases.append(_case(m, "protocol", "request_over_limit",
                       _call(m, [_sized(m.input_type, req_field, over)], [], status="RESOURCE_EXHAUSTED")))
    if mode(m) in ("unary", "client_stream"):
        # The server sends the big response; the client must not see it (responses are not checked).
        cases.append(_case(m, "protocol", "response_over_limit",
                           _call(m, [_value(m.input_type, "typical")], None, status="RESOURCE_EXHAUSTED",
                                 server={"responses": [_sized(m.output_type, resp_field, over)]})))
    return cases


def _string_field(d: Descriptor) -> list[str] | None:
    for path, holder in _reachable(d, depth=1):
        for f in holder.fields:
            if f.type == f.TYPE_STRING and not f.is_repeated and f.containing_oneof is None:
                return path + [f.name]
    return None


def _sized(d: Descriptor, path: list[str], size: int) -> Any:
    msg = build(d, "empty")
    node = msg
    for name in path[:-1]:
        node = getattr(node, name)
    setattr(node, path[-1], "x" * size)
    return to_json(msg)
