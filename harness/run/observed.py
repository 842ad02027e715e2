"""Checks made on the wire (harness/engines/wire.py) where the receiving grpcio peer cannot see:
the compression of requests a Python server receives and of responses a Python client receives.
The Go engine checks both itself, with the same paths and wording (`server.compression`,
`compression`), so a known divergence reads the same whichever side found it."""

from __future__ import annotations

from typing import Any

from harness.engines.wire import WireObserver
from python_impl.contract import Diff

PYTHON = ("py", "pyaio")


def observable(case: Any) -> bool:
    """On the plaintext listener: a TLS connection's frames cannot be read on the wire, so a case
    over TLS is checked by the Go side only (docs/peer-contract.md, "Channels")."""
    return (getattr(case, "channel", None) or {}).get("listener", "plaintext") == "plaintext"


def needs_observer(client: str, server: str, cases: list[Any]) -> bool:
    """Some call's compression can only be seen on the wire in this direction."""
    return any(_request_gzip(c) and server in PYTHON or _response_gzip(c) and client in PYTHON
               for case in cases if observable(case) for c in case.calls)


def _request_gzip(call: Any) -> bool:
    return call.compression == "gzip" and bool(call.requests)


def _response_gzip(call: Any) -> bool:
    return (call.server or {}).get("compression") == "gzip"


def compression_diffs(case: Any, client: str, server: str, observer: WireObserver) -> list[Diff]:
    diffs: list[Diff] = []
    if not observable(case):
        return diffs
    for i, call in enumerate(case.calls):
        checks = []
        if _request_gzip(call) and server in PYTHON:
            checks.append(("server.compression", "request"))
        if _response_gzip(call) and client in PYTHON:
            checks.append(("compression", "response"))
        seen = observer.call(case.name, i) if checks else None
        for path, side_name in checks:
            side = getattr(seen, side_name, None)
            if side is None or seen.broken:  # a parse failure is never read as "nothing to check"
                why = "; ".join(seen.broken if seen else observer.errors) or "the call never reached the wire"
                diffs.append(Diff(i, path, call_compression(call, side_name), f"<not observed: {why}>"))
            elif side_name == "response" and not side.flags:
                continue  # no response message was sent: nothing to compress (as the Go engine)
            elif side.compression != "gzip":
                compressed = sum(1 for f in side.flags if f)
                diffs.append(Diff(i, path, "gzip", f"{side.compression} (messages compressed: {compressed} of "
                                                    f"{len(side.flags)})"))
            elif side.uncompressed():
                bad = side.uncompressed()
                diffs.append(Diff(i, path, "gzip", uncompressed_text(len(bad), len(side.flags), bad[0],
                                                                     side.lengths[bad[0]])))
    return diffs


def uncompressed_text(bad: int, total: int, first: int, length: int) -> str:
    """A gzip call whose messages did not all arrive compressed (the Go engine writes the same)."""
    return (f"gzip declared, but {bad} of {total} messages sent uncompressed (compressed flag 0), first "
            f"message [{first}] of {length} bytes, which gzip shrinks")


def call_compression(call: Any, side: str) -> str:
    return call.compression if side == "request" else (call.server or {}).get("compression", "identity")
