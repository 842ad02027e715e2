"""`make bench`: the issue 19 goal "a one-message proto set finishes within 1.3 x its slowest single
case", measured (never asserted in a test: a stopwatch flakes on a loaded machine; the test suite
checks the overlap itself from the runner's recorded windows, tests/test_connection_interop.py).

A proto set of one message and one unary method is written to a temporary folder, run once to warm
the caches and the peer, then run again: the wall clock of the whole command (as a user waits for
it) against the slowest case's duration, and the JSON's run.timeline says when each direction's
slowest case started.

    .venv/bin/python ci/bench_overlap.py [-- extra run options]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "harness.cli"]
ONE_MESSAGE = ('syntax = "proto3";\npackage onemsg.v1;\nmessage Ping { string text = 1; }\n'
               "service One { rpc Echo(Ping) returns (Ping); }\n")


def main(extra: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-overlap-") as tmp:
        protos = Path(tmp) / "protos"
        protos.mkdir()
        (protos / "one.proto").write_text(ONE_MESSAGE)
        out = Path(tmp) / "results.json"
        cmd = [*CLI, "run", "--protos", str(protos), "--json", str(out), *extra]
        subprocess.run(cmd, cwd=REPO, capture_output=True, check=False)  # warm: code, peer image
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")
            return 1
        doc = json.loads(out.read_text())
    slowest = max(doc["results"], key=lambda r: r.get("duration_ms") or 0)
    slow_s = slowest["duration_ms"] / 1000
    starts = [w["start_s"] for w in doc["run"]["timeline"] if w["case"] == slowest["case"]]
    print(f"one-message set: {len(doc['results'])} case runs in {wall:.1f} s; slowest case {slow_s:.1f} s "
          f"({slowest['direction']} {slowest['case']}): {wall / slow_s:.2f} x (goal <= 1.3); that case "
          f"started at {min(starts):.1f}-{max(starts):.1f} s in its {len(starts)} directions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] if sys.argv[1:2] != ["--"] else sys.argv[2:]))
