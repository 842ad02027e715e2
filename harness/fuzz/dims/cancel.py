"""Dimension `cancel`: cancellation and early ends at any point of any streaming mode, from either side.

Drawn:
- the client cancels at once (any mode) while the server waits: CANCELLED, nothing received;
- the client cancels after k of n responses (server_stream; bidi half-duplex and ping-pong): the
  server pauses before response k+1 (server.delay_after), so the cancel must come from the client:
  CANCELLED with exactly the first k responses;
- the client cancels after sending k of n requests, without half-closing (client_stream, half-duplex
  bidi; cancel_after_requests): CANCELLED, no response;
- the server ends before reading every request (client_stream and bidi; server.read_requests r < n),
  OK or with an error, its responses intact;
- the client half-closes at once (no request) in client_stream and bidi, the server answering;
- the client half-closes early in a ping-pong bidi: k of n answered requests, then the half-close,
  and the server streams its other n-k responses on (OK, all n responses; `bidi: ping_pong` with
  fewer requests than responses, docs/cases.md).
In every cancel the server would otherwise answer OK with data, so a client that does not really
cancel cannot pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf.descriptor import MethodDescriptor
from hypothesis import strategies as st

from harness.cases.model import STATUS_CODES, Call, streaming_mode
from harness.fuzz import strategies
from harness.fuzz.dims.common import MAX_MESSAGES, exchange

WAIT_MS = 3000  # the server's pause; a cancelling client ends it at once, so it costs nothing
_ERRORS = [c for c in STATUS_CODES if c != "OK"]


def _shapes(mode: str) -> list[str]:
    out = ["cancel_at_once"]
    if mode in ("server_stream", "bidi"):
        out.append("cancel_after_responses")
    if mode in ("client_stream", "bidi"):
        out += ["cancel_after_requests", "server_ends_early", "half_close_at_once"]
    if mode == "bidi":
        out.append("half_close_early")
    return out


@st.composite
def _calls(draw: Any, m: MethodDescriptor) -> Call:
    mode = streaming_mode(m)
    shape = draw(st.sampled_from(_shapes(mode)))
    anys = strategies.known_types(m.containing_service.file)
    req = strategies.message_json(m.input_type, anys)
    resp = strategies.message_json(m.output_type, anys)
    base = draw(exchange(m))
    if shape == "cancel_at_once":
        server = {"delay_ms": WAIT_MS, "status": "OK", "responses": base.expect["responses"]}
        return dataclasses.replace(base, server=server, cancel_after_responses=0,
                                   expect={"status": "CANCELLED", "responses": []})
    if shape == "cancel_after_responses":
        answers = draw(st.lists(resp, min_size=1, max_size=MAX_MESSAGES))
        k = draw(st.integers(0, len(answers) - 1))
        requests = base.requests
        bidi = draw(st.sampled_from(["half_duplex", "ping_pong"])) if mode == "bidi" else "half_duplex"
        if bidi == "ping_pong":  # one request per answer: the server answers as it reads
            requests = [draw(req) for _ in answers]
        server = {"delay_ms": WAIT_MS, "delay_after": k, "status": "OK", "responses": answers}
        return dataclasses.replace(base, requests=requests, bidi=bidi, server=server, cancel_after_responses=k,
                                   expect={"status": "CANCELLED", "responses": answers[:k]})
    if shape == "cancel_after_requests":
        requests = draw(st.lists(req, min_size=1, max_size=MAX_MESSAGES))
        k = draw(st.integers(0, len(requests) - 1))
        answers = [draw(resp)] if mode == "client_stream" else draw(st.lists(resp, max_size=MAX_MESSAGES))
        return dataclasses.replace(base, requests=requests, bidi="half_duplex",
                                   server={"status": "OK", "responses": answers}, cancel_after_requests=k,
                                   expect={"status": "CANCELLED", "responses": []})
    if shape == "server_ends_early":
        requests = draw(st.lists(req, min_size=1, max_size=MAX_MESSAGES))
        read = draw(st.integers(0, len(requests) - 1))
        answers = [draw(resp)] if mode == "client_stream" else draw(st.lists(resp, max_size=MAX_MESSAGES))
        expect: dict[str, Any] = {"status": "OK", "responses": answers}
        if draw(st.integers(0, 3)) == 3:  # an error status instead (a server stream's responses first)
            expect = {"status": draw(st.sampled_from(_ERRORS)), "message": "ended early",
                      "responses": answers if mode == "bidi" else []}
        return dataclasses.replace(base, requests=requests, bidi="half_duplex", server={"read_requests": read},
                                   expect=expect)
    if shape == "half_close_early":  # ping-pong for k requests, then half-close; the server streams on
        answers = draw(st.lists(resp, min_size=2, max_size=MAX_MESSAGES))
        requests = [draw(req) for _ in range(draw(st.integers(1, len(answers) - 1)))]
        return dataclasses.replace(base, requests=requests, bidi="ping_pong", server={},
                                   expect={"status": "OK", "responses": answers})
    # half_close_at_once: no request at all; the server answers all the same
    answers = [draw(resp)] if mode == "client_stream" else draw(st.lists(resp, max_size=MAX_MESSAGES))
    return dataclasses.replace(base, requests=[], bidi="half_duplex", expect={"status": "OK", "responses": answers})


def calls(m: MethodDescriptor) -> st.SearchStrategy[Call]:
    return _calls(m)
