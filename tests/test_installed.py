"""The harness as a user gets it: a wheel (built from the sdist) installed into a fresh venv outside
the clone, run in a folder holding only protos. Nothing may be written into the venv's site-packages
or beside the protos; everything built goes to $XDG_CACHE_HOME/grpc-interop, and a second run reuses
it without building anything. The pytest plugin works there too, with no conftest."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from harness.run import capabilities

REPO = Path(__file__).resolve().parent.parent
NEWUSER = REPO / "tests" / "data" / "newuser_protos"
RUNNER = os.environ.get("INTEROP_PEER_RUNNER", "auto")
DIRECTIONS = ["--direction", "py-go", "--direction", "go-py"]  # both Go roles; the full run is test_any_protos'
# The installation is the point, not the catalogue: the value cases of one method (in nopkg.proto, a
# file with no package) need the whole build (protoc plugins, the Go peer) and both Go roles, yet run
# in seconds; the whole folder's cases, its size-limit and keepalive cases (20 s in go-py) included,
# made each of the three runs below cost a minute.
SELECTION = ["-k", "Pinger/Echo/Ping/",
             # and the reflection v1 cases: go→py's grpcio server lacks v1 (a capability: they do not
             # run there, but for one probe), which the plugin run below must count right
             "-k", "grpc.reflection.v1.ServerReflection/ServerReflectionInfo/standard/"]
PATTERNS = SELECTION[1::2]

pytestmark = pytest.mark.interop


def snapshot(root: Path) -> dict[str, int]:
    """Every file and folder below root, files with their modification time (folders: 0, as creating
    and removing a temporary entry inside one changes its time)."""
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns if p.is_file() else 0 for p in root.rglob("*")}


def build_products(cache_root: Path) -> dict[str, int]:
    """snapshot() of the harness's cache folder but its run logs (logs/run-*.log): every run writes one
    by design (issue 19), which is no rebuild."""
    return {k: v for k, v in snapshot(cache_root).items() if k.split("/")[0] != "logs"}


def without_go(path: str) -> str:
    """PATH minus the folders that hold a `go` command: a second run that wanted to build would fail."""
    return os.pathsep.join(d for d in path.split(os.pathsep) if d and not (Path(d) / "go").exists())


@pytest.fixture(scope="module")
def venv(dists: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel (and its dependencies from PyPI) installed."""
    root = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    proc = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", str(dists[1])],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return root


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sysconfig.get_python_version()}" / "site-packages"


def test_installed_wheel_runs_in_a_folder_of_protos_and_reuses_its_cache(venv: Path, tmp_path: Path) -> None:
    """Selection: one method's value cases and the reflection v1 cases (SELECTION) in py→go and go→py.
    Enough, because what is tested is the installation: the first run must still build everything
    (protoc plugins, the Go peer) into the user's cache, serve and call in both Go roles, and the
    second reuse it all; the catalogue itself is proved by the full run and test_any_protos."""
    protos = tmp_path / "protos"
    shutil.copytree(NEWUSER, protos)
    xdg = tmp_path / "xdg"
    # Go's own build cache also follows XDG_CACHE_HOME; keep the usual one (content-addressed, shared
    # safely) so only the harness's cache starts empty, as for a user who has built Go code before.
    gocache = subprocess.run(["go", "env", "GOCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k != "INTEROP_CACHE_DIR"}
    env |= {"XDG_CACHE_HOME": str(xdg), "GOCACHE": gocache, "INTEROP_PEER_RUNNER": RUNNER}
    installed, before = site_packages(venv), snapshot(site_packages(venv))
    tool = str(venv / "bin" / "grpc-interop")

    first = subprocess.run([tool, "run", "--protos", ".", *DIRECTIONS, *SELECTION], cwd=protos, env=env,
                           capture_output=True, text=True, timeout=1200)
    assert first.returncode == 0, first.stdout[-20000:] + first.stderr[-5000:]
    assert " pass" in first.stdout.splitlines()[-1] and " fail" not in first.stdout.splitlines()[-1]
    assert snapshot(installed) == before, "the run wrote into the venv's site-packages"
    assert sorted(snapshot(protos)) == sorted(snapshot(NEWUSER)), "the run wrote beside the protos"
    # the selection's cases (listed before the cache's snapshot: nothing may change it after this)
    listed = subprocess.run([tool, "cases", "--protos", "."], cwd=protos, env=env, capture_output=True, text=True,
                            timeout=600).stdout.splitlines()
    names = [line.split("\t", 1)[0] for line in listed if line]
    assert len(names) == int(first.stdout.splitlines()[0].split(" cases;")[0].rsplit(" ", 1)[1])
    selected = [n for n in names if any(p in n for p in PATTERNS)]
    assert all(any(p in n for n in selected) for p in PATTERNS), PATTERNS  # each pattern selects cases
    built = build_products(xdg / "grpc-interop")
    assert any(k.startswith("go/") and k.endswith("/interop-peer") for k in built), sorted(built)[:20]
    assert any(k.startswith("tools/bin/protoc-gen-go-") for k in built)

    # the second run: the same cache, untouched, and no Go toolchain needed
    second = subprocess.run([tool, "run", "--protos", ".", *DIRECTIONS, *SELECTION], cwd=protos,
                            env=env | {"PATH": without_go(env["PATH"])}, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-20000:] + second.stderr[-5000:]
    assert first.stdout.splitlines()[-1].split(" in ")[0] == second.stdout.splitlines()[-1].split(" in ")[0]
    assert build_products(xdg / "grpc-interop") == built, "the second run rebuilt or rewrote cached files"
    assert snapshot(installed) == before
    assert sorted(snapshot(protos)) == sorted(snapshot(NEWUSER))

    # the pytest plugin from the user's folder: no conftest, no test file
    result = subprocess.run([str(venv / "bin" / "pytest"), "--interop-protos", ".", "--interop-direction", "go-py",
                             "-k", " or ".join(PATTERNS), "-q"], cwd=protos, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    # every selected case is a test: passed, or a known divergence or a capability's probe (xfailed: grpcio-reflection
    # has no v1), but the cases of a capability go→py's server lacks, which do not run (docs/capabilities.md)
    caps = capabilities.load()
    probes = capabilities.probes(caps, "go-py", selected)
    cases = len([n for n in selected if n in probes or not any(c.covers("go-py", n) for c in caps)])
    assert 0 < len(probes) and cases < len(selected)
    last = result.stdout.splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|xfailed|failed|error)", last)}
    assert counts.get("passed", 0) + counts.get("xfailed", 0) == cases and set(counts) <= {"passed", "xfailed"}, \
        result.stdout[-3000:]
    assert "grpc-interop::test_interop[go-py:" in subprocess.run(
        [str(venv / "bin" / "pytest"), "--interop-protos", ".", "--interop-direction", "go-py", "--collect-only", "-q",
         "-p", "no:cacheprovider"], cwd=protos, env=env, capture_output=True, text=True, timeout=600).stdout
    # pytest itself writes its assertion-rewrite caches beside every plugin it loads (`*-pytest-<v>.pyc`)
    # and its .pytest_cache in the rootdir; nothing else may appear
    new = set(snapshot(installed)) - set(before)
    assert all(Path(n).parent.name == "__pycache__" and "-pytest-" in Path(n).name for n in new), sorted(new)
    assert {k.split("/")[0] for k in set(snapshot(protos)) - set(snapshot(NEWUSER))} <= {".pytest_cache"}
    assert build_products(xdg / "grpc-interop") == built, "the pytest run rebuilt the Go peer"
