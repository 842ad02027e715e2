"""The server's end of a refused channel (harness/run/handshakes.py): each refused case must find its
own refusal in the Go server's record, not just any. Crafted records first, then a live Go server
(process runner) refusing grpcio clients, one of them the mutant of issue 17 that never presents the
untrusted certificate."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from harness.cases import channels as channel_cases
from harness.cases.model import Call, Case
from harness.engines import certs, peer
from harness.protoset import discover
from harness.protoset.codegen import GoBuild, build_go
from harness.run import handshakes
from harness.run.runner import Direction, Prepared, Session
from python_impl import channels
from python_impl.client import run_case
from python_impl.contract import Result

REPO = Path(__file__).resolve().parent.parent
H = "tutorial.HelloService"
ANCHOR = Case(name=f"{H}/SayHello/HelloRequest/typical", source="tests/test_handshakes.py", calls=[Call(
    method=f"{H}/SayHello", streaming="unary", request_type="tutorial.HelloRequest",
    response_type="tutorial.HelloResponse", requests=[{"greeting": "refused"}], timeout_ms=5000,
    expect={"status": "OK", "responses": [{"reply": "never"}]}, checked_by_server=True)])
REFUSED = {c.name.rsplit("/", 1)[1]: c for c in channel_cases.channel_cases(ANCHOR) if (c.channel or {}).get("refused")}


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return certs.make(tmp_path_factory.mktemp("certs") / "certs")


def sha256_of(cert_dir: Path, name: str) -> str:
    pem = (cert_dir / name).read_bytes()
    return hashlib.sha256(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)).hexdigest()


def judged(records: list[dict[str, Any]] | None, client: str, cert_dir: Path,
           monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple[str, str]]]:
    """Each refused case's server.handshake diffs, the server having recorded `records`."""
    monkeypatch.setattr(handshakes, "SETTLE_S", 0.0)
    monkeypatch.setattr(handshakes, "take", lambda address: records)
    cases = list(REFUSED.values())
    results = [Result(c.name, "x", "pass", []) for c in cases]
    handshakes.judge(results, cases, client, "127.0.0.1:1", cert_dir)
    assert all(d.got.endswith(handshakes.HINT) for r in results for d in r.diffs)
    return {r.case.rsplit("/", 1)[1]: [(d.path, d.got.removesuffix(handshakes.HINT)) for d in r.diffs]
            for r in results if r.diffs}


