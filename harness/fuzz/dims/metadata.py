"""Dimension `metadata`: custom metadata in requests, response headers and trailers.

Drawn: keys of any length made of every character gRPC allows in a key (a-z 0-9 - _ .), `-bin`
keys with values of any bytes (the empty value included), ASCII values of every printable
character (spaces inside and at the ends, the empty value), a key repeated with values whose order
must hold, a key under the `grpc-` prefix that gRPC does not use itself. The whole of each block
stays under grpcio's soft metadata limit (8 KiB, with room for the call's own headers).

Not drawn, on purpose (each is a fixed protocol case whose library differences are measured known
divergences, docs/limits.md): sizes past the soft limit (grpcio refuses them at random between 8 and
16 KiB), uppercase keys and non-ASCII values (both clients refuse them, each its own way), the
`grpc-` keys gRPC uses itself, and the HTTP/2 and gRPC headers a library writes itself
(content-type, te, user-agent, :authority …).

Headers on a call with no response (a server stream with none, a bidi with no request) are drawn,
tag `trailers_only` (see tag()).
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.descriptor import MethodDescriptor
from hypothesis import assume, strategies as st

from harness.cases.generate import GRPCIO_METADATA_SOFT_LIMIT
from harness.cases.model import Call
from harness.fuzz.dims.common import exchange

# room for what travels with the custom metadata in the same header block: :path, :authority,
# content-type, te, user-agent, grpc-timeout, the interop-* keys, grpc-status and its message
BLOCK_BUDGET = GRPCIO_METADATA_SOFT_LIMIT - 1536
KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_."
# headers that are the transport's or the library's own, never custom metadata (RFC 9113 8.2.2,
# the gRPC over HTTP/2 spec); the interop- prefix is the harness's
RESERVED = ("content-type", "te", "user-agent", "host", "connection", "keep-alive", "proxy-connection",
            "transfer-encoding", "upgrade", "content-length", "content-encoding", "accept-encoding")
EDGE_VALUES = ("", " ", " lead", "trail ", "a  b", "%", "%41", "~!\"#$%&'()*+,/:;<=>?@[\\]^`{|}")


def _key_ok(key: str) -> bool:
    return (key not in RESERVED and not key.startswith(("grpc-", "interop-"))
            or key.startswith("grpc-x-fuzz"))


keys = st.one_of(
    st.text(KEY_CHARS, min_size=1, max_size=24),
    st.text(KEY_CHARS, min_size=200, max_size=600),     # long keys
    st.sampled_from(["grpc-x-fuzz", "grpc-x-fuzz-bin", "x", "x-bin", "a.b_c-d"]),
).filter(_key_ok)
ascii_values = st.one_of(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40),
                         st.sampled_from(EDGE_VALUES),
                         st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), min_size=500,
                                 max_size=3000))
binary_values = st.one_of(st.binary(max_size=40), st.sampled_from([b"", b"\x00", bytes(range(256))]),
                          st.binary(min_size=500, max_size=2000)).map(lambda b: base64.b64encode(b).decode())


@st.composite
def block(draw: Any) -> dict[str, list[str]]:
    """One block of custom metadata: 1-6 keys, each with 1-4 values (repeated keys keep their order)."""
    out: dict[str, list[str]] = {}
    for key in draw(st.lists(keys, min_size=1, max_size=6, unique=True)):
        values = binary_values if key.endswith("-bin") else ascii_values
        out[key] = draw(st.lists(values, min_size=1, max_size=4))
    assume(size(out) <= BLOCK_BUDGET)
    return out


def size(md: dict[str, list[str]]) -> int:
    """Bytes of md as HPACK counts them against the limit: name + value + 32 per field (binary
    values as sent, base64 without padding)."""
    total = 0
    for key, values in md.items():
        for v in values:
            wire = len(v.rstrip("=")) if key.endswith("-bin") else len(v)
            total += len(key) + wire + 32
    return total


@st.composite
def _calls(draw: Any, m: MethodDescriptor) -> Call:
    empty: dict[str, list[str]] = {}
    # each block present or not (absent shrinks first): the failure keeps only the block it needs
    request, headers, trailers = (draw(st.one_of(st.just(empty), block())) for _ in range(3))
    kw: dict[str, Any] = {"metadata": request}
    expect: dict[str, Any] = {}
    if headers:
        expect["headers"] = headers
    if trailers:
        expect["trailers"] = trailers
    call = draw(exchange(m, expect=expect, **kw))
    if headers and not call.expect["responses"] and trailers:
        # Trailers-Only (tag trailers_only: headers on a call with no response; its known divergence
        # excuses a header that never arrived, so no trailer is expected there that it could hide)
        call.expect.pop("trailers")  # (a fresh dict: the server sends what expect says)
    return call


def tag(call: Call) -> str:
    """Headers on a call with no response are named (`…/fuzz/metadata/trailers_only/…`): a grpc-go
    server sends them in a Trailers-Only response, and grpc.aio's client often reports no headers
    then (from a grpc.aio server too, less often; grpcio 1.85, measured; the sync client and
    grpc-go always report them: an intermittent known divergence)."""
    return "trailers_only" if call.expect.get("headers") and not call.expect["responses"] else ""


def calls(m: MethodDescriptor) -> st.SearchStrategy[Call]:
    return _calls(m)
