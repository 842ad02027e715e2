"""Peer lifecycle: runner choice, readiness, logs, cleanup. Docker tests run for real where an
engine answers (CI starts one); elsewhere they say so loudly, and fail when docker was required."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import time
from pathlib import Path

from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from harness.engines import certs, peer
from harness.run import handshakes
from harness.protoset.codegen import GoBuild, build_go
from harness.protoset import discover

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def go_build() -> GoBuild:
    return build_go(discover(REPO / "protos"))


@pytest.fixture(scope="module")
def docker_engine():
    client = peer.docker_client()
    if client is None:
        if os.environ.get("INTEROP_PEER_RUNNER") == "docker":
            pytest.fail("INTEROP_PEER_RUNNER=docker but no Docker engine answers (run ci/docker-engine.sh)")
        pytest.skip("NO DOCKER ENGINE on this machine: container lifecycle NOT tested "
                    "(run `make setup` to start one; CI always does)")
    return client


def test_auto_falls_back_loudly_and_docker_refuses(monkeypatch, capsys) -> None:
    monkeypatch.setattr(peer, "docker_client", lambda: None)
    assert peer.select_runner("auto") == "process"
    assert "NO DOCKER ENGINE" in capsys.readouterr().err
    with pytest.raises(peer.PeerError, match="no Docker engine answers"):
        peer.select_runner("docker")
    assert peer.select_runner("process") == "process"


def test_readiness_timeout_carries_logs() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(peer.PeerError, match="not healthy in time(.|\n)*--- peer logs ---(.|\n)*the log text"):
        peer.wait_healthy(f"127.0.0.1:{port}", time.monotonic() + 0.5, lambda: "the log text")


def _health(address: str) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="routeguide.RouteGuide"), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_process_server_handshake_health_and_stop(go_build: GoBuild) -> None:
    with peer.GoServer(go_build, "process") as server:
        assert server.address.startswith("127.0.0.1:")
        _health(server.address)
        proc = server._proc
    assert proc.poll() is not None, "the Go peer process outlived its context"


def test_go_client_failure_is_an_error_with_stderr(go_build: GoBuild) -> None:
    payload = {"target": "", "direction": "go-go", "run_id": "t", "cases": []}
    with pytest.raises(peer.PeerError, match="exited with code 1(.|\n)*--- client stderr ---(.|\n)*no target"):
        peer.run_go_client(go_build, "process", payload)


def test_container_is_published_on_loopback_labelled_and_removed(go_build: GoBuild, docker_engine) -> None:
    with peer.GoServer(go_build, "docker") as server:
        container = server._container
        container.reload()
        binding = container.ports[f"{peer.CONTAINER_PORT}/tcp"][0]
        assert binding["HostIp"] == "127.0.0.1"
        assert container.labels[peer.SESSION_LABEL] == peer.SESSION
        assert container.attrs["Config"]["User"] == "65532:65532"
        host = container.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
        assert "no-new-privileges:true" in host["SecurityOpt"]
        assert host["PidsLimit"] == 512 and host["Memory"] == 2 * 1024**3 and host["NanoCpus"] == 2_000_000_000
        # orphan-proof: the peer stops when the stdin this process holds closes, and is then removed
        assert container.attrs["Config"]["OpenStdin"] and container.attrs["Config"]["StdinOnce"]
        assert host["AutoRemove"] is True and peer.STOP_ON_EOF in container.attrs["Args"]
        _health(server.address)
        assert "LISTENING" in server.logs()
    assert not docker_engine.containers.list(all=True, filters={"id": container.id}, sparse=True)


def test_clean_reaps_containers_of_dead_sessions(go_build: GoBuild, docker_engine) -> None:
    tag = peer.ensure_image(go_build, docker_engine)
    dead = docker_engine.containers.create(tag, ["version"], labels={peer.LABEL: "1", peer.SESSION_LABEL: "999999999@gone"})
    live = docker_engine.containers.create(tag, ["version"], labels={peer.LABEL: "1", peer.SESSION_LABEL: peer.SESSION})
    try:
        assert peer.clean(all_sessions=False) >= 1
        assert not docker_engine.containers.list(all=True, filters={"id": dead.id}, sparse=True)
        assert docker_engine.containers.list(all=True, filters={"id": live.id}, sparse=True), "a live session's container was reaped"
    finally:
        for c in (dead, live):
            try:
                c.remove(force=True)
            except Exception:
                pass


def test_image_is_reused_when_nothing_changed(go_build: GoBuild, docker_engine) -> None:
    tag = peer.ensure_image(go_build, docker_engine)
    image_id = docker_engine.images.get(tag).id
    assert peer.ensure_image(go_build, docker_engine) == tag
    assert docker_engine.images.get(tag).id == image_id


def test_container_stops_and_goes_when_its_stdin_closes(go_build: GoBuild, docker_engine) -> None:
    """What happens when the harness dies: the engine closes the peer's stdin, the peer stops."""
    with peer.GoServer(go_build, "docker") as server:
        container = server._container
        _health(server.address)
        peer._hang_up(server._stdin)  # as the kernel does for a harness killed by SIGKILL
        deadline = time.monotonic() + 10
        while docker_engine.containers.list(all=True, filters={"id": container.id}, sparse=True) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not docker_engine.containers.list(all=True, filters={"id": container.id}, sparse=True), \
            "the Go peer container outlived its stdin by 10 s"


