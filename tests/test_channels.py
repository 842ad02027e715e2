"""TLS, mTLS and call credentials on the Python side (docs/peer-contract.md, "Channels"): the
certificates, the case data, the channel cases, and the Python server's checks of what arrived,
in-process against both client flavours. The cross-language runs are in tests/test_interop.py."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import grpc
import pytest
from cryptography import x509

from harness.cases import channels as channel_cases
from harness.cases.model import Call, Case, CaseError, load_file
from harness.engines import certs
from harness.run import observed
from python_impl import channels
from python_impl.client import run_case, run_case_aio
from python_impl.contract import Result
from python_impl.server import AioServer, serve_all

H = "tutorial.HelloService"


def hello(expect: dict[str, Any] | None = None, **kw: Any) -> Call:
    return Call(method=f"{H}/SayHello", streaming="unary", request_type="tutorial.HelloRequest",
                response_type="tutorial.HelloResponse", requests=[{"greeting": "over tls"}],
                expect={"status": "OK", "responses": [{"reply": "secure"}], **(expect or {})}, timeout_ms=5000,
                checked_by_server=True, **kw)


ANCHOR = Case(name=f"{H}/SayHello/HelloRequest/typical", calls=[hello()], source="tests/test_channels.py")
CATALOGUE = channel_cases.channel_cases(ANCHOR) + [channel_cases.over(ANCHOR, "mtls"), ANCHOR]
BY_NAME = {c.name: c for c in CATALOGUE}


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return certs.make(tmp_path_factory.mktemp("certs") / "certs")


@pytest.fixture(scope="module", params=["sync", "aio"])
def listening(request: pytest.FixtureRequest, seed_gen: ModuleType, cert_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A Python server of each flavour with the three listeners, serving CATALOGUE."""
    secure = {"tls": "127.0.0.1:0", "mtls": "127.0.0.1:0"}
    if request.param == "sync":
        server, ports = serve_all(seed_gen, {"plaintext": "127.0.0.1:0", **secure}, CATALOGUE, cert_dir)
        yield "sync", {k: f"127.0.0.1:{p}" for k, p in ports.items()}
        server.stop(0).wait(5)
    else:
        handle = AioServer()
        handle.start(seed_gen, "127.0.0.1:0", CATALOGUE, secure, cert_dir)
        yield "aio", {k: f"127.0.0.1:{p}" for k, p in handle.ports.items()}
        handle.stop(0)


def run(seed_gen: ModuleType, targets: dict[str, str], cert_dir: Path, case: Case, aio: bool,
        connect_as: Case | None = None) -> Result:
    """Run case on the connection `connect_as` describes (default: its own)."""
    if not aio:
        pool = channels.Pool(targets, cert_dir)
        try:
            return run_case(pool.for_case(connect_as or case), seed_gen, case, "py→py", "test")
        finally:
            pool.close()

    async def go() -> Result:
        pool = channels.Pool(targets, cert_dir, aio=True)
        try:
            return await run_case_aio(pool.for_case(connect_as or case), seed_gen, case, "pyaio→pyaio", "test")
        finally:
            await pool.close_aio()
    return asyncio.run(go())


# ---------------------------------------------------------------- certificates

def test_certificates_chain_to_their_authorities(cert_dir: Path) -> None:
    load = lambda name: x509.load_pem_x509_certificate((cert_dir / name).read_bytes())  # noqa: E731
    ca, other = load("ca.pem"), load("other_ca.pem")
    server, client, other_client = load("server.pem"), load("client.pem"), load("other_client.pem")
    server.verify_directly_issued_by(ca)
    client.verify_directly_issued_by(ca)
    other_client.verify_directly_issued_by(other)
    with pytest.raises(Exception):
        other_client.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", certs.OVERRIDE_NAME} <= set(sans.get_values_for_type(x509.DNSName))
    assert channel_cases.NOT_IN_CERT not in sans.get_values_for_type(x509.DNSName)
    assert client.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == channels.CLIENT_CN
    assert sorted(p.name for p in cert_dir.iterdir()) == sorted(certs.FILES)
    assert all(oct(p.stat().st_mode)[-3:] == "644" for p in cert_dir.iterdir())


