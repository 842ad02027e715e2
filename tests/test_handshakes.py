"""The server's end of a refused channel (harness/run/handshakes.py): each refused case must find its
own refusal in the Go server's record, not just any. Crafted records first, then a live Go server
(process runner) refusing grpcio clients, one of them the mutant of issue 17 that never presents the
untrusted certificate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from harness.cases import channels as channel_cases
from harness.cases.model import Call, Case
from harness.engines import certs, peer
from harness.protoset import discover
from harness.protoset.codegen import GoBuild, build_go
from harness.run import handshakes
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
    return {r.case.rsplit("/", 1)[1]: [(d.path, d.got) for d in r.diffs] for r in results if r.diffs}


def honest(cert_dir: Path, client: str) -> list[dict[str, Any]]:
    """What a Go server records of the refused cases of a correct client."""
    return [{"listener": "mtls", "cause": "no_certificate", "error": "tls: client didn't provide a certificate"},
            {"listener": "mtls", "cause": "unknown_authority", "client_cn": channels.OTHER_CLIENT_CN,
             "client_sha256": sha256_of(cert_dir, "other_client.pem"), "error": "…"},
            {"listener": "tls", **handshakes.CLIENT_REFUSES[client], "error": "…"}]


@pytest.mark.parametrize("client", ["py", "go"])
def test_each_refused_case_finds_its_own_refusal(client: str, cert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert judged(honest(cert_dir, client), client, cert_dir, monkeypatch) == {}
    # the mutant client of issue 17: the untrusted certificate withheld, so the server saw none twice
    withheld = [r for r in honest(cert_dir, client) if r["cause"] != "unknown_authority"] * 2
    assert judged(withheld, client, cert_dir, monkeypatch) == {
        "untrusted_client_cert": [("server.handshake", "mtls: no_certificate; mtls: no_certificate")]}
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
    assert list(judged(honest(cert_dir, "py"), "go", cert_dir, monkeypatch)) == ["wrong_ca"]
    nothing = judged([], "go", cert_dir, monkeypatch)
    assert nothing["wrong_ca"] == [("server.handshake", "no refused handshake on the tls listener")]
    assert set(nothing) == {"wrong_ca", "no_client_cert", "untrusted_client_cert"}  # server_name_mismatch: see expected()


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
    assert set(failed) == {"wrong_ca", "no_client_cert", "untrusted_client_cert"}
    assert failed["wrong_ca"].startswith("<not observed: asking 127.0.0.1:1 for its refused handshakes: UNAVAILABLE")


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
    assert [(d.path, d.got) for d in mutant.diffs] == [
        ("channel.client_cert", "none handed to grpcio"), ("server.handshake", "mtls: no_certificate")]
