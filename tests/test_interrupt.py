"""An interrupted run keeps what it measured: a real `grpc-interop run`, stopped by SIGINT or SIGTERM
mid-run, writes valid JSON and JUnit marked incomplete, lists what did not run, and exits 3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import EXIT_INCOMPLETE
from harness.report import results

PROTOS = Path(__file__).resolve().parents[1] / "protos"


@pytest.mark.interop
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_writes_incomplete_but_valid_reports(tmp_path: Path, sig: signal.Signals) -> None:
    # py→py and pyaio→pyaio: Python peers only, so the test needs neither Go nor Docker; ~900 cases each
    cmd = [sys.executable, "-m", "harness.cli", "run", "--protos", str(PROTOS), "--direction", "py-py",
           "--direction", "pyaio-pyaio", "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"),
           "--markdown", str(tmp_path / "r.md")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = []
    for line in proc.stdout:  # the versions line comes once the plan is made, just before the cases run
        out.append(line)
        if line.startswith("versions:"):
            break
    else:
        pytest.fail("the run ended before it started its cases:\n" + "".join(out))
    time.sleep(6)  # the peers start, then cases run: py→py takes about 12 s, both directions about 25 s
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    text = "".join(out) + rest
    assert proc.returncode == EXIT_INCOMPLETE, text
    assert f"interrupted ({sig.name})" in text and "not run: " in text

    doc = json.loads((tmp_path / "r.json").read_text())  # valid JSON
    run = doc["run"]
    assert run["complete"] is False and run["interrupted"] == sig.name
    done = {(r["direction"], r["case"]) for r in doc["results"]}
    missing = {tuple(p) for p in run["not_run"]}
    expected = {(d, c) for d, cs in run["catalogue"]["expected"].items() for c in cs}
    assert done and missing, "the signal came before any result or after the last one: nothing tested"
    assert done | missing == expected and not done & missing
    assert run["versions"]["grpcio"] and run["versions"]["grpc_go"] == "not used"

    root = ET.parse(tmp_path / "r.xml").getroot()  # valid XML
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["complete"] == "false" and props["interrupted"] == sig.name
    skipped = [t for t in root.iter("testcase") if (s := t.find("skipped")) is not None
               and "did not run" in s.get("message")]
    assert len(skipped) == len(missing)
    assert "INCOMPLETE" in (tmp_path / "r.md").read_text()

    # report merge refuses it without the flag, naming what is missing; with the flag it merges it
    with pytest.raises(results.MergeError, match="is incomplete"):
        results.merge([results.read(tmp_path / "r.json")])
    merged = results.merge([results.read(tmp_path / "r.json")], allow_incomplete=True)
    assert set(merged.missing) == missing