# ---------------------------------------------------------------- case data

@pytest.mark.parametrize("raw, error", [
    ({"listener": "quic"}, "channel.listener"),
    ({"listener": "tls", "trust": "system"}, "channel.trust"),
    ({"listener": "mtls", "client_cert": "mine"}, "channel.client_cert"),
    ({"server_name": "x"}, "need a tls or mtls listener"),
    ({"listener": "tls", "token": ""}, "channel.token"),
    ({"listener": "tls", "refused": "yes"}, "channel.refused"),
    ({"listener": "tls", "alpn": "h2"}, "unknown channel key"),
    ({"refused": True}, "needs a token"),
])
def test_a_malformed_channel_is_refused(raw: dict[str, Any], error: str) -> None:
    with pytest.raises(channels.ChannelError, match=error):
        channels.Channel.of(raw)


def test_channel_defaults_and_what_the_server_must_see() -> None:
    assert channels.Channel.of({"listener": "mtls"}).expected() == {
        "transport": "tls", "client_cn": channels.CLIENT_CN, "sni": ""}
    assert channels.Channel.of({"listener": "tls", "server_name": "n"}).expected() == {
        "transport": "tls", "client_cn": "", "sni": "n"}
    assert channels.Channel.of({"token": "t"}).expected()["transport"] == "insecure"


def test_a_case_file_channel_is_checked_and_kept(seed_gen: ModuleType, tmp_path: Path) -> None:
    text = f"""cases:
  - name: {H}/SayHello/mine/over_mtls
    channel: {{listener: mtls, token: abc}}
    calls: [{{method: {H}/SayHello, requests: [{{greeting: hi}}], expect: {{responses: [{{}}]}},
             server: {{require_token: abc}}}}]
"""
    (case,) = load_file(tmp_path / "c.yaml", text=text)
    assert case.channel == {"listener": "mtls", "token": "abc"}
    assert case.to_json()["channel"] == case.channel
    with pytest.raises(CaseError, match="channel.listener"):
        load_file(tmp_path / "c.yaml", text=text.replace("listener: mtls", "listener: h3"))
    with pytest.raises(CaseError, match="require_token"):
        load_file(tmp_path / "c.yaml", text=text.replace("require_token: abc", "require_token: 7"))
    with pytest.raises(CaseError, match="compression is checked on the plaintext listener only"):
        load_file(tmp_path / "c.yaml", text=text.replace("require_token: abc", "compression: gzip"))


def test_channel_cases_per_mode() -> None:
    other = Case(name=f"{H}/LotsOfReplies/HelloRequest/typical", calls=[dataclasses.replace(
        hello(), method=f"{H}/LotsOfReplies", streaming="server_stream")], source="t")
    extra = Case(name=f"{H}/SayHello/HelloRequest/empty", calls=[hello()], source="t")
    seeds_only = Case(name=f"{H}/SayHello/seed", calls=[dataclasses.replace(hello(), checked_by_server=False)],
                      source="t")
    catalogue = [extra, ANCHOR, other, seeds_only]
    default = {c.name for c in channel_cases.generate(catalogue)}
    assert f"{H}/SayHello/tls/wrong_ca" in default and f"{H}/SayHello/mtls/mutual" in default
    # one value case per method, its typical one; never a case no generic server checks
    assert {n for n in default if n.endswith("/typical")} == {
        f"{H}/SayHello/tls/HelloRequest/typical", f"{H}/LotsOfReplies/tls/HelloRequest/typical"}
    every = {c.name for c in channel_cases.generate(catalogue, "all")}
    assert {f"{H}/SayHello/tls/HelloRequest/empty", f"{H}/SayHello/mtls/HelloRequest/empty"} <= every
    assert not any("/seed" in n for n in every)
    gzip = Case(name=f"{H}/SayHello/protocol/gzip_response", calls=[dataclasses.replace(
        hello(), server={"compression": "gzip"})], source="t")
    assert not [c for c in channel_cases.generate([gzip, ANCHOR], "all") if "gzip" in c.name]  # the wire cannot tell
    assert channel_cases.generate(catalogue, "plaintext") == []
    assert all("tls" in c.name and c.channel for c in channel_cases.generate(catalogue, "all"))
    with pytest.raises(ValueError, match="--channel"):
        channel_cases.generate(catalogue, "ssl")
    clash = Case(name=f"{H}/SayHello/tls/server_only", calls=[hello()], source="mine.yaml")
    with pytest.raises(CaseError, match="clash"):
        channel_cases.generate([ANCHOR, clash])


