"""The two scratch faults of issue 20, each found by `grpc-interop fuzz` in its protocol dimension and
shrunk by Hypothesis to a minimal example whose reproduce command fails with the fault and passes
without it. The faults are compiled into the Go peer only under their build tags
(go_peer/internal/engine/faults_injected.go); the normal peer has neither (faults.go):
- interop_fault_timeout_round_up: a Go client that rounds its timeout up to whole seconds
  (dimension deadlines: the Python server's server.deadline check);
- interop_fault_drop_empty_trailer: a Go server that drops a trailer whose value is empty
  (dimension metadata: the Python client's trailers check)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TAGS = "interop_fault_drop_empty_trailer,interop_fault_timeout_round_up"
PROTO = """
syntax = "proto3";
package fuzzfaults.v1;
message Note { string text = 1; }
service Notes { rpc Put(Note) returns (Note); }
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=REPO)


@pytest.mark.interop
def test_both_scratch_faults_are_found_shrunk_and_reproduced(tmp_path: Path) -> None:
    protos = tmp_path / "protos"
    protos.mkdir()
    (protos / "faults.proto").write_text(PROTO)
    saved = tmp_path / "failures.yaml"
    proc = cli("fuzz", "--protos", str(protos), "--dimensions", "deadlines,metadata", "--direction", "go-py",
               "--direction", "py-go", "--seed", "1", "--examples", "10", "--budget", "1", "--go-build-tags", TAGS,
               "--peer-runner", "process", "--save-failures", str(saved), "--shrink-budget", "30")
    out = proc.stdout
    assert proc.returncode == 1, out[-5000:] + proc.stderr[-3000:]
    assert "FUZZ FAIL: go→py fuzzfaults.v1.Notes/Put (unary), dimension deadlines" in out, out
    assert "FUZZ FAIL: py→go fuzzfaults.v1.Notes/Put (unary), dimension metadata" in out, out
    # shrunk to the minimal examples: the shortest timeout drawn past a whole second, one empty trailer
    assert re.search(r'server\.deadline: expected 2001 ms \(from 1501 to [\d.]+\), got 2\d\d\d ms', out), out
    assert 'call 0: trailers["0"]: expected [""], got []' in out, out
    commands = [shlex.split(line) for line in out.splitlines() if line.startswith("  grpc-interop run ")]
    assert len(commands) == 2 and all("-min" in c[-1] for c in commands), commands
    for command in commands:
        assert command[command.index("--go-build-tags") + 1] == TAGS
        # the reproduce command fails with the fault ...
        again = cli(*command[1:])
        assert again.returncode == 1, again.stdout[-3000:]
        # ... and passes with the normal peer: the failure is the fault's, not a false alarm
        i = command.index("--go-build-tags")
        normal = cli(*command[1:i], *command[i + 2:])
        assert normal.returncode == 0, normal.stdout[-3000:] + normal.stderr[-3000:]
