"""Cases in flight at once (runner.Session.concurrency, run_all's overlapping directions): the same
results, in catalogue order, with deadlines that keep their meaning. The Python-only directions need
no Go peer; the Go client's goroutines are tested in go_peer (bulk_test.go, TestRunClientConcurrency)."""

from __future__ import annotations

import time

import pytest

from harness.cli import main
from harness.run import runner
from harness.run.observed import needs_observer

DIRECTIONS = [runner.direction("py-py"), runner.direction("pyaio-pyaio")]


@pytest.fixture(scope="module")
def prepared(seed_gen) -> runner.Prepared:
    return runner.prepare(runner.Path(__file__).resolve().parent.parent / "protos")


def _mix(prepared: runner.Prepared) -> list:
    """Cases that wait (deadlines), cancel, compress (the wire observer), move 4 MiB, stream, and
    plenty of quick ones between them."""
    keep = ("deadline_exceeded", "cancel", "gzip", "near_size_limit", "over_limit", "/stream/")
    return [c for i, c in enumerate(prepared.catalogue) if i < 80 or any(k in c.name for k in keep)]


@pytest.mark.parametrize("d", DIRECTIONS, ids=lambda d: d.slug)
def test_concurrent_cases_give_the_same_results_in_catalogue_order(prepared, d) -> None:
    cases = _mix(prepared)
    # the client's deadline ends these: the server delays past it
    waits = [c for c in cases if (c.calls[0].server or {}).get("delay_ms", 0) > c.calls[0].timeout_ms]
    assert len(waits) >= 10 and needs_observer(d.client, d.server, cases)  # the observer sees this run
    with runner.Session(prepared, "process", concurrency=1) as one_by_one:
        start = time.perf_counter()
        alone = one_by_one.run(d, waits)
        floor = sum(c.calls[0].timeout_ms for c in waits) / 1000
        assert time.perf_counter() - start >= floor  # each deadline was waited out, one after another
        serial = one_by_one.run(d, cases)
    with runner.Session(prepared, "process", concurrency=runner.MAX_CONCURRENCY) as session:
        start = time.perf_counter()
        together = session.run(d, waits)
        took = time.perf_counter() - start
        concurrent = session.run(d, cases)
    assert [r.verdict for r in alone] == [r.verdict for r in together] == ["pass"] * len(waits)
    # the waits overlapped: together they took less than the sum of their deadlines
    assert took < floor, (took, floor)
    assert [r.case for r in concurrent] == [c.name for c in cases] == [r.case for r in serial]
    # a known divergence marked intermittent (a library race) may pass in one run and not the other
    ok = {"pass", "divergence"}
    assert {r.verdict for r in serial} <= ok, [(r.case, r.diffs) for r in serial if r.verdict not in ok]
    assert {r.verdict for r in concurrent} <= ok, [(r.case, r.diffs) for r in concurrent if r.verdict not in ok]


def test_run_all_overlaps_directions_and_keeps_their_order(prepared) -> None:
    patterns = ["/stream/deadline_exceeded", "/protocol/gzip"]
    results, session = runner.run_all(prepared, "process", DIRECTIONS, patterns, concurrency=4)
    with session:
        chosen = runner.select(prepared.cases, patterns)
        assert [(r.direction, r.case) for r in results] == [(d.name, c.name) for d in DIRECTIONS for c in chosen]
        assert {r.verdict for r in results} <= {"pass", "divergence"}, [(r.case, r.diffs) for r in results]


@pytest.mark.parametrize("n", [0, runner.MAX_CONCURRENCY + 1])
def test_concurrency_out_of_range_is_a_usage_error(n: int, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["run", "--protos", "protos", "--concurrency", str(n)])
    assert e.value.code == 2
    assert f"concurrency must be between 1 and {runner.MAX_CONCURRENCY}" in capsys.readouterr().err
    with pytest.raises(ValueError, match="concurrency"):
        runner.run_all(None, "process", [], None, concurrency=n)  # type: ignore[arg-type]
