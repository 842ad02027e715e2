"""Dimension `compression`: gzip, the one algorithm both libraries ship (grpcio also has deflate,
grpc-go only registers gzip: encoding/gzip), from the client (call compression), from the server
(its responses), from both, or neither; with drawn messages of every size the values dimension
draws, including ones gzip does not shrink (a sender may then send them uncompressed, which both
engines allow: docs/cases.md, "gzip from either side").

Not drawn, measured (grpcio 1.85, findings left for a known divergence or an engine fix): response
gzip on a method with a single response (unary, client_stream), where every grpc.aio server answer
was declared `grpc-encoding: identity` (to grpc-go and grpc.aio clients; the sync server's were gzip);
request gzip on a client stream, where grpcio's sync client declared identity in some calls (to the
Go and the Python server). Not drawn yet: compression switched per message (the case format has no
key; both engines would need one).

Also drawn: a client's deflate (call key `compression: deflate`, tag deflate) where request gzip is:
a grpcio server takes it; grpc-go's server answers UNIMPLEMENTED "grpc: Decompressor is not
installed for grpc-encoding "deflate"" and grpc-go's client fails the call itself, INTERNAL
"grpc: Compressor is not installed …" (grpc-go registers gzip only): measured known divergences.
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
        # one request side in four: deflate, which grpcio ships and grpc-go does not (tag deflate)
        kw["compression"] = "deflate" if draw(st.integers(0, 3)) == 3 else "gzip"
    if side in ("response", "both"):
        kw["server"] = {"compression": "gzip"}
    return draw(exchange(m, **kw))


def tag(call: Call) -> str:
    """A deflate request is named (`…/fuzz/compression/deflate/…`): grpc-go's server answers it
    UNIMPLEMENTED and its client cannot send it, the known divergences that match it."""
    return "deflate" if call.compression == "deflate" else ""


def calls(m: MethodDescriptor) -> st.SearchStrategy[Call]:
    return _calls(m)
