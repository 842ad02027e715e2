"""Reports: the matrix of service/method x direction, and failure details."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from rich.console import Console
from rich.table import Table

from harness.cases.model import FINDING_PREFIX  # noqa: F401 (the reports' rows, named below them)
from python_impl.contract import Result


def method_of(case: str) -> str:
    """`pkg.Service/Method/pattern` -> `pkg.Service/Method`: the matrix row; a finding is a row of its own."""
    return case if case.startswith(FINDING_PREFIX) else "/".join(case.split("/")[:2])


# A capability one side's library lacks, proved by its probe (harness/run/capabilities.py): a row of
# its own per direction, listed apart from the matrix and from the case runs.
CAPABILITY = "capability"
# Everything else fails the run: fail, error, finding (a file a language cannot compile or load), and
# unexpected passes of known divergences and capabilities.
OK_VERDICTS = ("pass", "divergence", CAPABILITY)


def case_runs(results: Iterable[Result]) -> list[Result]:
    """The results that are case runs: all but the capability rows."""
    return [r for r in results if r.verdict != CAPABILITY]


def capability_rows(results: Iterable[Result]) -> list[Result]:
    return [r for r in results if r.verdict == CAPABILITY]


def cells(results: Iterable[Result]) -> dict[str, dict[str, list[Result]]]:
    """Case runs by matrix row (service/method) and column (direction); capability rows are apart."""
    out: dict[str, dict[str, list[Result]]] = defaultdict(lambda: defaultdict(list))
    for r in case_runs(results):
        out[method_of(r.case)][r.direction].append(r)
    return out


def counts(rs: list[Result]) -> tuple[int, int, int]:
    """(passed, known divergences, failing) of some case runs (capability rows are not counted)."""
    rs = case_runs(rs)
    ok = sum(r.verdict == "pass" for r in rs)
    known = sum(r.verdict == "divergence" for r in rs)
    return ok, known, len(rs) - ok - known


def excused_share(results: list[Result]) -> float:
    """The share of case runs a known divergence excuses (the issue's target: at most 3%)."""
    runs = case_runs(results)
    return sum(r.verdict == "divergence" for r in runs) / len(runs) if runs else 0.0


def capability_library(row: dict) -> str:
    """The library of a capability row as installed, and the version its entry was measured with when
    that is another one (the probe proved the lack with the installed one)."""
    measured = row.get("measured")
    return f"{row['library']} {row['version']}" + (f" (measured with {measured})" if measured and
                                                   measured != row["version"] else "")


def capability_table(rows: list[dict]) -> Table:
    """The run record's capability rows (harness/report/record.py capability_rows)."""
    table = Table(title="capabilities one side's library lacks (one probe per direction; not case runs)")
    for col in ("direction", "library", "lacks", "probe"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["direction"], capability_library(row), row["lacks"], row["case"])
    return table


def matrix(results: Iterable[Result], directions: list[str]) -> Table:
    table = Table(title="interop matrix: service/method × direction (passed/total, ≈ known divergences)")
    table.add_column("service/method")
    for d in directions:
        table.add_column(d, justify="center")
    for method, row_results in sorted(cells(results).items()):
        row = [method]
        for d in directions:
            ok, known, bad = counts(row_results.get(d, []))
            total, note = ok + known + bad, f" ≈{known}" if known else ""
            if not total:
                row.append("[dim]–[/dim]")
            elif not bad:
                row.append(f"[green]✓ {ok}/{total}{note}[/green]")
            else:
                row.append(f"[bold red]✗ {ok}/{total}{note}[/bold red]")
        table.add_row(*row)
    return table


def failed(results: list[Result]) -> list[Result]:
    """Fail, error and unexpected passes of known divergences: what makes a run fail."""
    return [r for r in results if r.verdict not in OK_VERDICTS]


def summary(results: list[Result]) -> str:
    counts = defaultdict(int)
    for r in results:
        counts[r.verdict] += 1
    out = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no cases ran"
    runs = case_runs(results)
    if runs:
        out += f" ({excused_share(results):.1%} of {len(runs)} case runs excused)"
    return out


def write_json(results: list[Result], path: Path, coverage: dict | None = None) -> None:
    """The results, with the run's coverage beside them when given ({"results": […], "coverage": {…}})."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [r.to_json() for r in results]
    data = rows if coverage is None else {"results": rows, "coverage": coverage}
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1))


def console() -> Console:
    """A console that never truncates the matrix: at least 160 columns when output is not a terminal."""
    probe = Console()
    return Console(highlight=False, width=None if probe.is_terminal else max(probe.width, 160))
