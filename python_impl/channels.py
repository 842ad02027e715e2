"""A case's channel (docs/peer-contract.md, "Channels"): which server listener it connects to, and how
the client secures the connection: TLS roots, a client certificate, a server name override, a bearer
token sent through call credentials. Cases without one share the plaintext connection.

Both sides read it: the client opens the connection it describes (one per distinct channel, kept for
the run), and the generic server checks that what arrived is what the case says, so a client that
quietly used another connection fails. The certificate files are made by the harness
(harness/engines/certs.py) under the names below. A refused channel must be refused for its own
cause (`refusal`): the client's own verify error, or on mTLS the certificate it handed grpcio.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from python_impl import connection
from python_impl.contract import CHANNEL_OPTIONS

PLAINTEXT, TLS, MTLS = "plaintext", "tls", "mtls"
SECURE = (TLS, MTLS)
# plaintext, the TLS ones, and the connection-policy ones (python_impl/connection.py: keepalive, max_age, restart)
LISTENERS = (PLAINTEXT, *SECURE, *connection.LISTENERS)
CLIENT_CN = "interop-client"
OTHER_CLIENT_CN = "interop-other-client"  # other_client.pem, signed by other_ca.pem
# the certificate a client presents, by name, and the roots it trusts
CLIENT_CERTS = {"none": None, "client": ("client.pem", "client.key"),
                "other_client": ("other_client.pem", "other_client.key")}
TRUST = {"ca": "ca.pem", "other_ca": "other_ca.pem"}
# the DNS names of the server certificate (harness/engines/certs.py makes it; the Go engine's serverNames)
SERVER_NAMES = ("localhost", "peer.interop.test")
PRESENTED_CN = {"none": "", "client": CLIENT_CN, "other_client": OTHER_CLIENT_CN}
# isolated: a name; a case whose channel carries one gets a connection of its own (key() below), so
# a call that breaks its connection (grpcio refusing a grpc-status past 2^31-2) spoils no other case
KEYS = {"listener", "trust", "client_cert", "server_name", "token", "refused", "isolated", *connection.CLIENT_KEYS}


class ChannelError(ValueError):
    """A case's channel object is malformed; the message says which key and what is allowed."""


