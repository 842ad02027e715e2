"""The Go peer's own unit tests and vet, run in the generated build copy (they need the generated code)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.protoset.codegen import build_go
from harness.protoset import discover

REPO = Path(__file__).resolve().parent.parent


def test_go_vet_and_unit_tests() -> None:
    build = build_go(discover(REPO / "protos"))
    for cmd in (["go", "vet", "./..."], ["go", "test", "-count=1", "./..."]):
        proc = subprocess.run(cmd, cwd=build.src, capture_output=True, text=True, env=None)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed in {build.src}:\n{proc.stdout}\n{proc.stderr}"