def test_records_that_arrive_late_are_waited_for(cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server reads a client's alert or hang-up in its own time, maybe after the client's call
    ended: judge asks again (up to SETTLE_S) until each refused case has its record."""
    batches = [[], honest(cert_dir, "py")[:1], honest(cert_dir, "py")[1:]]
    monkeypatch.setattr(handshakes, "take", lambda address: batches.pop(0) if batches else [])
    cases = list(REFUSED.values())
    results = [Result(c.name, "x", "pass", []) for c in cases]
    handshakes.judge(results, cases, "py", "127.0.0.1:1", cert_dir)
    assert [r.diffs for r in results] == [[]] * len(cases) and not batches


HELLO = {"client_hello": True, "sni": ""}  # the harness dials an IP address: no SNI


def honest(cert_dir: Path, client: str) -> list[dict[str, Any]]:
    """What a Go server records of the refused cases of a correct client (grpc-go refuses the
    server's name in its handshake too; grpc core after it, where the server sees nothing)."""
    mismatch = [{"listener": "tls", **handshakes.CLIENT_REFUSES[client], "client_hello": True,
                 "sni": channel_cases.NOT_IN_CERT, "error": "…"}] if client == "go" else []
    return [{"listener": "mtls", "cause": "no_certificate", **HELLO, "error": "tls: client didn't provide a certificate"},
            {"listener": "mtls", "cause": "unknown_authority", "client_cn": channels.OTHER_CLIENT_CN,
             "client_sha256": sha256_of(cert_dir, "other_client.pem"), **HELLO, "error": "…"},
            {"listener": "tls", **handshakes.CLIENT_REFUSES[client], **HELLO, "error": "…"}, *mismatch]


@pytest.mark.parametrize("client", ["py", "go"])
def test_each_refused_case_finds_its_own_refusal(client: str, cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert judged(honest(cert_dir, client), client, cert_dir, monkeypatch) == {}
    # the mutant client of issue 17: the untrusted certificate withheld, so the server saw none twice
    withheld = [r for r in honest(cert_dir, client) if r["cause"] != "unknown_authority"] * 2
    assert judged(withheld, client, cert_dir, monkeypatch) == {
        "untrusted_client_cert": [("server.handshake", "mtls: no_certificate, no SNI (×2)")]}
    counted = [{**r, "count": 3} for r in honest(cert_dir, client) if r["cause"] != "unknown_authority"]
    assert judged(counted, client, cert_dir, monkeypatch) == {
        "untrusted_client_cert": [("server.handshake", "mtls: no_certificate, no SNI (×3)")]}
    # another certificate with the same name is not the session's untrusted one
    forged = [{**r, "client_sha256": "00" * 32} if r["cause"] == "unknown_authority" else r
              for r in honest(cert_dir, client)]
    assert list(judged(forged, client, cert_dir, monkeypatch)) == ["untrusted_client_cert"]
    # a client that presents a certificate where it should present none
    presented = [r for r in honest(cert_dir, client) if r["cause"] != "no_certificate"] * 2
    assert list(judged(presented, client, cert_dir, monkeypatch)) == ["no_client_cert"]


def test_wrong_ca_needs_the_clients_own_way_of_refusing(cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """grpc-go aborts with bad_certificate, grpc core hangs up: each client library's own, pinned."""
    assert list(judged(honest(cert_dir, "go"), "py", cert_dir, monkeypatch)) == ["wrong_ca"]
    assert list(judged(honest(cert_dir, "py"), "go", cert_dir, monkeypatch)) == ["wrong_ca", "server_name_mismatch"]
    nothing = judged([], "go", cert_dir, monkeypatch)
    assert nothing["wrong_ca"] == [("server.handshake", "no refused handshake on the tls listener")]
    assert set(nothing) == {"wrong_ca", "no_client_cert", "untrusted_client_cert", "server_name_mismatch"}
    # grpc core checks the server's name after its handshake: a Go server need not see that refusal
    assert set(judged([], "py", cert_dir, monkeypatch)) == {"wrong_ca", "no_client_cert", "untrusted_client_cert"}


def test_a_record_is_its_own_cases_by_its_sni(cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """grpc-go refuses a wrong authority and a wrong name with the same alert on the same listener:
    the other case's record, told apart by its SNI, proves nothing of this one."""
    is_wrong_ca = lambda r: r["listener"] == "tls" and not r["sni"]  # noqa: E731
    only_mismatch = [r for r in honest(cert_dir, "go") if not is_wrong_ca(r)] * 2
    assert judged(only_mismatch, "go", cert_dir, monkeypatch) == {"wrong_ca": [(
        "server.handshake", f"tls: client_alert 'bad certificate', SNI {channel_cases.NOT_IN_CERT!r} (×2)")]}
    only_wrong_ca = [r for r in honest(cert_dir, "go") if r["sni"] != channel_cases.NOT_IN_CERT] * 2
    assert list(judged(only_wrong_ca, "go", cert_dir, monkeypatch)) == ["server_name_mismatch"]


def test_a_connection_that_hung_up_before_its_client_hello_is_no_refusal(
        cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """grpc core refuses the server's chain by closing the connection: a connection closed before
    any ClientHello (a port probe) looks the same but for the hello."""
    probe = [{**r, "client_hello": False} if r["listener"] == "tls" else r for r in honest(cert_dir, "py")]
    assert judged(probe, "py", cert_dir, monkeypatch) == {"wrong_ca": [
        ("server.handshake", "tls: client_closed, before any ClientHello")]}


def test_a_server_that_keeps_no_record_is_not_read_as_one_that_saw_nothing(
        cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = judged(None, "go", cert_dir, monkeypatch)
    assert got["untrusted_client_cert"] == [
        ("server.handshake", "<not observed: the server sent no interop-tls-refusals trailer>")]


def test_a_server_that_cannot_be_asked_fails_the_refused_cases(cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handshakes, "SETTLE_S", 0.0)
    results = [Result(c.name, "x", "pass", []) for c in REFUSED.values()]
    handshakes.clear("127.0.0.1:1")  # nothing listens there: said by judge, not raised
    handshakes.judge(results, list(REFUSED.values()), "go", "127.0.0.1:1", cert_dir)
    failed = {r.case.rsplit("/", 1)[1]: r.diffs[0].got for r in results if r.verdict == "fail"}
    assert set(failed) == {"wrong_ca", "no_client_cert", "untrusted_client_cert", "server_name_mismatch"}
    assert failed["wrong_ca"].startswith("<not observed: asking 127.0.0.1:1 for its refused handshakes: UNAVAILABLE")
    assert failed["wrong_ca"].endswith(handshakes.HINT)


def test_only_go_servers_are_asked() -> None:
    assert handshakes.applies("go", list(REFUSED.values()))
    assert not handshakes.applies("py", list(REFUSED.values()))
    assert not handshakes.applies("go", [ANCHOR, channel_cases.over(ANCHOR, "mtls")])


@pytest.fixture(scope="module")
def go_build() -> GoBuild:
    return build_go(discover(REPO / "protos"))


def _catalogue(tmp_path: Path) -> Path:
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps({"cases": [c.to_json() for c in REFUSED.values()]}))
    return path


def test_a_go_server_records_the_untrusted_certificate_and_the_mutant_fails(
        go_build: GoBuild, seed_gen: ModuleType, cert_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """py→go, live: the Go server records what grpcio clients offered; a Python client that never
    presents the untrusted certificate fails on both ends."""
    cases: list[Case] = [REFUSED["untrusted_client_cert"], REFUSED["no_client_cert"], REFUSED["wrong_ca"]]
    monkeypatch.setattr(handshakes, "SETTLE_S", 0.5)  # the mutant's record never comes: wait less for it
    with peer.GoServer(go_build, "process", _catalogue(tmp_path), certs=cert_dir) as server:
        assert handshakes.take(server.address) == []

        def run(cases: list[Case]) -> list[Result]:
            pool = channels.Pool(server.addresses, cert_dir)
            try:
                results = [run_case(pool.for_case(c), seed_gen, c, "py→go", "t") for c in cases]
            finally:
                pool.close()
            handshakes.judge(results, cases, "py", server.address, cert_dir)
            return results

        assert [(r.verdict, r.diffs) for r in run(cases)] == [("pass", [])] * 3
        monkeypatch.setitem(channels.CLIENT_CERTS, "other_client", None)
        (mutant,) = run(cases[:1])
    assert mutant.verdict == "fail"
    assert [(d.path, d.got.removesuffix(handshakes.HINT)) for d in mutant.diffs] == [
        ("channel.client_cert", "none handed to grpcio"), ("server.handshake", "mtls: no_certificate, no SNI")]


def test_the_runner_forgets_what_earlier_directions_left_and_judges_its_own(
        cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Session._run takes the server's records before a direction's cases and judges them after:
    a record another direction left (here every honest one) must not pass this direction's mutant,
    which never offered the untrusted certificate."""
    monkeypatch.setattr(handshakes, "SETTLE_S", 0.0)
    left = honest(cert_dir, "py")
    made = [r for r in left if r["cause"] != "unknown_authority"]
    events: list[str] = []

    def take(address: str) -> list[dict[str, Any]]:
        events.append("take")
        return left if events == ["take"] else made if events[-2] == "exchange" else []

    def exchange(d: Any, cases: list[Case], targets: dict[str, str]) -> list[Result]:
        events.append("exchange")
        return [Result(c.name, d.name, "pass", []) for c in cases]

    session = Session(cast(Prepared, None), "process", listeners=("plaintext", "tls", "mtls"))
    session._certs = cert_dir
    server = SimpleNamespace(address="127.0.0.1:1", addresses={"plaintext": "127.0.0.1:1"})
    monkeypatch.setattr(session, "server", lambda side: server)
    monkeypatch.setattr(session, "_exchange", exchange)
    monkeypatch.setattr(handshakes, "take", take)
    results = session._run(Direction("py→go", "py", "go"), list(REFUSED.values()))
    assert events[:3] == ["take", "exchange", "take"]
    assert {r.case.rsplit("/", 1)[1]: [d.path for d in r.diffs] for r in results if r.diffs} == {
        "untrusted_client_cert": ["server.handshake"]}


def test_a_name_the_certificate_lacks_is_the_cause_on_any_listener(cert_dir: Path) -> None:
    """A case file's mtls channel with the trusted client certificate and a wrong name: grpc-go
    aborts with its alert on the mtls listener, with that name as SNI."""
    case = dataclasses.replace(REFUSED["untrusted_client_cert"], channel={
        "listener": "mtls", "client_cert": "client", "server_name": channel_cases.NOT_IN_CERT, "refused": True})
    assert handshakes.expected(case, "go", cert_dir) == {
        "listener": "mtls", "client_hello": True, "sni": channel_cases.NOT_IN_CERT, **handshakes.CLIENT_REFUSES["go"]}
    assert handshakes.expected(case, "py", cert_dir) is None  # grpc core: after its handshake
