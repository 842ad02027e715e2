"""Dimension `deadlines`: the timeout a client sets and the grpc-timeout its library sends.

Drawn: no deadline (`no_deadline: true`: the client sets none, and none must arrive); timeouts from 2 s to 10 years, spread over every power of ten so each grpc-timeout unit an
encoder picks for 8 digits comes up (grpc-go: u up to 100 s, m up to 27.7 h, S up to 3.17 years, M
past it; grpcio its own), with any number of digits, and sub-millisecond parts. Every server
(Python sync and grpc.aio, Go) records the deadline the call arrived with and compares it with the
call's timeout (`server.check_deadline`): 500 ms of grace below, the rounding of grpc-timeout's 8
digits above (python_impl/plan.py deadline_ok; the Go engine's checkDeadline says the same). The
call ends OK at once, so the deadline never fires.

Also drawn: deadlines that expire at once (1 ns to 10 µs, tag `expired`): the client must end
DEADLINE_EXCEEDED by itself, the server answering OK only 3 s later; and so do deadlines from 10 µs
to 2 s (tag `in_flight`: the request may reach the server, whose own deadline fires). Not drawn:
timeouts from 10 µs to 2 s on a call that must end OK (a loaded machine may let them expire).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from google.protobuf.descriptor import MethodDescriptor
from hypothesis import strategies as st

from harness.cases.model import Call
from harness.fuzz.dims.common import exchange

MIN_MS = 2_000
MAX_MS = 10 * 365 * 24 * 3600 * 1000  # 10 years: past grpc-go's S unit (99 999 999 s)


@st.composite
def timeouts(draw: Any) -> float:
    """A timeout in ms: an order of magnitude first (each unit's range comes up), then digits, then
    maybe a fraction of a millisecond."""
    exponent = draw(st.integers(3, 11))
    whole = draw(st.integers(max(MIN_MS, 10**exponent), min(MAX_MS, 10**(exponent + 1))))
    fraction = draw(st.sampled_from([0, 0, 0.5, 0.001, 0.999]))
    return whole + fraction if fraction else whole


# a nanosecond to 10 µs: gone before any answer. Not longer: both clients' status.elapsed check (a
# call ending for its deadline before 90% of it) would then race the server's own deadline, which a
# Go client saw end a 1 ms call after 0.8 ms (the server's timer, on its clock)
EXPIRED_MS = (0.000001, 0.001, 0.01)
LATE = 3000  # ms the server waits before answering OK with data: a client that misses its deadline fails
IN_FLIGHT_MS = (0.01, MIN_MS - 1)  # past EXPIRED_MS, up to the timeouts that end OK


@st.composite
def in_flight(draw: Any) -> float:
    """A timeout from 10 µs to just under 2 s: an order of magnitude first (each comes up), then a
    value in it. It passes LATE - 1 s before the server answers."""
    exponent = draw(st.integers(-2, 3))
    low, high = max(IN_FLIGHT_MS[0], 10.0**exponent), min(IN_FLIGHT_MS[1], 10.0**(exponent + 1))
    return round(draw(st.floats(low, high)), 3) or IN_FLIGHT_MS[0]


@st.composite
def _calls(draw: Any, m: MethodDescriptor) -> Call:
    kind = draw(st.integers(0, 9))
    if kind == 9:  # one in ten: no deadline at all (none must arrive)
        return draw(exchange(m, no_deadline=True, server={"check_deadline": True}))
    if kind in (7, 8):  # one in ten: a deadline that expires at once; one in ten: one that expires in
        # flight (10 µs to 2 s, every order of magnitude). The client must end DEADLINE_EXCEEDED
        # itself (the server answers OK 3 s late, after any such deadline: no race with an answer);
        # what the server saw cannot come back in its trailers
        timeout = draw(st.sampled_from(EXPIRED_MS) if kind == 8 else in_flight())
        call = draw(exchange(m, timeout_ms=timeout))
        late = {"delay_ms": LATE, "status": "OK", "responses": call.expect["responses"]}
        return replace(call, expect={"status": "DEADLINE_EXCEEDED", "responses": []}, server=late,
                       bidi="half_duplex" if call.streaming == "bidi" else call.bidi)
    return draw(exchange(m, timeout_ms=draw(timeouts()), server={"check_deadline": True}))


def tag(call: Call) -> str:
    """An expiring call is named (`…/fuzz/deadlines/expired/…`), so a known divergence can match it
    alone (as `stream/deadline_exceeded` has one for grpc-go's reset at a 100 ms deadline; none was
    seen at these deadlines, which pass before the request is sent)."""
    if call.expect.get("status") != "DEADLINE_EXCEEDED":
        return ""
    return "expired" if call.timeout_ms <= EXPIRED_MS[-1] else "in_flight"


def calls(m: MethodDescriptor) -> st.SearchStrategy[Call]:
    return _calls(m)
