"""Cases over TLS and mTLS (docs/peer-contract.md, "Channels"), derived from the catalogue so that they
hold for ANY proto set.

Two kinds:
- the channel cases: one call of an anchor case (the first value case of a unary method) made over
  each secure setup and each way a secure connection must fail (wrong CA, no or untrusted client
  certificate, a server name the certificate lacks, a bearer token refused or sent on plaintext);
- passes: catalogue cases again over `tls` or `mtls`, the same calls and expectations. `--channel`
  says which: by default one value case per method over TLS, `tls` / `mtls` / `all` every case.

Names put the channel right after the method, so `-k tls` selects them all (mtls contains tls):
`<service>/<method>/tls/<pattern>`, `<service>/<method>/mtls/<pattern>`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.cases import onwire
from harness.cases.model import Call, Case, CaseError
from python_impl.channels import MTLS, PLAINTEXT, TLS
from python_impl.plan import TOKEN_REQUIRED

SOURCE = "channels: TLS, mTLS and call credentials (harness/cases/channels.py)"
MODES = ("default", "plaintext", "tls", "mtls", "all")
TOKEN = "interop-bearer-token"
OVERRIDE = "peer.interop.test"        # a SAN of the server certificate (harness/engines/certs.py)
NOT_IN_CERT = "other.interop.test"    # a name the server certificate does not carry
CONTROL = {TLS: "server_only", MTLS: "mutual"}  # each listener's passing case


def generate(catalogue: list[Case], mode: str = "default") -> list[Case]:
    """The channel cases and passes for `mode` (MODES), from the catalogue's cases (those a generic
    server answers). `plaintext`: none at all."""
    if mode not in MODES:
        raise ValueError(f"--channel is one of {', '.join(MODES)}, not {mode!r}")
    if mode == "plaintext":
        return []
    eligible = [c for c in catalogue if _clonable(c)]
    anchor = _anchor(eligible)
    out = channel_cases(anchor) if anchor is not None else []
    if mode == "default":
        out += [over(c, TLS) for c in one_per_method(eligible)]
    if mode in ("tls", "all"):
        out += [over(c, TLS) for c in eligible]
    if mode in ("mtls", "all"):
        out += [over(c, MTLS) for c in eligible]
    names = {c.name for c in catalogue}
    if clash := sorted(names & {c.name for c in out}):
        raise CaseError(f"case names clash with the channel cases ({SOURCE}): {clash[:5]}; rename them")
    return out


def _clonable(case: Case) -> bool:
    """A case a generic server answers and checks in full, on the shared plaintext connection. Not
    the compression cases, nor any other a Python peer checks on the wire (harness/cases/onwire.py):
    TLS hides the wire, so over TLS they would check less and could pass where the plaintext case
    is a known divergence."""
    return case.channel is None and all(c.checked_by_server and not c.raw and c.compression is None
                                        and not (c.server or {}).get("compression")
                                        and not onwire.read_by_python_client(c) for c in case.calls)


def _anchor(cases: list[Case]) -> Case | None:
    """The first value case (`…/typical`) of a unary method, else of any method, else any case."""
    typical = [c for c in cases if c.name.endswith("/typical")]
    for pool in ([c for c in typical if c.calls[0].streaming == "unary"], typical,
                 [c for c in cases if c.calls[0].streaming == "unary"], cases):
        if pool:
            return pool[0]
    return None


def one_per_method(cases: list[Case]) -> list[Case]:
    """One value case per method: its `…/typical` case, else its first case."""
    chosen: dict[str, Case] = {}
    for c in cases:
        if c.method not in chosen or (c.name.endswith("/typical") and not chosen[c.method].name.endswith("/typical")):
            chosen[c.method] = c
    return list(chosen.values())


def _renamed(case: Case, mode: str, pattern: str | None = None) -> str:
    """`<service>/<method>/<mode>/<pattern>`: the case's own pattern, or the one given."""
    service, method, rest = case.name.split("/", 2)
    return f"{service}/{method}/{mode}/{pattern or rest}"


def over(case: Case, listener: str) -> Case:
    """The same case on a secure listener."""
    return replace(case, name=_renamed(case, listener), channel={"listener": listener})


def _failing(call: Call, status: str, message: str | None = None, server: dict[str, Any] | None = None) -> Call:
    """The call, expected to end with `status` and no response (nothing else is compared)."""
    expect: dict[str, Any] = {"status": status, "responses": []}
    if message is not None:
        expect["message"] = message
    return replace(call, expect=expect, server=server if server is not None else {})


def channel_cases(anchor: Case) -> list[Case]:
    """The anchor's first call over every secure setup and every way one must fail."""
    call = anchor.calls[0]

    def case(mode: str, pattern: str, channel: dict[str, Any], c: Call = call) -> Case:
        # a refused connection proves nothing alone (a listener that is not there refuses too): the
        # same listener's passing case runs with it
        control = None
        if channel.get("refused"):
            listener = channel["listener"]
            control = anchor.name if listener == PLAINTEXT else _renamed(anchor, listener, CONTROL[listener])
        return replace(anchor, name=_renamed(anchor, mode, pattern), calls=[c], channel=channel, source=SOURCE,
                       control=control)

    refused = _failing(call, "UNAVAILABLE")
    wrong = "not-the-" + TOKEN

    def sends(token: str) -> dict[str, list[str]]:
        """What the server must receive: the call's metadata and the token, so a client that sends
        none (or another) fails on the server's metadata check even where the server's token
        check is broken."""
        return {**call.metadata, "authorization": [f"Bearer {token}"]}

    token_call = replace(call, server={**call.server, "require_token": TOKEN, "metadata": sends(TOKEN)})
    # server.status OK: a server that does not enforce the token answers OK, which the expected
    # UNAUTHENTICATED refutes; only the token check itself answers UNAUTHENTICATED
    rejected = _failing(call, "UNAUTHENTICATED", TOKEN_REQUIRED,
                        {"require_token": TOKEN, "metadata": sends(wrong), "status": "OK"})
    return [
        case(TLS, "server_only", {"listener": TLS}),
        # ALPN: the Go client and server check h2 on every TLS call; grpc core refuses anything else
        case(TLS, "alpn_h2", {"listener": TLS, "server_name": "localhost"}),
        case(MTLS, "mutual", {"listener": MTLS}),
        case(TLS, "wrong_ca", {"listener": TLS, "trust": "other_ca", "refused": True}, refused),
        case(MTLS, "no_client_cert", {"listener": MTLS, "client_cert": "none", "refused": True}, refused),
        case(MTLS, "untrusted_client_cert", {"listener": MTLS, "client_cert": "other_client", "refused": True},
             refused),
        case(TLS, "server_name_override", {"listener": TLS, "server_name": OVERRIDE}),
        case(TLS, "server_name_mismatch", {"listener": TLS, "server_name": NOT_IN_CERT, "refused": True}, refused),
        case(TLS, "bearer_token", {"listener": TLS, "token": TOKEN}, token_call),
        case(MTLS, "bearer_token", {"listener": MTLS, "token": TOKEN}, token_call),
        case(TLS, "bearer_token_rejected", {"listener": TLS, "token": wrong}, rejected),
        # both libraries refuse to send call credentials on a connection that is not secure
        case(TLS, "token_needs_tls", {"listener": PLAINTEXT, "token": TOKEN, "refused": True},
             _failing(call, "UNAUTHENTICATED")),
    ]