@dataclass(frozen=True)
class Channel:
    listener: str = PLAINTEXT
    trust: str = "ca"
    client_cert: str = "none"
    server_name: str | None = None
    token: str | None = None
    refused: bool = False
    keepalive: tuple[tuple[str, Any], ...] = ()  # grpc Core arguments of the keepalive keys

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> Channel | None:
        """The channel of a case's `channel` object (None: the shared plaintext connection)."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise ChannelError(f"channel is an object, not {raw!r}")
        if unknown := set(raw) - KEYS:
            raise ChannelError(f"unknown channel key(s) {sorted(unknown)}; allowed: {sorted(KEYS)}")
        listener = raw.get("listener", PLAINTEXT)
        if listener not in LISTENERS:
            raise ChannelError(f"channel.listener is one of {', '.join(LISTENERS)}, not {listener!r}")
        trust = raw.get("trust", "ca")
        cert = raw.get("client_cert", "client" if listener == MTLS else "none")
        if trust not in TRUST:
            raise ChannelError(f"channel.trust is one of {', '.join(TRUST)}, not {trust!r}")
        if cert not in CLIENT_CERTS:
            raise ChannelError(f"channel.client_cert is one of {', '.join(CLIENT_CERTS)}, not {cert!r}")
        if listener not in SECURE and ({"trust", "client_cert", "server_name"} & set(raw)):
            raise ChannelError("channel.trust, client_cert and server_name need a tls or mtls listener")
        for key in connection.CLIENT_KEYS:
            value = raw.get(key)
            if key in raw and (isinstance(value, bool) != key.endswith("_without_calls")
                               or not isinstance(value, int) or value < 0):
                kind = "true or false" if key.endswith("_without_calls") else "a number of milliseconds (0 or more)"
                raise ChannelError(f"channel.{key} is {kind}, not {value!r}")
        for key in ("server_name", "token", "isolated"):
            if raw.get(key) is not None and not (isinstance(raw[key], str) and raw[key]):
                raise ChannelError(f"channel.{key} is a non-empty string, not {raw[key]!r}")
        if not isinstance(raw.get("refused", False), bool):
            raise ChannelError(f"channel.refused is true or false, not {raw['refused']!r}")
        if raw.get("refused") and listener == PLAINTEXT and not raw.get("token"):
            raise ChannelError("channel.refused on the plaintext listener needs a token: nothing else refuses it")
        ch = cls(listener, trust, cert, raw.get("server_name"), raw.get("token"), raw.get("refused", False),
                 tuple(connection.client_options(raw)))
        if ch.refused and len(causes := ch.causes()) > 1:
            raise ChannelError(f"a refused channel has one cause, which its case proves (docs/peer-contract.md, "
                               f"\"Why a handshake was refused\"); this one has {len(causes)} causes: "
                               f"{'; '.join(causes)}. Keep one (which a library reports first is its own choice)")
        return ch

    @property
    def name_refused(self) -> bool:
        """The client asks for a name the server certificate lacks."""
        return self.server_name is not None and self.server_name not in SERVER_NAMES

    def causes(self) -> list[str]:
        """Why a handshake on this channel fails, each cause by itself."""
        out = []
        if self.trust == "other_ca":
            out.append("trust other_ca: the client refuses the server's authority")
        if self.secure and self.name_refused:
            out.append(f"server_name {self.server_name!r}: a name the server certificate lacks")
        if self.listener == MTLS and self.client_cert != "client":
            out.append(f"client_cert {self.client_cert} on mtls: the server refuses it")
        return out

    @property
    def secure(self) -> bool:
        return self.listener in SECURE

    def expected(self) -> dict[str, str]:
        """What the server must see of this connection (its `server.channel.*` checks)."""
        return {"transport": "tls" if self.secure else "insecure",
                "client_cn": CLIENT_CN if self.listener == MTLS and self.client_cert == "client" else "",
                "sni": self.server_name or ""}


def key(raw: dict[str, Any] | None) -> str:
    """One connection per distinct channel object: its canonical JSON."""
    return json.dumps(raw or {}, sort_keys=True)


def raw_of(case: Any) -> dict[str, Any] | None:
    """The `channel` object of a harness Case, a client-input case namespace, or a case dict."""
    return case.get("channel") if isinstance(case, dict) else getattr(case, "channel", None)


def of_case(case: Any) -> Channel | None:
    return Channel.of(raw_of(case))


# ---------------------------------------------------------------- client side

def credentials(ch: Channel, certs: Path) -> grpc.ChannelCredentials:
    return _credentials(ch, certs)[0]


def _credentials(ch: Channel, certs: Path) -> tuple[grpc.ChannelCredentials, str]:
    """The channel's credentials, and the common name of the certificate they hold ("": none)."""
    pair = CLIENT_CERTS[ch.client_cert]
    key_pem, cert_pem = ((certs / pair[1]).read_bytes(), (certs / pair[0]).read_bytes()) if pair else (None, None)
    return grpc.ssl_channel_credentials((certs / TRUST[ch.trust]).read_bytes(), key_pem, cert_pem), _common_name(cert_pem)


# The common name of the certificate each secure connection (grpc channel object) was handed to
# present ("": none). grpcio does not say what it sent in a handshake, so this is what a Python
# client can prove of its own side; kept per connection, so that what an earlier pool (another
# direction) handed for the same channel proves nothing of this one.
_handed: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def handed(connection: Any) -> str | None:
    """What this connection was handed (None: it was not made by Pool as a secure channel)."""
    return _handed.get(connection)


