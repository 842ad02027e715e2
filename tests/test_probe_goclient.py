"""The probe's Go client flavour (harness/probe/goclient.py, go_peer/internal/probe): it sends the very
bytes grpcio sends and gets what grpcio gets, in all four streaming modes, from the Python seed
server; its own decode (dynamicpb + protojson) agrees with Python's json_format; it runs as a process
and as a container; and when it cannot be built or run, it says why."""

from __future__ import annotations

import base64
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message_factory import GetMessageClass

from harness.engines import peer
from harness.probe import goclient, schema
from harness.protoset import gotoolchain

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
    assert out["code"] == 0 and out["decoded"][0]["json"]["name"] == "Old Harbor Lighthouse", out
    with pytest.raises(Exception, match="No such container|404"):
        container.reload()  # removed on close


def test_a_client_that_exits_says_why(seeds: schema.Schema) -> None:
    m = seeds.method(f"{ROUTES}/GetFeature")
    with goclient.GoClient(schema.Connection("no-port-here")) as go:
        with pytest.raises(goclient.GoClientError, match=r"(?s)exited at call .*GetFeature.*bad --target"):
            go.call(_probe_call(m, _requests(seeds, m.name)))


def test_no_go_and_no_docker_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTEROP_CACHE_DIR", str(tmp_path))  # nothing built there

    def nothing() -> str:
        raise gotoolchain.GoToolchainError(gotoolchain.INSTALL)

    monkeypatch.setattr(gotoolchain, "current", nothing)
    with pytest.raises(goclient.GoClientError, match="cannot be built: the Go peer needs a Go toolchain.*"
                                                     "probe with the Python clients only"):
        goclient.build()