def test_cases_checked_on_the_wire_are_not_copied_over_tls(seed_gen: ModuleType) -> None:
    """What the wire shows a Python peer (forbidden metadata never sent, the reserved keys' lost
    answer, a code past 16's number) is invisible over TLS, where their known divergences would
    excuse the copies unchecked (issue 17): like the compression cases, they stay on plaintext."""
    from harness.cases import generate
    from harness.protoset import discover
    from harness.run.runner import _for_catalogue

    catalogue = [_for_catalogue(c) for c in generate.generate(discover(Path(__file__).resolve().parent.parent
                                                                        / "protos"))]
    wire_checked = ("metadata_uppercase_key", "metadata_non_ascii_value", "metadata_reserved_grpc_keys",
                    "code_17", "code_99")
    assert {c.name.rsplit("/", 1)[1] for c in catalogue} >= set(wire_checked)
    copies = channel_cases.generate(catalogue, "all")
    assert copies and not [c.name for c in copies if c.name.rsplit("/", 1)[1] in wire_checked]


def test_tls_cases_are_not_read_on_the_wire() -> None:
    over = channel_cases.over(ANCHOR, "tls")
    gzip_call = dataclasses.replace(hello(), compression="gzip")
    assert observed.needs_observer("go", "py", [dataclasses.replace(ANCHOR, calls=[gzip_call])])
    assert not observed.needs_observer("go", "py", [dataclasses.replace(over, calls=[gzip_call])])


# ---------------------------------------------------------------- on the wire, in-process

@pytest.mark.parametrize("name", sorted(BY_NAME))
@pytest.mark.parametrize("client", ["sync", "aio"])
def test_every_channel_case_passes_python_to_python(name: str, client: str, listening: tuple[str, dict[str, str]],
                                                    seed_gen: ModuleType, cert_dir: Path) -> None:
    flavour, targets = listening
    result = run(seed_gen, targets, cert_dir, BY_NAME[name], aio=client == "aio")
    if client == "aio" and name.endswith("/token_needs_tls"):  # a known divergence (known_divergences.yaml)
        # grpc.aio raises UsageError: the call's outcome, compared like a status, not a harness error
        assert result.verdict == "fail" and [d.path for d in result.diffs] == ["status.code"]
        assert result.diffs[0].got.startswith("raised UsageError: Call credentials are only valid on secure channels")
        return
    assert result.verdict == "pass", (flavour, client, result.diffs)
    refused = (BY_NAME[name].channel or {}).get("refused") or name.endswith("_rejected")
    assert bool(result.notes) == bool(refused), result.notes  # each non-OK call's status is recorded
    if refused:
        status, cause = NOTES[name.rsplit("/", 1)[1]]
        assert result.notes["call 0"].startswith(status + ": ") and cause in result.notes["call 0"], result.notes


# What each refused case's note says: the client's own refusals name their cause. The server's (on
# mtls) race with the client's first write, and grpcio then says "Socket closed": what the client
# handed grpcio proves those (channel.client_cert, a diff in the passing verdict above).
NOTES = {"wrong_ca": ("UNAVAILABLE", channels.UNKNOWN_AUTHORITY),
         "server_name_mismatch": ("UNAVAILABLE", channels.NAME_MISMATCH),
         "no_client_cert": ("UNAVAILABLE", ""), "untrusted_client_cert": ("UNAVAILABLE", ""),
         "token_needs_tls": ("UNAUTHENTICATED", "does not have a sufficient security level to transfer call credential"),
         "bearer_token_rejected": ("UNAUTHENTICATED", "bearer token required")}