def _common_name(cert_pem: bytes | None) -> str:
    if cert_pem is None:
        return ""
    names = x509.load_pem_x509_certificate(cert_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else "<no common name>"


# grpc core's (BoringSSL's) words for the client's own refusals of the server (grpcio 1.85)
UNKNOWN_AUTHORITY = "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate"
NAME_MISMATCH = "Hostname Verification Check failed"
CLIENT_VERIFY_FAILED = ("CERTIFICATE_VERIFY_FAILED", NAME_MISMATCH)


def refusal(ch: Channel, message: str, handed: str | None) -> list[tuple[str, str, str]]:
    """Why a refused secure channel was refused, as this client can tell: (path, expected, got) for
    each difference from the cause its channel names. trust other_ca: the client refused the
    server's chain for its authority; a tls listener trusting ca, or a name the server certificate
    lacks: for the name; mtls: the client
    accepted the server's chain and handed grpcio exactly the certificate client_cert names (the
    server's side of it is checked by the harness: harness/run/handshakes.py)."""
    got = message or "(no status message)"
    if ch.trust == "other_ca":
        return [] if UNKNOWN_AUTHORITY in message else [
            ("channel.refusal", f"the client refuses the server's chain: {UNKNOWN_AUTHORITY!r}", got)]
    if ch.listener == TLS or ch.name_refused:
        return [] if NAME_MISMATCH in message else [
            ("channel.refusal", f"the client refuses the server's certificate for its name: {NAME_MISMATCH!r}", got)]
    out = []
    if any(t in message for t in CLIENT_VERIFY_FAILED):
        out.append(("channel.refusal", "the client accepts the server's chain (the server refuses the client)", got))
    want = PRESENTED_CN[ch.client_cert]
    if handed != want:
        shown = "nothing recorded: the connection was not made as this channel's" if handed is None else (
            f"{handed!r} handed to grpcio" if handed else "none handed to grpcio")
        out.append(("channel.client_cert", f"{want!r} handed to grpcio" if want else "none handed to grpcio", shown))
    return out


def options(ch: Channel | None, base: list[tuple[str, Any]] | None = None) -> list[tuple[str, Any]]:
    out = list(base if base is not None else CHANNEL_OPTIONS)
    if ch is not None and ch.server_name:
        out.append(("grpc.ssl_target_name_override", ch.server_name))
    return out + list(ch.keepalive if ch is not None else ())


def call_credentials(ch: Channel | None) -> grpc.CallCredentials | None:
    """The bearer token as the library's call credentials: grpcio sends it in `authorization`, and
    refuses to on a connection that is not secure."""
    return grpc.access_token_call_credentials(ch.token) if ch is not None and ch.token else None


class Pool:
    """The connections of one client run: the plaintext one, and one per distinct channel object.
    `targets` maps listener names to addresses; `certs` is the certificate folder."""

    def __init__(self, targets: dict[str, str], certs: Path | None, aio: bool = False,
                 base_options: list[tuple[str, Any]] | None = None) -> None:
        self.targets, self.certs, self.aio = targets, certs, aio
        # a subchannel pool per channel: grpc core would otherwise let two channels with the same
        # target and arguments share one connection, and a case's connection is its own
        self.base = [*(base_options if base_options is not None else CHANNEL_OPTIONS),
                     ("grpc.use_local_subchannel_pool", 1)]
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()  # the sync client's cases run on several threads

    def for_case(self, case: Any) -> Any:
        raw = raw_of(case)
        k = key(raw)
        with self._lock:
            if k not in self._open:
                self._open[k] = self._make(Channel.of(raw))
            return self._open[k]

    def _make(self, ch: Channel | None) -> Any:
        listener = ch.listener if ch is not None else PLAINTEXT
        target = self.targets.get(listener)
        if target is None:
            raise ChannelError(f"the server has no {listener} listener (it listens on: {', '.join(sorted(self.targets))})")
        mod = grpc.aio if self.aio else grpc
        if ch is None or not ch.secure:
            return mod.insecure_channel(target, options=options(ch, self.base))
        if self.certs is None:
            raise ChannelError(f"a {listener} channel needs the certificate folder; none was given")
        creds, cn = _credentials(ch, self.certs)
        connection = mod.secure_channel(target, creds, options=options(ch, self.base))
        _handed[connection] = cn
        return connection

    def close(self) -> None:
        with self._lock:
            for ch in self._open.values():
                ch.close()
            self._open.clear()

    async def close_aio(self) -> None:
        for ch in self._open.values():
            await ch.close()
        self._open.clear()


# ---------------------------------------------------------------- server side

def server_credentials(certs: Path, mutual: bool) -> grpc.ServerCredentials:
    """The server certificate; with `mutual`, a client certificate signed by the CA is required."""
    pair = [((certs / "server.key").read_bytes(), (certs / "server.pem").read_bytes())]
    if not mutual:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(pair, root_certificates=(certs / "ca.pem").read_bytes(),
                                       require_client_auth=True)


def _first(ctx: dict[str, list[bytes]], key: str) -> str:
    values = ctx.get(key) or []
    return values[0].decode("utf-8", "replace") if values else ""


def observed(context: Any) -> dict[str, str]:
    """What the server sees of a call's connection, from grpc core's auth context (the negotiated
    ALPN protocol is not in it: grpc core does not expose it)."""
    ctx = context.auth_context() or {}
    return {"transport": "tls" if _first(ctx, "transport_security_type") == "ssl" else "insecure",
            "client_cn": _first(ctx, "x509_common_name"), "sni": _first(ctx, "ssl_requested_server_name")}
