"""Dimension `compression`: gzip, the one algorithm both libraries ship (grpcio also has deflate,
grpc-go only registers gzip: encoding/gzip), from the client (call compression), from the server
(its responses), from both, or neither; with drawn messages of every size the values dimension
draws, including ones gzip does not shrink (a sender may then send them uncompressed, which both
engines allow: docs/cases.md, "gzip from either side").

Not drawn, measured (grpcio 1.85, findings left for a known divergence or an engine fix): response
gzip on a method with a single response (unary, client_stream), where every grpc.aio server answer
was declared `grpc-encoding: identity` (to grpc-go and grpc.aio clients; the sync server's were gzip);
request gzip on a client stream, where grpcio's sync client declared identity in some calls (to the
Go and the Python server). Not drawn yet: deflate toward a peer that does not support it, and compression switched per message
(the case format has no key for either; both engines would need one).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import MethodDescriptor
from hypothesis import strategies as st

from harness.cases.model import Call
from harness.fuzz.dims.common import exchange


def sides(m: MethodDescriptor) -> tuple[str, ...]:
    """The sides that may compress on m (see above for what is left out)."""
    out = []
    if not m.client_streaming or m.server_streaming:
        out.append("request")
    if m.server_streaming:
        out.append("response")
    if len(out) == 2:
        out.append("both")
    return tuple(out)


def applies(m: MethodDescriptor) -> bool:
    return bool(sides(m))


@st.composite
def _calls(draw: Any, m: MethodDescriptor) -> Call:
    side = draw(st.sampled_from(sides(m)))
    kw: dict[str, Any] = {}
    if side in ("request", "both"):
        kw["compression"] = "gzip"
    if side in ("response", "both"):
        kw["server"] = {"compression": "gzip"}
    return draw(exchange(m, **kw))


def calls(m: MethodDescriptor) -> st.SearchStrategy[Call]:
    return _calls(m)