@pytest.mark.parametrize("client", ["sync", "aio"])
def test_the_server_sees_a_client_on_the_wrong_connection(client: str, listening: tuple[str, dict[str, str]],
                                                          seed_gen: ModuleType, cert_dir: Path) -> None:
    """A case that says mTLS, sent over plaintext or over TLS without a client certificate, fails on
    the server's checks: a client that quietly used another connection cannot pass."""
    mutual = BY_NAME[f"{H}/SayHello/mtls/mutual"]
    over_plain = run(seed_gen, listening[1], cert_dir, mutual, client == "aio", connect_as=ANCHOR)
    assert {d.path for d in over_plain.diffs} == {"server.channel.transport", "server.channel.client_cn"}
    over_tls = run(seed_gen, listening[1], cert_dir, mutual, client == "aio",
                   connect_as=BY_NAME[f"{H}/SayHello/tls/server_only"])
    assert [(d.path, d.got) for d in over_tls.diffs] == [("server.channel.client_cn", '""')]
    renamed = run(seed_gen, listening[1], cert_dir, BY_NAME[f"{H}/SayHello/tls/server_name_override"],
                  client == "aio", connect_as=BY_NAME[f"{H}/SayHello/tls/server_only"])
    assert [(d.path, d.expected, d.got) for d in renamed.diffs] == [
        ("server.channel.sni", f'"{certs.OVERRIDE_NAME}"', '""')]


def test_a_missing_token_is_refused_by_the_server(listening: tuple[str, dict[str, str]], seed_gen: ModuleType,
                                                   cert_dir: Path) -> None:
    with_token = BY_NAME[f"{H}/SayHello/tls/bearer_token"]
    result = run(seed_gen, listening[1], cert_dir, dataclasses.replace(with_token, channel={"listener": "tls"}), False)
    assert [(d.path, d.got) for d in result.diffs][:1] == [
        ("status.code", 'UNAUTHENTICATED "bearer token required"')]
    assert result.notes == {"call 0": "UNAUTHENTICATED: bearer token required"}


def test_no_tls_listener_is_a_clear_error(cert_dir: Path) -> None:
    pool = channels.Pool({"plaintext": "127.0.0.1:1"}, cert_dir)
    with pytest.raises(channels.ChannelError, match="no tls listener"):
        pool.for_case(BY_NAME[f"{H}/SayHello/tls/server_only"])



def test_the_python_tls_listeners_speak_http2_only_after_alpn_h2(listening: tuple[str, dict[str, str]],
                                                                cert_dir: Path, alpn_probe: Any) -> None:
    """grpc core's server selects h2 and answers the preface with SETTINGS; a client offering only
    http/1.1, or no ALPN, completes the handshake, selects nothing and is closed without an HTTP/2
    word (as grpc-go's: tests/test_peer.py)."""
    selected, answer = alpn_probe(listening[1]["tls"], cert_dir, ["h2", "http/1.1"])
    assert selected == "h2" and answer[3] == 4  # a SETTINGS frame
    for offered in (["http/1.1"], []):
        assert alpn_probe(listening[1]["tls"], cert_dir, offered) == (None, b"")

@pytest.mark.parametrize("client", ["sync", "aio"])
def test_a_refused_case_that_connects_fails(client: str, listening: tuple[str, dict[str, str]], seed_gen: ModuleType,
                                            cert_dir: Path) -> None:
    """The catalogue server answers a refused case's expected UNAVAILABLE itself; a client whose
    connection was not refused must not pass on that status."""
    wrong_ca = BY_NAME[f"{H}/SayHello/tls/wrong_ca"]
    result = run(seed_gen, listening[1], cert_dir, wrong_ca, client == "aio",
                 connect_as=BY_NAME[f"{H}/SayHello/tls/server_only"])
    assert {d.path for d in result.diffs} == {"server.channel.refused", "channel.refused", "channel.refusal"}


