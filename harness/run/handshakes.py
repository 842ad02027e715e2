"""The server's end of a refused channel (docs/peer-contract.md, "Channels: why a handshake was
refused"). A refused case ends UNAVAILABLE whatever refused it; its client proves its own end (the
engines' `channel.refusal` and `channel.client_cert`), and here the Go server's TLS listeners say
what they saw: the certificate offered and why they refused it, or the alert with which the client
aborted. Their records are taken with a call carrying `interop-tls-refusals`, before a direction's
cases (what earlier directions left) and after them; the refusing cases run in a lane of their own,
one direction at a time per server (runner.lane, EXCLUSIVE), so no other direction takes or clears
their records. Other lanes of the server run meanwhile (their TLS handshakes complete and leave no
record; one that did would still have to match a case's listener, SNI and cause to count for it).

A grpcio server keeps no such record a harness can read: grpc core refuses in its handshaker and
writes the reason to its own log only, so over a Python server the clients' checks stand alone."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from grpc_health.v1 import health_pb2, health_pb2_grpc

from python_impl import channels
from python_impl.contract import CHANNEL_OPTIONS, Diff, Result

KEY = "interop-tls-refusals"
# What the server sees of a client refusing its chain for its authority, by client library
# (measured, grpc-go 1.85 and grpcio 1.85): grpc-go aborts with a bad_certificate alert (for every
# verify error), grpc core closes the connection without an alert.
CLIENT_REFUSES = {"go": {"cause": "client_alert", "alert": "bad certificate"},
                  "py": {"cause": "client_closed"}, "pyaio": {"cause": "client_closed"}}
UNTRUSTED_FILE = "other_client.pem"  # harness/engines/certs.py: the client certificate no server trusts
# what to read next: the server logs each refused handshake; what each case needs and why
HINT = (" (the server peer's log has a [tls] line for each handshake it refused; what each refused case "
        "needs: docs/peer-contract.md, \"Why a handshake was refused\")")
# how long the records of the last refused handshakes may take to arrive after the client's results
SETTLE_S = 2.0


def expected(case: Any, client: str, certs: Path | None) -> dict[str, Any] | None:
    """The record a Go server must have made of a refused case's handshake (None: nothing to check:
    not a refused TLS case, or one whose refusal a server need not see: grpc core checks the
    server's name after its handshake, so a name mismatch may end a completed one).

    Every record names the ClientHello's SNI, which is the case's own channel's (its server_name;
    none for the IP address the harness dials): a record another refused case of the direction left
    on the same listener (grpc-go refuses a wrong authority and a wrong name with the same alert),
    or a connection that hung up before any ClientHello, is not this case's."""
    ch = channels.of_case(case)
    if ch is None or not ch.refused or not ch.secure:
        return None
    own = {"listener": ch.listener, "client_hello": True, "sni": ch.server_name or ""}
    if ch.trust == "other_ca":
        return {**own, **CLIENT_REFUSES[client]}
    if ch.name_refused and client == "go":  # grpc-go checks the name in its handshake
        return {**own, **CLIENT_REFUSES[client]}
    if ch.listener != channels.MTLS or ch.client_cert == "client":
        return None
    if ch.client_cert == "none":
        return {**own, "cause": "no_certificate"}
    want = {**own, "cause": "unknown_authority", "client_cn": channels.OTHER_CLIENT_CN}
    if certs is not None:  # the very certificate the session made, not any with its name
        pem = (certs / UNTRUSTED_FILE).read_bytes()
        der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
        want["client_sha256"] = hashlib.sha256(der).hexdigest()
    return want


def applies(server: str, cases: list[Any]) -> bool:
    return server == "go" and any(expected(c, "go", None) for c in cases)


class NotTaken(Exception):
    """The server's records could not be read; the message says why."""


def take(address: str) -> list[dict[str, Any]] | None:
    """The refused handshakes the server at address recorded since the last take (it then forgets
    them); None when it sent no record at all (a server that keeps none)."""
    try:
        with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as ch:
            _, call = health_pb2_grpc.HealthStub(ch).Check.with_call(
                health_pb2.HealthCheckRequest(), metadata=[(KEY, "take")], timeout=10)
        values = [v for k, v in call.trailing_metadata() or () if k == KEY]
        return json.loads(values[0]) if values else None
    except grpc.RpcError as e:
        raise NotTaken(f"asking {address} for its refused handshakes: {e.code().name} {e.details()}") from None
    except ValueError as e:
        raise NotTaken(f"the {KEY} trailer of {address} is not JSON: {e}") from None


def clear(address: str) -> None:
    """Forget what earlier directions left; a server that cannot say is reported by judge."""
    try:
        take(address)
    except NotTaken:
        pass


def describe(record: dict[str, Any]) -> str:
    parts = [record.get("cause", "?")]
    if record.get("alert"):
        parts.append(repr(record["alert"]))
    if record.get("client_cn"):
        parts.append(f"client certificate {record['client_cn']!r}")
    if record.get("client_sha256"):
        parts.append(f"sha256 {record['client_sha256'][:16]}…")
    text = f"{record.get('listener', '?')}: " + " ".join(parts)
    if record.get("client_hello") is False:
        return text + ", before any ClientHello"
    if "sni" in record:
        return text + (f", SNI {record['sni']!r}" if record["sni"] else ", no SNI")
    return text


def _matches(want: dict[str, Any], record: dict[str, Any]) -> bool:
    return all(record.get(k) == v for k, v in want.items())


def judge(results: list[Result], cases: list[Any], client: str, address: str, certs: Path | None) -> None:
    """Add a `server.handshake` diff to each refused case whose own refusal the server did not record.
    Waits (at most SETTLE_S) for records still on their way."""
    wants = {c.name: w for c in cases if (w := expected(c, client, certs)) is not None}
    if not wants:
        return
    records: list[dict[str, Any]] = []
    heard, problem = False, "the server sent no interop-tls-refusals trailer"
    deadline = time.monotonic() + SETTLE_S
    while True:
        try:
            got = take(address)
        except NotTaken as e:
            got, problem = None, str(e)
        heard = heard or got is not None
        records += got or []
        missing = [n for n, w in wants.items() if not any(_matches(w, r) for r in records)]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for r in results:
        if r.case not in missing:
            continue
        want = wants[r.case]
        counts: Counter[str] = Counter()  # a refused channel's client retries: the same refusal again
        for x in records:
            if x.get("listener") == want["listener"]:
                counts[describe(x)] += x.get("count", 1)
        seen = [text if n == 1 else f"{text} (×{n})" for text, n in counts.items()]
        got_text = (f"<not observed: {problem}>" if not heard
                    else "; ".join(seen) or f"no refused handshake on the {want['listener']} listener")
        r.diffs.append(Diff(0, "server.handshake", "a refused handshake, " + describe(want), got_text + HINT))
        if r.verdict == "pass":
            r.verdict = "fail"
