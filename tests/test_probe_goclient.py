"""The probe's Go client flavour (harness/probe/goclient.py, go_peer/internal/probe): it sends the very
bytes grpcio sends and gets what grpcio gets, in all four streaming modes, from the Python seed
server; its own decode (dynamicpb + protojson) agrees with Python's json_format; it runs as a process
and as a container; and when it cannot be built or run, it says why."""

from __future__ import annotations

import base64
import threading
from concurrent import futures
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message_factory import GetMessageClass

from harness.engines import certs, peer
from harness.probe import goclient, schema
from harness.protoset import codegen, gotoolchain

REPO = Path(__file__).resolve().parent.parent
ROUTES = "routeguide.RouteGuide"


@pytest.fixture(scope="module")
def seeds() -> schema.Schema:
    return schema.Schema.from_protos(REPO / "protos")


@pytest.fixture(scope="module")
def py_server(seed_gen: ModuleType) -> Iterator[peer.PythonServer]:
    with peer.PythonServer(seed_gen) as server:
        yield server


def _requests(s: schema.Schema, method: str) -> list[bytes]:
    """Requests with values in them (a Feature at 417676368,-744139358 is in the seed database: Old Harbor Lighthouse)."""
    m = s.method(method)
    cls = GetMessageClass(m.input)
    point = {"latitude": 417676368, "longitude": -744139358}
    one = {"GetFeature": point, "ListFeatures": {"lo": {"latitude": 400000000, "longitude": -750000000},
                                                 "hi": {"latitude": 420000000, "longitude": -730000000}},
           "RecordRoute": point, "RouteChat": {"location": point, "message": "hi"}}[method.rpartition("/")[2]]
    n = 1 if m.streaming in ("unary", "server_stream") else 3
    return [json_format.ParseDict(one, cls()).SerializeToString() for _ in range(n)]


def _probe_call(method: schema.Method, reqs: list[bytes]) -> dict[str, Any]:
    return {"id": method.name, "method": method.name, "streaming": method.streaming,
            "requests": [base64.b64encode(r).decode() for r in reqs], "metadata": {"x-probe": ["1"]},
            "timeout_ms": 5000, "cancel_after_responses": None}


def _grpcio(address: str, method: schema.Method, reqs: list[bytes]) -> list[bytes]:
    """The same bytes through grpcio, raw (identity serializers): the reference."""
    with grpc.insecure_channel(address, options=schema.CHANNEL_OPTIONS) as ch:
        kind = {"unary": ch.unary_unary, "server_stream": ch.unary_stream, "client_stream": ch.stream_unary,
                "bidi": ch.stream_stream}[method.streaming]
        rpc = kind(f"/{method.name}", request_serializer=None, response_deserializer=None)
        arg = reqs[0] if method.streaming in ("unary", "server_stream") else iter(reqs)
        got = rpc(arg, timeout=5)
        return [got] if method.streaming in ("unary", "client_stream") else list(got)


def test_every_mode_matches_grpcio_and_decodes_as_python(seeds: schema.Schema, py_server: peer.PythonServer) -> None:
    methods = [m for m in seeds.methods() if m.service == ROUTES]
    assert sorted(m.streaming for m in methods) == ["bidi", "client_stream", "server_stream", "unary"]
    with goclient.GoClient(schema.Connection(py_server.address), seeds.serialized()) as go:
        for m in methods:
            reqs = _requests(seeds, m.name)
            out = go.call(_probe_call(m, reqs))
            want = _grpcio(py_server.address, m, reqs)
            assert (out["id"], out["code"], out["error"]) == (m.name, 0, None), out
            got = [base64.b64decode(r) for r in out["responses"]]
            assert got == want and got, f"{m.name}: the Go client got other bytes than grpcio"
            cls = GetMessageClass(m.output)
            assert [d["json"] for d in out["decoded"]] == [json_format.MessageToDict(cls.FromString(b)) for b in want]
            assert not any(d["unknown_fields"] for d in out["decoded"])


def test_container_runner(seeds: schema.Schema, py_server: peer.PythonServer) -> None:
    if peer.docker_client() is None:
        pytest.skip("NO DOCKER ENGINE on this machine: the Go client's container NOT tested (run `make setup`)")
    m = seeds.method(f"{ROUTES}/GetFeature")
    with goclient.GoClient(schema.Connection(py_server.address), seeds.serialized(), runner="docker") as go:
        assert go.describe().startswith("Go probe client container")
        out = go.call(_probe_call(m, _requests(seeds, m.name)))  # the host's loopback, through host networking
        container = go._container
        container.reload()
        host = container.attrs["HostConfig"]
        assert (host["NetworkMode"], host["ReadonlyRootfs"], host["CapDrop"], container.attrs["Config"]["User"]) == (
            "host", True, ["ALL"], "65532:65532")
        assert container.labels.get(peer.SESSION_LABEL) == peer.SESSION  # reaped after a crash like the peers
    assert out["code"] == 0 and out["decoded"][0]["json"]["name"] == "Old Harbor Lighthouse", out
    assert _gone(container), "the Go client's container is still there 10 s after close()"


def _gone(container: Any) -> bool:
    """Whether the container is removed within 10 s (auto_remove and close() race to remove it)."""
    import docker.errors

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            container.reload()
        except docker.errors.NotFound:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("runner", ["process", "docker"])