def test_a_server_that_dies_mid_run_is_named_and_replaced(go_build: GoBuild, docker_engine) -> None:
    """The failures after a crash are errors that say the peer exited, naming the case in flight and
    its last lines; the next use of that side starts a new peer, and its cases pass again."""
    from harness.run.runner import Session, direction, prepare

    prepared = prepare(REPO / "protos")
    d = direction("py-go")
    cases = [c for c in prepared.catalogue if c.method.endswith("/SayHello")][:6]
    with Session(prepared, "docker") as session:
        assert {r.verdict for r in session.run(d, cases[:3])} == {"pass"}
        first = session._servers["go"]
        first._container.kill()
        assert peer._wait_gone(first, 10), "the killed peer container was not removed"
        after = session.run(d, cases[3:])
        assert {r.verdict for r in after} == {"error"}
        assert "exited; case in flight (the first to fail): " + cases[3].name in after[0].diffs[0].got
        assert "LISTENING" in after[0].diffs[0].got, "the dead peer's last lines are missing"
        assert {r.verdict for r in session.run(d, cases[3:])} == {"pass"}
        assert session._servers["go"] is not first


def test_go_client_crash_names_the_case_in_flight(go_build: GoBuild) -> None:
    """A client killed in the middle of its batch: the error says how far it got and which case was
    in flight. The case waits on a listener that never speaks HTTP/2, so it is in flight for sure."""
    import threading

    from harness.run.runner import prepare

    case = next(c for c in prepare(REPO / "protos").catalogue if c.method.endswith("/SayHello")).to_json()
    case["calls"][0]["timeout_ms"] = 60_000
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        payload = {"target": f"127.0.0.1:{silent.getsockname()[1]}", "direction": "go-go", "run_id": "t",
                   "cases": [case]}
        box: list[BaseException] = []
        worker = threading.Thread(target=lambda: _catch(box, peer.run_go_client, go_build, "process", payload))
        worker.start()
        conn, _ = silent.accept()  # the client dialled: its case is in flight
        with conn:
            for proc in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    argv = proc.read_bytes().split(b"\0")
                except OSError:
                    continue
                if argv[:2] == [str(go_build.binary).encode(), b"client"]:
                    os.kill(int(proc.parent.name), signal.SIGKILL)
            worker.join(30)
    assert box and isinstance(box[0], peer.PeerError), box
    assert f"after 0 of 1 cases; case in flight (the first with no result): {case['name']}" in str(box[0])


