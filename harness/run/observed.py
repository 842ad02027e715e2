"""Checks made on the wire (harness/engines/wire.py) where the receiving grpcio peer cannot see:
the compression of requests a Python server receives and of responses a Python client receives.
The Go engine checks both itself, with the same paths and wording (`server.compression`,
`compression`), so a known divergence reads the same whichever side found it.

Two more, for what a grpcio client hides (docs/limits.md): a call whose metadata gRPC forbids
must never reach the wire (`wire.request`), and a call whose server must not receive some keys
(`server.metadata` with no values) has the server's confirmation and findings read from the wire,
since a grpcio client given grpc-status as metadata loses the trailers that carry them."""

from __future__ import annotations

import re
from typing import Any

from harness.engines.wire import WireObserver
from python_impl.check import server_diffs
from python_impl.contract import CHECKED_TRAILER, Diff

PYTHON = ("py", "pyaio")


def observable(case: Any) -> bool:
    """On the plaintext listener: a TLS connection's frames cannot be read on the wire, so a case
    over TLS is checked by the Go side only (docs/peer-contract.md, "Channels")."""
    return (getattr(case, "channel", None) or {}).get("listener", "plaintext") == "plaintext"


def needs_observer(client: str, server: str, cases: list[Any]) -> bool:
    """Some call's compression, or what a Python client sent, can only be seen on the wire in this
    direction."""
    return any(_request_gzip(c) and server in PYTHON or _response_gzip(c) and client in PYTHON
               or client in PYTHON and (forbidden_metadata(c) or _unreceived_keys(c))
               for case in cases if observable(case) for c in case.calls)


# gRPC's metadata rules (PROTOCOL-HTTP2.md): a key is lowercase ASCII letters, digits, "-", "_" and
# ".", an ASCII value printable characters and spaces; both libraries refuse anything else unsent
_KEY = re.compile(r"[0-9a-z_.-]+")
_ASCII_VALUE = re.compile(r"[\x20-\x7e]*")


def forbidden_metadata(call: Any) -> list[str]:
    """The keys of the call's metadata that gRPC forbids a client to send (or whose value it does)."""
    return [k for k, values in (call.metadata or {}).items()
            if not _KEY.fullmatch(k) or not k.endswith("-bin") and not all(_ASCII_VALUE.fullmatch(v) for v in values)]


def _unreceived_keys(call: Any) -> list[str]:
    """server.metadata keys with no values: the server must not receive them as metadata."""
    return [k for k, v in ((call.server or {}).get("metadata") or {}).items() if v == []]


def wire_diffs(case: Any, client: str, server: str, observer: WireObserver, already: list[Diff]) -> list[Diff]:
    """Every check on the wire of a case's calls: compression, then what a Python client sent.
    Server findings read on the wire that the client already reported are not repeated."""
    diffs = compression_diffs(case, client, server, observer)
    if client not in PYTHON or not observable(case):
        return diffs
    for i, call in enumerate(case.calls):
        seen = observer.call(case.name, i)
        if keys := forbidden_metadata(call):
            if observer.errors:  # a call on a connection the observer could not parse is not recorded
                diffs.append(Diff(i, "wire.request", "nothing sent", f"<not observed: {'; '.join(observer.errors)}>"))
            elif seen is not None:
                diffs.append(Diff(i, "wire.request", f"nothing sent (metadata gRPC forbids: {', '.join(keys)})",
                                  "a call on the wire"))
        if _unreceived_keys(call):
            if seen is None or seen.broken:
                why = "; ".join(seen.broken if seen else observer.errors) or "the call never reached the wire"
                diffs.append(Diff(i, "wire.server.checked", "present", f"<not observed: {why}>"))
                continue
            if not any(k == CHECKED_TRAILER for k, _ in seen.harness_trailers):
                diffs.append(Diff(i, "wire.server.checked", "present", "missing"))
            diffs += [d for d in server_diffs(seen.harness_trailers, i) if d not in already]
    return diffs


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
