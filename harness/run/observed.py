"""Checks made on the wire (harness/engines/wire.py) where the receiving grpcio peer cannot see:
the compression of requests a Python server receives and of responses a Python client receives.
The Go engine checks both itself, with the same paths and wording (`server.compression`,
`compression`), so a known divergence reads the same whichever side found it.

Two more, for what a grpcio client hides (docs/limits.md): a call whose metadata gRPC forbids
must never reach the wire (`wire.request`), and a call whose server must not receive some keys
(`server.metadata` with no values) has the server's answer read from the wire: its confirmation,
findings and status, and the number of responses it sent, since a grpcio client given grpc-status
as metadata loses the response (a known divergence that must excuse nothing else)."""

from __future__ import annotations

from typing import Any

import grpc

from harness.cases.onwire import code_past_16, forbidden_metadata, read_by_python_client, unreceived_keys
from harness.engines.wire import WireObserver
from python_impl.check import sent_status_diffs, server_diffs
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
               or client in PYTHON and read_by_python_client(c)
               for case in cases if observable(case) for c in case.calls)


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
        if (number := code_past_16(call)) is not None:
            # grpcio's clients read any number past 16 as UNKNOWN: the wire shows the one that came
            if seen is None or seen.broken:
                why = "; ".join(seen.broken if seen else observer.errors) or "the call never reached the wire"
                diffs.append(Diff(i, "wire.status.code", str(number), f"<not observed: {why}>"))
            elif seen.status != str(number):
                diffs.append(Diff(i, "wire.status.code", str(number), _named(seen.status)))
        if unreceived_keys(call):
            if seen is None or seen.broken:
                why = "; ".join(seen.broken if seen else observer.errors) or "the call never reached the wire"
                diffs.append(Diff(i, "wire.server.checked", "present", f"<not observed: {why}>"))
                continue
            if not any(k == CHECKED_TRAILER for k, _ in seen.harness_trailers):
                diffs.append(Diff(i, "wire.server.checked", "present", "missing"))
            else:  # "the server answered": as the case tells it, status and responses
                diffs += sent_status_diffs(call, seen.harness_trailers, i, "wire.server.status")
            want = len((call.server or {}).get("responses", call.expect.get("responses")) or [])
            if call.expect.get("responses") is not None and len(seen.response.flags) != want:
                # (not "responses.count": the divergence that excuses the lost response names that)
                sent = len(seen.response.flags)
                diffs.append(Diff(i, "wire.server.responses", f"{want} messages", f"{sent} messages"))
            diffs += [d for d in server_diffs(seen.harness_trailers, i) if d not in already]
    return diffs


def _named(raw: str | None) -> str:
    """A grpc-status from the wire with its name, "2 (UNKNOWN)": a divergence that names the code
    matches it whole, never a longer number that starts alike."""
    if raw is None:
        return "missing"
    by_number = {c.value[0]: c.name for c in grpc.StatusCode}
    return f"{raw} ({by_number.get(int(raw), f'CODE_{raw}') if raw.isdigit() else 'not a number'})"


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
