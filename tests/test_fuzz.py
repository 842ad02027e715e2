"""`grpc-interop fuzz` on the wire: a short, budgeted pass over the seed protos in all seven directions
(part of `make test`), and the seeded examples are the same in any process."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.fuzz import dims

REPO = Path(__file__).resolve().parent.parent
RUNNER = os.environ.get("INTEROP_PEER_RUNNER", "auto")
# seconds of rounds: one round always runs, and one round is the point here (every method's examples
# in all seven directions, hundreds of them); a second round is more of the same kind of draws, and
# 15 s of rounds made this test 51 s at load 15. Longer passes: `grpc-interop fuzz`, the deep profile.
BUDGET = "1"
# examples per method and dimension: 1 × 9 dimensions × the seed protos' methods is past 200 (the
# done-when's count, which the test asserts; the values dimension alone drew 10 before)
EXAMPLES = "1"

# the examples of every method of the seed protos for (seed, round), as one digest
DIGEST = """
import hashlib, json, sys
from harness.cases import generate
from harness.fuzz import examples
from harness.protoset import discover
from harness.protoset.codegen import generate_python, import_python, load
ps = load(discover(sys.argv[1]))
import_python(generate_python(ps))
methods = [m for svc in generate.services(ps) for m in svc.methods]
cases = examples.draw_all(methods, int(sys.argv[2]), 0, 3)
# sort_keys: a map's entries come out of upb in an order of its own per process; the values are what count
print(len(cases), hashlib.sha256(json.dumps([c.to_json() for c in cases], sort_keys=True).encode()).hexdigest())
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=900,
                          cwd=REPO)


@pytest.mark.interop
def test_a_short_fuzz_pass_is_green_in_every_direction() -> None:
    """One round (BUDGET) of every protocol dimension this install has (the default): EXAMPLES drawn
    examples per method and dimension in all seven directions, at least 200, counted per dimension."""
    proc = cli("fuzz", "--protos", str(REPO / "protos"), "--seed", "7", "--budget", BUDGET, "--examples", EXAMPLES,
               "--peer-runner", RUNNER)
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    *_, log, summary = proc.stdout.strip().splitlines()  # the run log is named at the end (issue 19)
    assert log.startswith("log: "), log
    found = re.search(r"^(\d+) examples \((\d+) runs, .* ([\d.]+) examples/s, 0 failing; by dimension: (.*)$", summary)
    assert found, summary
    examples, runs = int(found[1]), int(found[2])
    assert examples >= 200 and runs == 7 * examples, summary  # every example in every direction
    counts = dict(item.split(" ") for item in found[4].split(", "))
    assert tuple(counts) == dims.available() and all(int(n) > 0 for n in counts.values()), summary
    assert sum(int(n) for n in counts.values()) == examples, summary


def _digest(seed: int, hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run([sys.executable, "-c", DIGEST, str(REPO / "protos"), str(seed)], capture_output=True,
                          text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc.stdout.strip()


def test_same_seed_same_examples_in_any_process() -> None:
    first = _digest(7, "1")
    assert int(first.split()[0]) > 50
    assert _digest(7, "2") == first  # another process, another hash seed: the same examples
    assert _digest(8, "1") != first
    assert hashlib.sha256(b"").hexdigest() not in first
