"""The command line: listing, a failing run's exit code and report, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli import main

REPO = Path(__file__).resolve().parent.parent
PROTOS = str(REPO / "protos")


def test_cases_lists_every_seed_case(seed_gen, capsys) -> None:
    assert main(["cases", "--protos", PROTOS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 50
    assert any(line.startswith("tutorial.HelloService/BidiHello/ping_pong\tbidi\t") for line in lines)


def test_failing_run_exits_non_zero_with_matrix_and_repro(seed_gen, tmp_path: Path, capsys) -> None:
    cases = tmp_path / "c.yaml"
    cases.write_text("cases:\n  - name: users.Users/GetUsers/wrong\n    calls: [{method: users.Users/GetUsers, "
                     "requests: [{user: [{username: a}]}], expect: {responses: [{user: {username: b}}]}}]\n")
    code = main(["run", "--protos", PROTOS, "--cases", str(cases), "--no-generated", "--direction", "py→py",
                 "--peer-runner", "process", "--json", str(tmp_path / "r.json"), "--min-coverage", "100"])
    out = capsys.readouterr().out
    assert code == 1
    # the coverage of what ran: one line, the JSON beside the results, and the number under --min-coverage
    assert "coverage: fields " in out and "coverage too low: fields: " in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert [r["case"] for r in data["results"]] == ["users.Users/GetUsers/wrong"]
    assert 0 < data["coverage"]["directions"]["py→py"]["fields"]["covered"] < data["coverage"]["directions"]["py→py"]["fields"]["total"]
    assert "users.Users/GetUsers" in out and "✗ 0/1" in out
    assert 'call 0: responses[0].user.username: expected "b", got "a"' in out
    assert f"grpc-interop run --protos {PROTOS} --cases {cases} --direction py-py --peer-runner process -k users.Users/GetUsers/wrong" in out
    assert "1 fail" in out


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["cases", "--protos", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", "--protos", PROTOS, "--direction", "py→rust"]) == 2
    assert "unknown direction 'py→rust'" in capsys.readouterr().err
