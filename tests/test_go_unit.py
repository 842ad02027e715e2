"""The Go peer's own unit tests and vet, run in the generated build copy (they need the generated code)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.protoset.codegen import _go_env, build_go
from harness.protoset import discover

REPO = Path(__file__).resolve().parent.parent


def test_go_vet_and_unit_tests() -> None:
    build = build_go(discover(REPO / "protos"))
    # the peer's own build settings (CGO_ENABLED=0, -trimpath): what is tested is what runs, and the
    # Go build cache the peer's build filled serves (measured: 27 s instead of 65 s after `make setup`)
    for cmd in (["go", "vet", "-trimpath", "./..."], ["go", "test", "-trimpath", "-count=1", "./..."]):
        proc = subprocess.run(cmd, cwd=build.src, capture_output=True, text=True, env=_go_env())
        assert proc.returncode == 0, f"{' '.join(cmd)} failed in {build.src}:\n{proc.stdout}\n{proc.stderr}"