def test_mtls_authority_and_token(runner: str, seeds: schema.Schema, seed_gen: ModuleType,
                                  tmp_path: Path) -> None:
    """The certificate files reach the client in either runner (a container reads copies), and the
    server certificate is verified against --authority."""
    if runner == "docker" and peer.docker_client() is None:
        pytest.skip("NO DOCKER ENGINE on this machine: the Go client's container NOT tested (run `make setup`)")
    folder = certs.make(tmp_path / "certs")
    m = seeds.method(f"{ROUTES}/GetFeature")
    with peer.PythonServer(seed_gen, certs=folder) as server:
        conn = schema.Connection(server.addresses["mtls"], tls=True, ca=folder / "ca.pem", cert=folder / "client.pem",
                                 key=folder / "client.key", authority=certs.OVERRIDE_NAME, token="sesame")
        with goclient.GoClient(conn, runner=runner) as go:
            ok = go.call(_probe_call(m, _requests(seeds, m.name)))
        wrong = replace(conn, authority="not.the.server.test")
        with goclient.GoClient(wrong, runner=runner) as go:
            refused = go.call(_probe_call(m, _requests(seeds, m.name)))
    assert ok["code"] == 0 and ok["error"] is None, ok
    assert refused["code"] == grpc.StatusCode.UNAVAILABLE.value[0] and refused["error"].startswith("could not connect")


@pytest.mark.parametrize("race", ["exit before the write", "stderr read late"])
def test_a_client_that_exits_says_why(seeds: schema.Schema, monkeypatch: pytest.MonkeyPatch, race: str) -> None:
    """The client exits at once (bad --target), before or after the call is written: a race, whose
    either side must name the call, the exit and the client's own reason, whenever its stderr is read."""
    m = seeds.method(f"{ROUTES}/GetFeature")
    if race == "stderr read late":
        read = goclient.GoClient._read_stderr
        monkeypatch.setattr(goclient.GoClient, "_read_stderr", lambda self, lines: (time.sleep(0.5), read(self, lines)))
    with goclient.GoClient(schema.Connection("no-port-here")) as go:
        if race == "exit before the write":
            go._proc.wait(10)  # type: ignore[union-attr]  # the write then meets a closed pipe
        with pytest.raises(goclient.GoClientError, match=r"(?s)exited \(status 2\) at call .*GetFeature.*bad --target"):
            go.call(_probe_call(m, _requests(seeds, m.name)))
        with pytest.raises(goclient.GoClientError, match=r"exited \(status 2\) at call .*GetFeature"):
            go.call(_probe_call(m, _requests(seeds, m.name)))  # and stays exited for the next call


def test_no_go_and_no_docker_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTEROP_CACHE_DIR", str(tmp_path))  # nothing built there

    def nothing() -> str:
        raise gotoolchain.GoToolchainError(gotoolchain.INSTALL)

    monkeypatch.setattr(gotoolchain, "current", nothing)
    with pytest.raises(goclient.GoClientError, match="cannot be built: the Go peer needs a Go toolchain.*"
                                                     "probe with the Python clients only"):
        goclient.build()


def test_an_outcome_that_never_comes_leaves_the_client_out_of_step(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    hang = grpc.unary_unary_rpc_method_handler(lambda req, ctx: release.wait(10) and req)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("hang.H", {"M": hang}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setattr(goclient, "SLACK", 0.5)
    call = {"id": "h1", "method": "hang.H/M", "streaming": "unary", "requests": [""], "metadata": {}, "timeout_ms": 0}
    try:
        with goclient.GoClient(schema.Connection(f"127.0.0.1:{port}")) as go:
            with pytest.raises(goclient.GoClientError, match="gave no outcome for call h1 hang.H/M within 0 s"):
                go.call(call)
            release.set()  # its outcome comes now, late: it must not pass for the next call's
            with pytest.raises(goclient.GoClientError, match="out of step since: no outcome for call h1"):
                go.call({**call, "id": "h2"})
    finally:
        release.set()
        server.stop(0)


def test_the_go_client_is_built_against_the_grpc_go_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$INTEROP_GRPC_GO / $INTEROP_PROTOBUF_GO (the version matrix's axes) reach the probe's Go client as
    they reach the peer: another digest, and the build copy pinned before it builds (a pin that cannot
    be had is the probe's error)."""
    monkeypatch.setenv("INTEROP_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(codegen.GRPC_GO_ENV, raising=False)
    monkeypatch.delenv(codegen.PROTOBUF_GO_ENV, raising=False)
    default = goclient.probe_digest()
    monkeypatch.setenv(codegen.GRPC_GO_ENV, "v1.77.0")
    assert goclient.probe_digest() != default
    pinned: list[tuple[Path, str]] = []

    def refuse(src: Path, version: str, *rest: str) -> None:
        pinned.append((src, version))
        raise codegen.CodegenError(f"{codegen.GRPC_GO_ENV}={version}: the Go module graph selected grpc-go v9 instead")

    monkeypatch.setattr(codegen, "_pin_grpc_go", refuse)
    with pytest.raises(goclient.GoClientError, match="cannot be built: INTEROP_GRPC_GO=v1.77.0: the Go module graph"):
        goclient.build()
    assert [v for _, v in pinned] == ["v1.77.0"] and (pinned[0][0] / "go.mod").exists()
    assert pinned[0][0].is_relative_to(tmp_path)  # a build copy in the cache, never go_peer/ itself


def test_an_override_that_is_no_version_is_the_probes_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTEROP_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(codegen.GRPC_GO_ENV, "1.77")
    with pytest.raises(goclient.GoClientError, match="cannot be built: INTEROP_GRPC_GO='1.77' is not a grpc-go module version"):
        goclient.build()
