"""The pytest plugin end to end (pytester): test ids, -k, and a failure that explains itself."""

from __future__ import annotations

import json
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
import os, socket, ssl
def test_a(interop_session):
    open(os.path.join({str(seen)!r}, os.environ["PYTEST_XDIST_WORKER"]), "w").write(
        interop_session.server("py").address)
test_b = test_a
test_c = test_a
def test_d(interop_session):
    # a handshake the mtls listener refuses (no client certificate): grpc core in the controller logs it
    host, port = interop_session.server("py").addresses["mtls"].rsplit(":", 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(b"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n")
                tls.recv(64)
        except (ssl.SSLError, OSError):
            pass
""")
    # a case over mtls: the shared server starts its TLS listeners
    project.makefile(".yaml", mycases=CASES + """
  - name: tutorial.HelloService/SayHello/mtls/right
    channel: {listener: mtls}
    calls: [{method: tutorial.HelloService/SayHello, requests: [{greeting: x}], expect: {responses: [{reply: hello x}]}}]
""")
    result = run(project, "-n", "2", "--dist", "each", "--peer-runner", "process")
    result.assert_outcomes(passed=12, failed=2)  # on each worker: 4 sharing tests, `right`, `mtls/right`; `wrong` fails
    # the controller's in-process servers print to its fd 2, the terminal: their lines go to a run log
    printed = result.stdout.str() + result.stderr.str()
    assert "ssl_transport_security" not in printed, printed[-3000:]
    named = [line for line in result.stdout.lines if "lines the shared servers printed" in line]
    assert named, result.stdout.str()[-3000:]
    assert "ssl_transport_security" in Path(named[0].rsplit(" are in ", 1)[1]).read_text()
    addresses = {p.read_text() for p in seen.iterdir()}
    assert len(list(seen.iterdir())) == 2, "both workers should have run sharing tests"
    assert len(addresses) == 1, f"workers used different servers: {addresses}"
    # the controller measured coverage from the workers' reports
    summary = [line for line in result.stdout.lines if line.startswith("coverage: fields ")]
    assert summary and not summary[0].startswith("coverage: fields 0.0%"), result.stdout.str()[-3000:]


def test_a_crashing_workers_last_words_stay_on_the_terminal(project: pytest.Pytester) -> None:
    """The controller's fd 2 goes to its log while the shared servers run, but the workers (started
    after) and a worker started to replace a crashed one keep the terminal: "Fatal Python error" shows."""
    project.makepyfile(test_crash="""
import faulthandler, os
def test_crash(interop_session):
    if os.environ["PYTEST_XDIST_WORKER"] == "gw0":
        faulthandler._sigsegv()
def test_after(interop_session):
    if os.environ["PYTEST_XDIST_WORKER"] not in ("gw0", "gw1"):  # gw0's replacement
        faulthandler._sigsegv()
""")
    result = run(project, "-n", "2", "--dist", "each", "--peer-runner", "process", "-k", "crash or after")
    printed = result.stdout.str() + result.stderr.str()
    # the first crash, and the one in the worker that replaced gw0
    assert printed.count("Fatal Python error: Segmentation fault") >= 2, printed[-4000:]


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


def test_a_worker_explains_with_the_controllers_log(tmp_path: Path) -> None:
    """A worker's failure explanation shows what the shared in-process server printed (the handed-over
    log), and a Go peer process's own log file wins over the controller's."""
    from types import SimpleNamespace

    from harness.run.runner import ExternalServer, share

    log, own = tmp_path / "run.log", tmp_path / "go-peer.log"
    log.write_text("first\nsecond\nHandshake failed\n")
    own.write_text("the Go peer's line\n")
    py = SimpleNamespace(address="127.0.0.1:1", describe=lambda: "Python server", addresses={})
    handed = ExternalServer(**json.loads(json.dumps(share(py, None, log).to_json())))
    assert handed.logs(tail=2).splitlines()[1:] == ["second", "Handshake failed"]
    go = SimpleNamespace(**vars(py), _stderr=own)
    assert share(go, None, log).logs().splitlines()[1:] == ["the Go peer's line"]
