"""The sharded workflow (ci/github/interop-shards.yml) and `make ci-local` run the same jobs: the same
shard count, the same backend axis, the same scripts; the merge job's command is a valid CLI call.
(tests/test_action.py runs actionlint over every workflow in ci/github/, this one included.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from harness import cli

REPO = Path(__file__).resolve().parent.parent
FLOW = yaml.safe_load((REPO / "ci" / "github" / "interop-shards.yml").read_text())


def test_matrix_is_shards_by_backend_without_fail_fast() -> None:
    job = FLOW["jobs"]["shard"]
    shards = int(FLOW["env"]["SHARDS"])
    assert job["strategy"]["fail-fast"] is False
    assert job["strategy"]["matrix"]["shard"] == list(range(1, shards + 1)), "matrix and SHARDS disagree"
    assert job["strategy"]["matrix"]["backend"] == ["upb", "python"]
    assert job["env"]["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] == "${{ matrix.backend }}"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^BACKENDS \?= upb python$", makefile, re.M), "make ci-local runs the workflow's backends"
    assert re.search(rf"^SHARDS \?= {shards}$", makefile, re.M)


def test_jobs_run_the_scripts_ci_local_runs_and_upload_their_json() -> None:
    steps = FLOW["jobs"]["shard"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    assert any(r.startswith("ci/shard-job.sh ") for r in runs)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()", "a failing shard still uploads its results"
    local = (REPO / "ci" / "ci-local.sh").read_text()
    assert "shard-job.sh" in local and "report merge" in local


def test_merge_job_command_is_a_valid_merge_that_writes_the_summary() -> None:
    merge = FLOW["jobs"]["merge"]
    assert merge["needs"] == "shard" and merge["if"] == "always()"
    line = next(s["run"] for s in merge["steps"] if "report merge" in s.get("run", ""))
    text = " ".join(line.split()).replace("$SHARDS", "3").replace('"$GITHUB_STEP_SUMMARY"', "/tmp/summary.md")
    argv = shlex.split(text)
    assert argv[0] == ".venv/bin/grpc-interop"
    args = cli.parser().parse_args(argv[1:])
    assert (args.cmd, args.report_cmd) == ("report", "merge")
    assert args.markdown == Path("/tmp/summary.md") and args.html and args.json and args.junit
    assert not args.allow_incomplete, "an interrupted shard fails the merged run"
