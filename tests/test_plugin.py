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
    ])