def _catch(box: list[BaseException], fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as e:  # noqa: BLE001
        box.append(e)


# ---------------------------------------------------------------- TLS and mTLS listeners

def test_parse_listening() -> None:
    assert peer.parse_listening("LISTENING 127.0.0.1:1 tls=127.0.0.1:2 mtls=[::1]:3") == {
        "plaintext": "127.0.0.1:1", "tls": "127.0.0.1:2", "mtls": "[::1]:3"}
    assert peer.parse_listening("LISTENING 0.0.0.0:50051") == {"plaintext": "0.0.0.0:50051"}
    for bad in ("", "LISTENING", "LISTENING tls=1:2", "LISTENING 1:2 tls", "LISTENING 1:2 =1:3", "READY 1:2"):
        with pytest.raises(peer.PeerError, match="LISTENING"):
            peer.parse_listening(bad)


def _health_code(address: str, credentials: grpc.ChannelCredentials | None, **options: str) -> grpc.StatusCode:
    """The status of one health Check over a channel with these credentials (None: plaintext)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    opts = [("grpc.enable_http_proxy", 0), *options.items()]
    channel = grpc.insecure_channel(address, options=opts) if credentials is None else \
        grpc.secure_channel(address, credentials, options=opts)
    with channel:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.RpcError as e:
            return e.code()
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    return grpc.StatusCode.OK


def _assert_listeners(server: peer.GoServer, folder: Path) -> None:
    """Each listener answers with its own credentials, and refuses the wrong ones (grpcio's view)."""
    assert set(server.addresses) == {"plaintext", "tls", "mtls"}
    assert server.address == server.addresses["plaintext"]
    assert all(a.startswith("127.0.0.1:") for a in server.addresses.values()), server.addresses
    assert len(set(server.addresses.values())) == 3
    read = lambda name: (folder / name).read_bytes()  # noqa: E731
    ca, other_ca = grpc.ssl_channel_credentials(read("ca.pem")), grpc.ssl_channel_credentials(read("other_ca.pem"))
    client = grpc.ssl_channel_credentials(read("ca.pem"), read("client.key"), read("client.pem"))
    other_client = grpc.ssl_channel_credentials(read("ca.pem"), read("other_client.key"), read("other_client.pem"))
    ok, refused = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE
    assert handshakes.take(server.address) == [], "refused handshakes before any client"
    assert _health_code(server.addresses["plaintext"], None) == ok
    assert _health_code(server.addresses["tls"], ca) == ok
    assert _health_code(server.addresses["tls"], ca, **{"grpc.ssl_target_name_override": "peer.interop.test"}) == ok
    assert _health_code(server.addresses["mtls"], client) == ok
    assert _health_code(server.addresses["tls"], None) == refused, "the tls listener answered plaintext"
    assert _health_code(server.addresses["plaintext"], ca) == refused, "the plaintext listener answered TLS"
    assert _health_code(server.addresses["tls"], other_ca) == refused
    assert _health_code(server.addresses["tls"], ca, **{"grpc.ssl_target_name_override": "wrong.interop.test"}) == refused
    assert _health_code(server.addresses["mtls"], ca) == refused, "mtls served a client without a certificate"
    assert _health_code(server.addresses["mtls"], other_client) == refused, "mtls took another CA's client"
    # each refusal for its own cause, as the server saw it (not any refusal: harness/run/handshakes.py)
    seen = {(r["listener"], r["cause"], r.get("client_cn", "")): r for r in handshakes.take(server.address)}
    assert {("mtls", "no_certificate", ""), ("mtls", "unknown_authority", "interop-other-client"),
            ("tls", "client_closed", "")} <= set(seen), list(seen)
    assert "first record does not look like a TLS handshake" in seen["tls", "other", ""]["error"]  # plaintext on tls
    untrusted = seen["mtls", "unknown_authority", "interop-other-client"]
    assert untrusted["client_sha256"] == hashlib.sha256(x509.load_pem_x509_certificate(
        read("other_client.pem")).public_bytes(Encoding.DER)).hexdigest()


_HELLO = {"method": "/tutorial.HelloService/SayHello", "streaming": "unary", "timeout_ms": 10_000,
          "request_type": "tutorial.HelloRequest", "response_type": "tutorial.HelloResponse", "checked_by_server": True,
          "requests": [{"greeting": "a"}], "expect": {"responses": [{"reply": "over the channel"}]}}
# Catalogue cases: the generic server checks the connection each arrives on.
_CHANNEL_CATALOGUE = [
    {"name": "hello/mtls", "channel": {"listener": "mtls"}, "calls": [_HELLO]},
    {"name": "hello/tls_token", "channel": {"listener": "tls", "server_name": "peer.interop.test", "token": "t0k"},
     "calls": [{**_HELLO, "server": {"require_token": "t0k"}}]},
    {"name": "hello/sni", "channel": {"listener": "tls", "server_name": "peer.interop.test"}, "calls": [_HELLO]},
]


def _catalogue(tmp_path: Path) -> Path:
    folder = tmp_path / "catalogue"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)  # the container runs as an unprivileged user
    path = folder / "catalogue.json"
    path.write_text(json.dumps({"cases": _CHANNEL_CATALOGUE}))
    path.chmod(0o644)
    return path


def _assert_go_client_channels(go_build: GoBuild, runner: str, server: peer.GoServer, folder: Path) -> None:
    """The Go client reaches each listener with the channel's credentials (health: the real service),
    and the generic server checks the catalogue cases' connections: "hello/sni" is sent without its
    server_name, which only the server can see."""
    call = {"method": "/grpc.health.v1.Health/Check", "streaming": "unary", "timeout_ms": 10_000,
            "request_type": "grpc.health.v1.HealthCheckRequest", "response_type": "grpc.health.v1.HealthCheckResponse",
            "requests": [{}], "expect": {"responses": [{"status": "SERVING"}]}}
    refused = {**call, "expect": {"status": "UNAVAILABLE"}}
    cases = [{"name": "plain", "calls": [call]},
             {"name": "tls", "channel": {"listener": "tls", "server_name": "peer.interop.test"}, "calls": [call]},
             {"name": "mtls", "channel": {"listener": "mtls", "token": "t0k"}, "calls": [call]},
             {"name": "wrong_ca", "channel": {"listener": "tls", "trust": "other_ca", "refused": True}, "calls": [refused]},
             *_CHANNEL_CATALOGUE[:2],
             {**_CHANNEL_CATALOGUE[2], "channel": {"listener": "tls"}}]
    payload = {"target": server.address, "targets": {k: v for k, v in server.addresses.items() if k != "plaintext"},
               "certs": str(folder), "direction": "go-go", "run_id": "t", "cases": cases}
    results, stderr = peer.run_go_client(go_build, runner, payload)
    by_case = {r.case: r for r in results}
    assert {name: r.verdict for name, r in by_case.items()} == {
        "plain": "pass", "tls": "pass", "mtls": "pass", "wrong_ca": "pass", "hello/mtls": "pass",
        "hello/tls_token": "pass", "hello/sni": "fail"}, ([(r.case, r.diffs) for r in results], stderr)
    assert [(d.path, d.expected, d.got) for d in by_case["hello/sni"].diffs] == [
        ("server.channel.sni", '"peer.interop.test"', '""')]
    assert "server.channel.sni" in server.logs()


def test_process_server_serves_tls_and_mtls(go_build: GoBuild, tmp_path: Path) -> None:
    certs_dir = certs.make(tmp_path / "certs")
    with peer.GoServer(go_build, "process", _catalogue(tmp_path), certs=certs_dir) as server:
        assert "--tls-dir" in server._proc.args
        _assert_listeners(server, certs_dir)
        _assert_go_client_channels(go_build, "process", server, certs_dir)
    with peer.GoServer(go_build, "process") as plain:  # without certs: the plaintext listener alone
        assert plain.addresses == {"plaintext": plain.address}


def test_container_serves_tls_and_mtls(go_build: GoBuild, docker_engine, tmp_path: Path) -> None:
    certs_dir = certs.make(tmp_path / "certs")
    with peer.GoServer(go_build, "docker", _catalogue(tmp_path), certs=certs_dir) as server:
        container = server._container
        container.reload()
        for cport in (peer.CONTAINER_PORT, *peer.TLS_CONTAINER_PORTS.values()):
            assert container.ports[f"{cport}/tcp"][0]["HostIp"] == "127.0.0.1"
        mount = next(m for m in container.attrs["Mounts"] if m["Destination"] == peer.CERTS_MOUNT)
        assert mount["Source"] == str(certs_dir) and mount["RW"] is False
        _assert_listeners(server, certs_dir)
        # the client container reads the folder at /certs (mounted read-only), whatever the host path
        _assert_go_client_channels(go_build, "docker", server, certs_dir)



def test_go_tls_listener_speaks_http2_only_after_alpn_h2(go_build: GoBuild, tmp_path: Path, alpn_probe: Any) -> None:
    """ALPN h2 on the Go server's TLS listener: its SETTINGS frame (type 4) answers the preface. A
    client offering only http/1.1, or no ALPN, completes the handshake, selects nothing and is
    closed without an HTTP/2 word (grpc-go enforces ALPN; grpc core does the same, tests/test_channels.py)."""
    certs_dir = certs.make(tmp_path / "certs")
    with peer.GoServer(go_build, "process", certs=certs_dir) as server:
        selected, answer = alpn_probe(server.addresses["tls"], certs_dir, ["h2", "http/1.1"])
        assert selected == "h2" and answer[3] == 4  # a SETTINGS frame
        for offered in (["http/1.1"], []):
            assert alpn_probe(server.addresses["tls"], certs_dir, offered) == (None, b"")


def test_a_result_carrying_a_next_line_character_stays_one_result(tmp_path: Path) -> None:
    """Go's JSON leaves U+0085 (and U+2028) unescaped; str.splitlines() would cut that result in
    two and the whole batch would be refused. A stand-in client prints what the Go client would."""
    rows = [{"case": "a.S/M/T/nel", "direction": "go→py", "verdict": "fail",
             "diffs": [{"call": 0, "path": "f", "expected": '"a\u0085b"', "got": '"a\u2028b"'}]},
            {"case": "a.S/M/T/plain", "direction": "go→py", "verdict": "pass"}]
    out = tmp_path / "out.txt"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    client = tmp_path / "client"
    client.write_text(f"#!/bin/sh\ncat {out}\n")
    client.chmod(0o755)
    build = GoBuild("fake", tmp_path, client)
    payload = {"target": "x", "direction": "go-py", "run_id": "t", "cases": []}
    results, _ = peer.run_go_client(build, "process", payload)
    assert [(r.case, r.verdict) for r in results] == [("a.S/M/T/nel", "fail"), ("a.S/M/T/plain", "pass")]
    assert results[0].diffs[0].expected == '"a\u0085b"' and results[0].diffs[0].got == '"a\u2028b"'
