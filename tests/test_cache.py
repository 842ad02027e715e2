"""The cache folder: $INTEROP_CACHE_DIR, else $XDG_CACHE_HOME/grpc-interop, else ~/.cache/grpc-interop;
the CLI's --cache-dir and pytest's --interop-cache-dir choose it too, and the build goes there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cache

REPO = Path(__file__).resolve().parent.parent
# one small file: where the cache goes does not depend on the set, and generating a big one cold in
# each of these tests cost seconds apiece
PROTOS = REPO / "tests" / "data" / "coverage_protos"


def test_env_var_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(cache.ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache.root() == tmp_path / "home" / ".cache" / "grpc-interop"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # invalid per the XDG spec: ignored
    assert cache.root() == tmp_path / "home" / ".cache" / "grpc-interop"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.root() == tmp_path / "xdg" / "grpc-interop"
    monkeypatch.setenv(cache.ENV, str(tmp_path / "mine"))
    assert cache.root() == tmp_path / "mine"


def test_a_relative_cache_dir_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Go commands run in other working directories: the folder must be absolute."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(cache.ENV, "c")
    assert cache.root() == tmp_path / "c"
    assert cache.use("d") == tmp_path / "d" and os.environ[cache.ENV] == str(tmp_path / "d")


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("where", ["before", "after"])
def test_cli_cache_dir_flag_beats_the_environment(tmp_path: Path, where: str) -> None:
    env = {**os.environ, cache.ENV: str(tmp_path / "from-env"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    flag = ["--cache-dir", str(tmp_path / "from-flag")]
    args = [*flag, "cases", "--protos", str(PROTOS)] if where == "before" else ["cases", "--protos", str(PROTOS), *flag]
    proc = _cli(*args, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "from-flag" / "gen").iterdir()), "the generated code should be in --cache-dir"
    assert not (tmp_path / "from-env").exists() and not (tmp_path / "xdg").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["from-flag"], "nothing else in the working directory"


def test_xdg_cache_home_is_used_when_nothing_else_is_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != cache.ENV} | {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    proc = _cli("cases", "--protos", str(PROTOS), env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "xdg" / "grpc-interop" / "gen").iterdir())


def test_pytest_option_interop_cache_dir(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Collecting the plugin's tests generates the set's code, into --interop-cache-dir. `-m "not interop"`
    keeps the Go peer out: collecting interop tests builds it (for Go's findings), which in an empty
    cache folder is a cold `go build` of minutes; the Go build's folder is test_installed.py's point."""
    result = pytester.runpytest_subprocess("--interop-protos", str(PROTOS), "--interop-cache-dir", str(tmp_path / "c"),
                                           "-m", "not interop", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED, result.stdout.str()[-3000:]  # all deselected
    assert "deselected" in result.stdout.str() and "/Call/" not in result.stdout.str(), result.stdout.str()[-3000:]
    assert list((tmp_path / "c" / "gen").iterdir())
    assert not (tmp_path / "c" / "go").exists(), "the Go peer was built though no interop test was selected"


def test_clean_cache_empties_the_cache_folder(tmp_path: Path) -> None:
    (tmp_path / "c" / "go").mkdir(parents=True)
    (tmp_path / "c" / "go" / "interop-peer").write_text("x")
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}  # no containers to look at
    proc = _cli("--cache-dir", str(tmp_path / "c"), "clean", "--cache", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "c").exists() and f"removed the cache folder {tmp_path / 'c'}" in proc.stdout
