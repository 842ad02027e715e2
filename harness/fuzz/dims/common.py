"""What the protocol dimensions share: a plain exchange of drawn messages (the dimension then adds
its own part of the call), so a failure shrinks to the protocol detail and no message noise."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import MethodDescriptor
from hypothesis import strategies as st

from harness.cases.model import Call, streaming_mode
from harness.fuzz import strategies

MAX_MESSAGES = 3  # per direction of a stream: the dimension is the point, not the stream


@st.composite
def exchange(draw: Any, m: MethodDescriptor, responses: bool = True, min_responses: int = 0, **kw: Any) -> Call:
    """One call of m ending OK: drawn requests and responses (a stream: 0..MAX_MESSAGES; bidi
    ping-pong, one response per request). responses=False: the call ends in an error the caller
    puts in `expect`, with no response (server streams may still send some first)."""
    mode = streaming_mode(m)
    anys = strategies.known_types(m.containing_service.file)
    req = strategies.message_json(m.input_type, anys)
    resp = strategies.message_json(m.output_type, anys)
    requests = (draw(st.lists(req, min_size=min_responses if mode == "bidi" else 0, max_size=MAX_MESSAGES))
                if m.client_streaming else [draw(req)])
    if mode == "bidi":
        # an error with no response: half-duplex (ping-pong would wait for an answer to each request)
        kw.setdefault("bidi", "ping_pong" if responses else "half_duplex")
        answers = [draw(resp) for _ in requests] if responses else []
    elif m.server_streaming:
        answers = draw(st.lists(resp, min_size=min_responses, max_size=MAX_MESSAGES))
    else:
        answers = [draw(resp)] if responses else []
    expect = {"status": "OK", **kw.pop("expect", {}), "responses": answers}
    return Call(method=f"{m.containing_service.full_name}/{m.name}", streaming=mode,
                request_type=m.input_type.full_name, response_type=m.output_type.full_name,
                requests=requests, expect=expect, timeout_ms=kw.pop("timeout_ms", strategies.TIMEOUT_MS),
                checked_by_server=True, **kw)
