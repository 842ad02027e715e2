"""The pytest plugin end to end (pytester): test ids, -k, and a failure that explains itself."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CASES = """
cases:
  - name: tutorial.HelloService/SayHello/right
    calls: [{method: tutorial.HelloService/SayHello, requests: [{greeting: x}], expect: {responses: [{reply: hello x}]}}]
  - name: tutorial.HelloService/SayHello/wrong
    calls: [{method: tutorial.HelloService/SayHello, requests: [{greeting: x}], expect: {responses: [{reply: hola x}]}}]
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", mycases=CASES)
    pytester.makepyfile(test_it="def test_interop(interop_run):\n    interop_run.assert_pass()\n")
    return pytester


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest_subprocess("--interop-protos", str(REPO / "protos"), "--interop-cases", "mycases.yaml",
                                  "--interop-direction", "py-py", "--interop-no-generated", "-p", "no:cacheprovider", *args)


def test_ids_and_k_filter(project: pytest.Pytester) -> None:
    result = run(project, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["test_it.py::test_interop[[]py-py:tutorial.HelloService/SayHello/right[]]",
                                 "test_it.py::test_interop[[]py-py:tutorial.HelloService/SayHello/wrong[]]"])
    run(project, "-k", "right").assert_outcomes(passed=1, deselected=1)


def test_failure_names_direction_method_case_and_how_to_reproduce(project: pytest.Pytester) -> None:
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*FAIL: py→py tutorial.HelloService/SayHello/wrong*",
        "*method: tutorial.HelloService/SayHello (unary); case file: mycases.yaml*",
        '*call 0: responses[[]0[]].reply: expected "hola x", got "hello x"*',
        "*reproduce this case alone:*",
        "*grpc-interop run --protos * --cases mycases.yaml --direction py-py --peer-runner * -k tutorial.HelloService/SayHello/wrong*",
        "*grpc-interop serve --protos * --lang py --addr 127.0.0.1:50051*",
        "*grpc-interop run * -k tutorial.HelloService/SayHello/wrong --server-address 127.0.0.1:50051*",
    ])


def test_xdist_workers_share_the_controllers_servers(project: pytest.Pytester, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    seen.mkdir()
    project.makepyfile(test_share=f"""
import os
def test_a(interop_session):
    open(os.path.join({str(seen)!r}, os.environ["PYTEST_XDIST_WORKER"]), "w").write(
        interop_session.server("py").address)
test_b = test_a
test_c = test_a
test_d = test_a
""")
    result = run(project, "-n", "2", "--dist", "each", "--peer-runner", "process")
    result.assert_outcomes(passed=10, failed=2)  # on each worker: four sharing tests and `right`; `wrong` fails
    addresses = {p.read_text() for p in seen.iterdir()}
    assert len(list(seen.iterdir())) == 2, "both workers should have run sharing tests"
    assert len(addresses) == 1, f"workers used different servers: {addresses}"
    # the controller measured coverage from the workers' reports
    summary = [line for line in result.stdout.lines if line.startswith("coverage: fields ")]
    assert summary and not summary[0].startswith("coverage: fields 0.0%"), result.stdout.str()[-3000:]


def test_a_proto_set_with_no_cases_fails_like_the_cli(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Nothing to exchange is never a green run: pytest fails as `grpc-interop run` does."""
    import subprocess
    import sys

    protos = tmp_path / "enums_only"
    protos.mkdir()
    (protos / "colors.proto").write_text('syntax = "proto3";\npackage colors;\nenum Color { COLOR_UNSPECIFIED = 0; RED = 1; }\n')
    pytester.makepyfile(test_it="def test_interop(interop_run):\n    interop_run.assert_pass()\n")
    result = pytester.runpytest_subprocess("--interop-protos", str(protos), "--interop-direction", "py-py",
                                           "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*gives no cases*"])
    cli = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--protos", str(protos), "--direction", "py-py",
                          "--peer-runner", "process"], capture_output=True, text=True, timeout=300)
    assert cli.returncode != 0, cli.stdout + cli.stderr


def test_a_repo_with_no_tests_gets_the_plugins_own_interop_test(pytester: pytest.Pytester) -> None:
    """`pytest --interop-protos DIR` in a user's repository: no conftest, no test file."""
    pytester.makefile(".yaml", mycases=CASES)
    result = run(pytester, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["grpc-interop::test_interop[[]py-py:tutorial.HelloService/SayHello/right[]]",
                                 "grpc-interop::test_interop[[]py-py:tutorial.HelloService/SayHello/wrong[]]"])
    run(pytester, "-k", "right").assert_outcomes(passed=1, deselected=1)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAIL: py→py tutorial.HelloService/SayHello/wrong*"])


def test_the_plugins_own_test_is_not_added_beside_the_users_or_without_interop_protos(
        project: pytest.Pytester) -> None:
    result = run(project, "--collect-only", "-q")
    assert "grpc-interop::" not in result.stdout.str()  # the user's test_it.py asks for interop_run already
    (project.path / "test_it.py").unlink()
    project.makepyfile(test_other="def test_other():\n    pass\n")
    result = project.runpytest_subprocess("--collect-only", "-q", "-p", "no:cacheprovider")
    assert "grpc-interop::" not in result.stdout.str() and "test_other.py::test_other" in result.stdout.str()


def test_coverage_summary_and_min_coverage(project: pytest.Pytester) -> None:
    """The cases that ran give the session's coverage; below --interop-min-coverage the session fails."""
    result = run(project, "-k", "right", "--interop-min-coverage", "100")
    result.assert_outcomes(passed=1, deselected=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*grpc-interop coverage*", "coverage: fields *",
                                 "coverage too low: fields: *% in py→py (*) is below --min-coverage 100%*"])
    result = run(project, "-k", "right", "--interop-min-coverage", "1")
    assert result.ret == pytest.ExitCode.OK
    assert "coverage too low" not in result.stdout.str()


def test_interop_shard_splits_as_the_cli_does(project: pytest.Pytester) -> None:
    """--interop-shard I/N: every case in exactly one shard, the one `grpc-interop run --shard` picks."""
    from harness.run import shard

    names = ["tutorial.HelloService/SayHello/right", "tutorial.HelloService/SayHello/wrong"]
    where = shard.assign(names, 2, shard.load_timings())
    got = {}
    for i in (1, 2):
        lines = run(project, "--collect-only", "-q", "--interop-shard", f"{i}/2").stdout.lines
        got[i] = sorted(n for n in names if any(f"py-py:{n}]" in line for line in lines))
    assert sorted(got[1] + got[2]) == names
    assert got == {i: sorted(n for n in names if where[n] == i) for i in (1, 2)}
    bad = run(project, "--collect-only", "-q", "--interop-shard", "3/2")
    assert bad.ret != 0 and "give I/N" in bad.stdout.str() + bad.stderr.str()
