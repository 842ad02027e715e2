"""Three real shards, merged with `report merge`, are one unsharded run: every (direction, case)
exactly once, the same verdicts, the same coverage. (The whole of protos/ in BENCHMARKS.md.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# a Python-only and a Go-only direction: both peers, both client kinds of batch; routeguide has
# heavy cases (deadline, size limit) and light ones, and a hand-written seed service
SELECTION = ["--protos", str(REPO / "protos"), "-k", "routeguide.", "--direction", "py-py", "--direction", "go-go",
             "--peer-runner", os.environ.get("INTEROP_PEER_RUNNER", "auto")]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.interop
def test_three_shards_merged_equal_one_unsharded_run(tmp_path: Path) -> None:
    whole = _run("run", *SELECTION, "--json", str(tmp_path / "whole.json"))
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]
    for i in (1, 2, 3):
        part = _run("run", *SELECTION, "--shard", f"{i}/3", "--json", str(tmp_path / f"s{i}.json"))
        assert part.returncode == 0, part.stdout[-3000:] + part.stderr[-3000:]
    shards = [json.loads((tmp_path / f"s{i}.json").read_text()) for i in (1, 2, 3)]
    assert all(s["results"] for s in shards), "a shard ran nothing: the split is not spread"
    merged = _run("report", "merge", *(str(tmp_path / f"s{i}.json") for i in (1, 2, 3)),
                  "--json", str(tmp_path / "merged.json"))
    assert merged.returncode == 0, merged.stdout[-3000:] + merged.stderr[-3000:]
    one, all3 = (json.loads((tmp_path / n).read_text()) for n in ("whole.json", "merged.json"))
    verdicts = {(r["direction"], r["case"]): r["verdict"] for r in one["results"]}
    merged_verdicts = {(r["direction"], r["case"]): r["verdict"] for r in all3["results"]}
    assert len(merged_verdicts) == len(all3["results"])  # exactly once
    assert merged_verdicts == verdicts
    assert all3["coverage"] == one["coverage"]
    # a shard left out is named, not silently dropped
    short = _run("report", "merge", str(tmp_path / "s1.json"), str(tmp_path / "s2.json"))
    assert short.returncode == 2 and "are in no input" in short.stderr
