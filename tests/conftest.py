"""Shared fixtures for the unit tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from harness.protoset.codegen import generate_python, import_python
from harness.protoset import discover

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def seed_gen() -> ModuleType:
    """The seed protos' generated Python package, imported once (descriptors are process-global)."""
    return import_python(generate_python(discover(REPO / "protos")))


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