@pytest.mark.parametrize("client", ["sync", "aio"])
def test_a_client_that_withholds_the_untrusted_certificate_fails(
        client: str, listening: tuple[str, dict[str, str]], seed_gen: ModuleType, cert_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutant of issue 17: a client that never presents the untrusted certificate is refused
    too (for having none), and passed untrusted_client_cert on the refusal alone."""
    monkeypatch.setitem(channels.CLIENT_CERTS, "other_client", None)
    result = run(seed_gen, listening[1], cert_dir, BY_NAME[f"{H}/SayHello/mtls/untrusted_client_cert"], client == "aio")
    assert [(d.path, d.expected, d.got) for d in result.diffs] == [
        ("channel.client_cert", "'interop-other-client' handed to grpcio", "none handed to grpcio")]


@pytest.mark.parametrize("client", ["sync", "aio"])
def test_what_another_connection_was_handed_proves_nothing(
        client: str, listening: tuple[str, dict[str, str]], seed_gen: ModuleType, cert_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A client's record of the certificate it handed grpcio is its connection's own: one an
    earlier pool (another direction) made for the same channel does not pass a connection made
    without the untrusted certificate."""
    untrusted = BY_NAME[f"{H}/SayHello/mtls/untrusted_client_cert"]
    earlier = channels.Pool(listening[1], cert_dir)
    earlier.for_case(untrusted)
    earlier.close()

    def without_certificate(self: channels.Pool, ch: channels.Channel | None) -> Any:
        assert ch is not None  # the mutant: the untrusted certificate never reaches grpcio
        mod = grpc.aio if self.aio else grpc
        creds = grpc.ssl_channel_credentials((cert_dir / "ca.pem").read_bytes())
        return mod.secure_channel(self.targets[ch.listener], creds, options=channels.options(ch, self.base))
    monkeypatch.setattr(channels.Pool, "_make", without_certificate)
    result = run(seed_gen, listening[1], cert_dir, untrusted, client == "aio")
    assert [(d.path, d.got) for d in result.diffs] == [
        ("channel.client_cert", "nothing recorded: the connection was not made as this channel's")]


@pytest.mark.parametrize("client", ["sync", "aio"])
def test_a_case_files_mtls_channel_refused_for_its_name_passes(
        client: str, listening: tuple[str, dict[str, str]], seed_gen: ModuleType, cert_dir: Path) -> None:
    """Only the name refuses it (the trusted certificate is presented): that is its cause."""
    case = dataclasses.replace(BY_NAME[f"{H}/SayHello/mtls/untrusted_client_cert"], name=f"{H}/SayHello/mtls/name", channel={
        "listener": "mtls", "server_name": channel_cases.NOT_IN_CERT, "refused": True})
    result = run(seed_gen, listening[1], cert_dir, case, client == "aio")
    assert (result.verdict, result.diffs) == ("pass", []), result.notes


def test_a_refused_channel_has_one_cause() -> None:
    """Two causes at once (a wrong authority and a wrong name, or a name the certificate lacks and a
    refused client certificate): which one a library reports first is its own business (crypto/tls
    checks the name before the chain, grpc core after), so no case could prove its cause."""
    for raw in ({"listener": "tls", "trust": "other_ca", "server_name": channel_cases.NOT_IN_CERT},
                {"listener": "mtls", "client_cert": "none", "server_name": channel_cases.NOT_IN_CERT},
                {"listener": "mtls", "trust": "other_ca", "client_cert": "other_client"}):
        with pytest.raises(channels.ChannelError, match="has 2 causes"):
            channels.Channel.of({**raw, "refused": True})
        assert channels.Channel.of(raw) is not None  # not refused: nothing to prove
    for name in channels.SERVER_NAMES:  # a name the certificate has is no cause
        assert channels.Channel.of({"listener": "tls", "trust": "other_ca", "server_name": name, "refused": True})


@pytest.mark.parametrize("channel, message, paths", [
    ({"client_cert": "other_client"}, "Socket closed", []),
    ({"client_cert": "none"}, "Socket closed", []),
    ({"client_cert": "other_client", "handed": channels.CLIENT_CN}, "Socket closed", ["channel.client_cert"]),
    ({"client_cert": "none", "handed": channels.OTHER_CLIENT_CN}, "Socket closed", ["channel.client_cert"]),
    ({"client_cert": "other_client"}, "Tls handshake failed: " + channels.UNKNOWN_AUTHORITY, ["channel.refusal"]),
    ({"listener": "tls", "trust": "other_ca"}, "Tls handshake failed: " + channels.UNKNOWN_AUTHORITY, []),
    ({"listener": "tls", "trust": "other_ca"}, "Socket closed", ["channel.refusal"]),
    ({"listener": "tls", "trust": "other_ca"}, "", ["channel.refusal"]),
    ({"listener": "tls", "server_name": "x"}, channels.NAME_MISMATCH, []),
    ({"listener": "tls", "server_name": "x"}, channels.UNKNOWN_AUTHORITY, ["channel.refusal"]),
    # on mtls with the trusted client certificate only the name refuses (a case file may say so)
    ({"client_cert": "client", "server_name": "x"}, "Tls handshake failed: " + channels.NAME_MISMATCH, []),
    ({"client_cert": "client", "server_name": "x"}, "Socket closed", ["channel.refusal"]),
])
def test_a_refusal_needs_its_own_cause(channel: dict[str, Any], message: str, paths: list[str], cert_dir: Path) -> None:
    """Crafted client views of a refused channel (its status message; `handed`: the certificate
    grpcio was given instead of the channel's): only its own cause passes."""
    ch = channels.Channel.of({"listener": "mtls", **{k: v for k, v in channel.items() if k != "handed"}, "refused": True})
    assert ch is not None
    handed = channel.get("handed", channels._credentials(ch, cert_dir)[1])
    assert [p for p, _, _ in channels.refusal(ch, message, handed)] == paths


def test_a_refused_case_brings_its_listener_passing_case() -> None:
    """A listener that is not there refuses every connection too: a refused case is selected only with
    the case that shows its listener serves."""
    from harness.run.runner import select

    made = channel_cases.generate([ANCHOR])
    names = {c.name for c in made} | {ANCHOR.name}
    refused = [c for c in made if (c.channel or {}).get("refused")]
    assert refused and all(c.control in names for c in refused)
    assert not [c for c in made if c.control and not (c.channel or {}).get("refused")]
    picked = {c.name for c in select([ANCHOR, *made], ["wrong_ca", "token_needs_tls"])}
    assert picked == {f"{H}/SayHello/tls/wrong_ca", f"{H}/SayHello/tls/server_only",
                      f"{H}/SayHello/tls/token_needs_tls", ANCHOR.name}


@pytest.mark.parametrize("client", ["sync", "aio"])
def test_token_cases_fail_against_a_server_that_does_not_check_the_token(
        client: str, listening: tuple[str, dict[str, str]], seed_gen: ModuleType, cert_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The token cases hold even if the server's own token check is broken: the rejected case then
    gets OK (server.status), and both cases' server.metadata say which token must arrive."""
    from python_impl.plan import Plan

    monkeypatch.setattr(Plan, "token_refused", lambda self, metadata: False)
    rejected = run(seed_gen, listening[1], cert_dir, BY_NAME[f"{H}/SayHello/tls/bearer_token_rejected"], client == "aio")
    assert rejected.diffs and rejected.diffs[0].path == "status.code" and rejected.diffs[0].got.startswith("OK")
    no_token = dataclasses.replace(BY_NAME[f"{H}/SayHello/tls/bearer_token"], channel={"listener": "tls"})
    missing = run(seed_gen, listening[1], cert_dir, no_token, client == "aio")
    assert [d.path for d in missing.diffs] == ['server.metadata["authorization"]']


def test_a_killed_sessions_certificates_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    monkeypatch.setattr(certs.tempfile, "gettempdir", lambda: str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = certs.make(tmp_path / f"interop-certs-{gone.stdout.strip()}-x" / "certs").parent
    mine = certs.make(tmp_path / f"{certs.prefix()}y" / "certs").parent
    assert certs.reap_dead() == 1
    assert not dead.exists() and mine.exists()
