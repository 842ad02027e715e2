"""Dimension `handlers`: every way a server handler ends a call (server.end, docs/cases.md).

Drawn, each the same to every client (measured on grpcio 1.85.1 sync and grpc.aio, grpc-go):
- return: the responses, then OK (with trailers or not);
- raise, after 0..n responses, with or without trailers set first: UNKNOWN from every server, its
  message the exception's text in each library's words ("Exception calling application: <text>",
  "Exception iterating responses: <text>", "Unexpected <class …>: <text>", grpc-go: "<text>"), so
  the case expects UNKNOWN with a message that contains the text, and the trailers;
- abort with any code but OK, after 0..n responses, with trailers;
- ignore cancellation: the client cancels at once, the handler sleeps through it and answers OK;
- keep working past the deadline: the handler sleeps past it and answers OK (the client must show
  DEADLINE_EXCEEDED; a grpc-go server's reset can make grpcio report CANCELLED: a known divergence).

- return nothing (unary, server_stream, bidi): grpc-go sends OK (a unary call: an empty message); the
  grpcio servers differ, each a measured known divergence with its own signature: sync unary and
  client_stream INTERNAL "Failed to serialize response!", grpc.aio UNKNOWN "Unexpected <class 'TypeError'>:
  descriptor 'SerializeToString' …", sync streams UNKNOWN "… 'NoneType' object is not an iterator".

- abort with OK (unary, server_stream, bidi), with no message: grpc-go's status.Error(codes.OK, …)
  is nil, so the call ends OK (unary: an empty message); grpcio sync turns it into UNKNOWN with no
  message, and on grpc.aio the call hangs until its deadline (kept at 1 s): known divergences on
  `…/fuzz/handlers/abort_ok/…`.

- return nothing or abort with OK in a client-streaming handler: a grpc-go server ends the call OK
  with no message at all. The case expects that (what grpcio's clients show: OK, no response); a
  grpc-go client refuses it as INTERNAL "cardinality violation: received no response message from
  non-server-streaming RPC" (known divergences `go-go:…/return_none/…`, `go-go:…/abort_ok/…`), and
  the grpcio servers fail it as on unary (the same known divergences).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf.descriptor import MethodDescriptor
from hypothesis import strategies as st

from harness.cases.model import STATUS_CODES, Call, streaming_mode
from harness.fuzz.dims.common import exchange

ENDS = ("return", "raise", "abort", "ignore_cancel", "past_deadline", "return_none", "abort_ok")
ABORT_OK_TIMEOUT_MS = 1000  # a grpc.aio server's call hangs until its deadline: keep that short
_ERRORS = [c for c in STATUS_CODES if c not in ("OK", "UNKNOWN")]
# The exception's text: a fixed prefix, so "the message contains it" cannot pass by accident (a
# one-letter text is in any message), and printable ASCII with no '%' (status messages are
# percent-encoded on the wire; the status dimension draws their bytes).
RAISE_PREFIX = "handler raised "
_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e, exclude_characters="%"), max_size=20)
_TRAILERS = st.one_of(st.just({}), st.dictionaries(st.sampled_from(["x-fuzz-trailer", "x-fuzz-t2"]),
                                                     st.lists(st.text("abcxyz019-_ ", max_size=8), min_size=1,
                                                              max_size=2).map(lambda vs: [v.strip() or "v" for v in vs]),
                                                     max_size=2))


def _may_return_none(m: MethodDescriptor) -> bool:
    """A handler returning nothing (or aborting with OK) is drawn everywhere but on a unary method
    whose response type has required fields: the empty message grpc-go sends for a nil one is not a
    valid one of them. On client_stream grpc-go sends no message at all (known divergences: a
    grpc-go client makes it INTERNAL "cardinality violation")."""
    if streaming_mode(m) == "unary":
        return not any(f.is_required for f in m.output_type.fields)
    return True


def _streams_responses(m: MethodDescriptor) -> bool:
    return m.server_streaming


@st.composite
def _calls(draw: Any, m: MethodDescriptor) -> Call:
    end = draw(st.sampled_from([e for e in ENDS if e not in ("return_none", "abort_ok") or _may_return_none(m)]))
    trailers = draw(_TRAILERS)
    if end == "return_none":
        # unary: grpc-go marshals the nil message as an empty one; client_stream: no message, OK
        # (a grpc-go client: INTERNAL, a known divergence); a stream: no response, OK. The
        # grpcio servers differ (known divergences, measured: docs/cases.md)
        # bidi half-duplex: a ping-pong client would wait for an answer to its first request
        call = draw(exchange(m, responses=False, bidi="half_duplex"))
        responses = [{}] if streaming_mode(m) == "unary" else []
        return _with(call, expect={"status": "OK", "responses": responses, **({"trailers": trailers} if trailers else {})},
                     server={"end": end})
    if end == "abort_ok":
        # grpc-go: status.Error(codes.OK, …) is nil, so the call ends OK, its message dropped (the case
        # gives none) and a unary call's nil message sent as an empty one; responses sent before stay
        call = draw(exchange(m, responses=_streams_responses(m)))
        responses = [{}] if streaming_mode(m) == "unary" else call.expect["responses"]
        return _with(call, expect={"status": "OK", "responses": responses, **({"trailers": trailers} if trailers else {})},
                     server={"end": "abort"}, timeout_ms=ABORT_OK_TIMEOUT_MS)
    if end == "return":
        call = draw(exchange(m))
        return _with(call, expect={**call.expect, **({"trailers": trailers} if trailers else {})})
    if end in ("raise", "abort"):
        # responses first where the method streams them (an error after some responses)
        call = draw(exchange(m, responses=_streams_responses(m)))
        expect: dict[str, Any] = {"responses": call.expect["responses"]}
        if trailers:
            expect["trailers"] = trailers
        if end == "raise":
            expect |= {"status": "UNKNOWN", "message_contains": [RAISE_PREFIX + draw(_TEXT)]}
        else:
            expect |= {"status": draw(st.sampled_from(_ERRORS)), "message": draw(_TEXT)}
        return _with(call, expect=expect, server={"end": end})
    call = draw(exchange(m))
    late = {"delay_ms": draw(st.integers(100, 600)), "ignore_end": True, "status": "OK",
            "responses": call.expect["responses"]}
    if end == "ignore_cancel":
        return _with(call, expect={"status": "CANCELLED", "responses": []}, server=late, cancel_after_responses=0)
    timeout = draw(st.integers(50, 300))
    late["delay_ms"] += timeout  # past the deadline, whatever the draw
    return _with(call, expect={"status": "DEADLINE_EXCEEDED", "responses": []}, server=late, timeout_ms=timeout)


def _with(call: Call, **changes: Any) -> Call:
    return dataclasses.replace(call, **changes)


def calls(m: MethodDescriptor) -> st.SearchStrategy[Call]:
    return _calls(m)


def tag(call: Call) -> str:
    """The ends with known divergences are named (`…/fuzz/handlers/<tag>/…`), so each entry matches
    only the calls it is about: return_none, abort_ok, past_deadline."""
    end = (call.server or {}).get("end")
    if end == "return_none":
        return "return_none"
    if end == "abort" and call.expect.get("status") == "OK":
        return "abort_ok"
    past = call.expect.get("status") == "DEADLINE_EXCEEDED" and (call.server or {}).get("ignore_end")
    return "past_deadline" if past else ""
