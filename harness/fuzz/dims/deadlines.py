"""Dimension `deadlines`: the timeout a client sets and the grpc-timeout its library sends.

Drawn: no deadline (`no_deadline: true`: the client sets none, and none must arrive); timeouts from 2 s to 10 years, spread over every power of ten so each grpc-timeout unit an
encoder picks for 8 digits comes up (grpc-go: u up to 100 s, m up to 27.7 h, S up to 3.17 years, M
past it; grpcio its own), with any number of digits, and sub-millisecond parts. Every server
(Python sync and grpc.aio, Go) records the deadline the call arrived with and compares it with the
call's timeout (`server.check_deadline`): 500 ms of grace below, the rounding of grpc-timeout's 8
digits above (python_impl/plan.py deadline_ok; the Go engine's checkDeadline says the same). The
call ends OK at once, so the deadline never fires.

Not drawn yet: an already expired deadline (an expiring call ends DEADLINE_EXCEEDED before the server's answer could carry its
finding, and grpc-go's reset may turn it into CANCELLED: the `stream/deadline_exceeded` cases'
known divergence); timeouts under 2 s (a loaded machine may let them expire).
"""

from __future__ import annotations

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


@st.composite
def _calls(draw: Any, m: MethodDescriptor) -> Call:
    if draw(st.integers(0, 5)) == 5:  # one in six: no deadline at all (none must arrive)
        return draw(exchange(m, no_deadline=True, server={"check_deadline": True}))
    return draw(exchange(m, timeout_ms=draw(timeouts()), server={"check_deadline": True}))


def calls(m: MethodDescriptor) -> st.SearchStrategy[Call]:
    return _calls(m)
