"""Shared fixtures for the unit tests."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, seed, settings

from harness.protoset.codegen import generate_python, import_python
from harness.protoset import discover

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def seed_gen() -> ModuleType:
    """The seed protos' generated Python package, imported once (descriptors are process-global)."""
    return import_python(generate_python(discover(REPO / "protos")))


@pytest.fixture(scope="module")
def draw(request: pytest.FixtureRequest) -> Callable[[Any, int], list[Any]]:
    """draw(strategy, n): n values of a Hypothesis strategy, seeded with the test module's SEED as the
    fuzz command seeds its draws. The values also depend on the literals Hypothesis finds in the
    modules loaded so far (which tests share the process), so what a test asserts of them, such as
    every kind coming up in n draws, must hold with room to spare, not for one exact sequence."""
    fixed = request.module.SEED

    def values(strategy: Any, n: int) -> list[Any]:
        out: list[Any] = []

        @seed(fixed)
        @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
        @given(strategy)
        def collect(value: Any) -> None:
            out.append(value)

        collect()
        return out

    return values


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) of this repository, the wheel built FROM the sdist (`python -m build`), so a file
    missing from the sdist is missing from the wheel too. Built from a copy of the checkout's files:
    the build writes egg-info and build/ beside the sources, never into the repository."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return next(out.glob("*.tar.gz")), next(out.glob("*.whl"))


def _alpn_probe(address: str, certs_dir: Path, offered: list[str]) -> tuple[str | None, bytes]:
    """A TLS client offering the ALPN protocols `offered` (Python's ssl module): the protocol the
    listener selects, and the first bytes it answers to an HTTP/2 connection preface (b"": closed)."""
    ctx = ssl.create_default_context(cafile=str(certs_dir / "ca.pem"))
    ctx.set_alpn_protocols(offered)
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))  # preface + SETTINGS
        return tls.selected_alpn_protocol(), tls.recv(64)



@pytest.fixture()
def alpn_probe() -> Any:
    """_alpn_probe, for the TLS listeners' tests (Python's in test_channels.py, Go's in test_peer.py)."""
    return _alpn_probe


# What a case name's third part says when the case carries no value of the set's own types. These
# patterns are the same for any set: the full run of protos/ (test_interop.py) proves them in every
# direction; other tests' runs of other sets only pay for them (the size-limit and keepalive cases above all).
GENERIC_KINDS = {"protocol", "stream", "tls", "mtls", "connection"}


def _own_cases(protos: Path, *options: str) -> list[str]:
    """`-k` arguments for the cases that carry a set's own types: every value case of every method
    (`<service>/<method>/<Type>/`) and the standard services' cases (reflection serves the set's files).
    options: more of `grpc-interop cases`' options (-I, --files), as the run will get them."""
    listed = subprocess.run([sys.executable, "-m", "harness.cli", "cases", "--protos", str(protos), *options],
                            capture_output=True, text=True, timeout=600, cwd=REPO, check=True).stdout.splitlines()
    prefixes = {"/".join(line.split("\t")[0].split("/")[:3]) + "/" for line in listed}
    return [arg for p in sorted(prefixes) if p.split("/")[2] not in GENERIC_KINDS for arg in ("-k", p)]


@pytest.fixture()
def own_cases() -> Any:
    """_own_cases: the smallest selection that still proves a set's own types cross (test_any_protos.py,
    test_prototrees_interop.py)."""
    return _own_cases


@pytest.fixture(scope="session")
def outer_caches() -> dict[str, str]:
    """The harness's cache folder and Go's caches as this session sees them, before pytester moves HOME."""
    from harness import cache

    go = shutil.which("go")
    names = ["GOCACHE", "GOMODCACHE", "GOPATH"]
    values = subprocess.run([go, "env", *names], capture_output=True, text=True, check=True).stdout.split("\n") \
        if go else []
    return {cache.ENV: str(cache.root()), **{k: v for k, v in zip(names, values) if v}}


@pytest.fixture()
def pytester(pytester: pytest.Pytester, outer_caches: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester with this session's caches: it points HOME at its temporary folder, so each pytest it
    ran generated the code and built the Go peer (protoc plugins, grpc-go, the peer) from nothing,
    minutes apiece at a busy machine's pace. Cached entries are keyed by content, so sharing is exact;
    a test about the cache folder itself names its own (--interop-cache-dir, XDG_CACHE_HOME)."""
    for name, value in outer_caches.items():
        monkeypatch.setenv(name, value)
    return pytester
