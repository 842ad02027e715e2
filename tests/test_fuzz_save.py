"""`--save-failures` output is a case file that reproduces the failure (tests/data/fuzz_faulty_stub.py,
run in a process of its own: its proto set is not the seed protos the other tests load)."""

from __future__ import annotations

from pathlib import Path

import pytest

SCENARIO = Path(__file__).parent / "data" / "fuzz_faulty_stub.py"


def test_saved_failures_reproduce_against_a_faulty_stub(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fuzz_faulty_stub=SCENARIO.read_text(encoding="utf-8"))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
