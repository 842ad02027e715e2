"""Connection behaviour (issue 10 item 4) on the wire, in all seven directions: keepalive pings
against a strict enforcement policy end in GOAWAY too_many_pings (each client's message is
recorded in the result's notes), a stream outlives its connection's maximum age, and a server that
goes away comes back on the same port. Every case passes or matches a documented known divergence."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.runner import DIRECTIONS

REPO = Path(__file__).resolve().parent.parent
RUNNER = os.environ.get("INTEROP_PEER_RUNNER", "process")
PATTERNS = ("keepalive_too_many_pings", "max_age_in_flight", "server_restart")

pytestmark = pytest.mark.interop


def test_connection_cases_in_every_direction(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--protos", str(REPO / "protos"),
                           "--peer-runner", RUNNER, "-k", "/connection/", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    results = json.loads(out.read_text())["results"]
    got = {(r["direction"], r["case"].rsplit("/", 1)[1]): r for r in results}
    assert set(got) == {(d.name, p) for d in DIRECTIONS for p in PATTERNS}, sorted(got)
    for (direction, pattern), r in got.items():
        assert r["verdict"] == "pass", (direction, pattern, r["diffs"])
        if pattern == "keepalive_too_many_pings":
            # the GOAWAY ended the held call, and the client said so; the next call reconnected
            note = r["notes"]["call 0"]
            assert note.startswith("UNAVAILABLE: "), (direction, note)
            # grpc-go and grpcio clients name the GOAWAY's debug data; from a grpcio server, both
            # clients get its own status message (docs/peer-contract.md lists each wording)
            assert "too_many_pings" in note or "Too many pings" in note, (direction, note)
            assert "call 1" not in r["notes"], (direction, r["notes"])
        else:
            assert not r.get("notes"), (direction, pattern, r["notes"])
    # issue 19: the cases that wait on the clock start at once in every direction. Proved by the
    # runner's recorded windows, not by a stopwatch (a timed assertion flakes on a loaded machine; the
    # wall time against the slowest case is measured by `make bench`, ci/bench_overlap.py): every
    # direction's keepalive case started while those of the Go clients (20-31 s each: grpc-go pings
    # at most every 10 s) were all still under way. One direction at a time per server would start
    # py→go's only after go→go's had ended.
    timeline = json.loads(out.read_text())["run"]["timeline"]
    keepalive = {w["direction"]: w for w in timeline if w["case"].endswith("/keepalive_too_many_pings")}
    assert set(keepalive) == {d.name for d in DIRECTIONS}, timeline
    last_start = max(w["start_s"] for w in keepalive.values())
    first_go_end = min(w["end_s"] for d, w in keepalive.items() if d.startswith("go→"))
    assert last_start < first_go_end, f"the keepalive cases did not overlap across directions: {keepalive}"
    # and quietly: grpc core's log lines (the GOAWAYs, the handshakes) went to the run's log, not here
    core = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ ", re.M)
    assert not core.search(proc.stdout) and not core.search(proc.stderr), proc.stderr[-3000:]
    log = Path(re.search(r"^log: (\S+) ", proc.stdout, re.M).group(1))
    # each line there follows the time it came
    assert re.search(r"^[\d:.]+ [IWEF]\d{4} ", log.read_text(), re.M), "the run's log keeps grpc core's lines"
