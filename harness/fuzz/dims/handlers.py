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

Not drawn, on purpose (the libraries legitimately differ; measured, docs/cases.md "How a handler
ends"): returning nothing from a unary or client-streaming handler, returning nothing instead of a
response iterator on a grpcio sync server, and aborting with OK (grpc.aio hangs until the deadline).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf.descriptor import MethodDescriptor
from hypothesis import strategies as st

from harness.cases.model import STATUS_CODES, Call
from harness.fuzz.dims.common import exchange

ENDS = ("return", "raise", "abort", "ignore_cancel", "past_deadline")
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


def _streams_responses(m: MethodDescriptor) -> bool:
    return m.server_streaming


@st.composite
def _calls(draw: Any, m: MethodDescriptor) -> Call:
    end = draw(st.sampled_from(ENDS))
    trailers = draw(_TRAILERS)
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
