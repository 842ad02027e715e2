"""The fuzz loop: rounds of examples for every method, run as ordinary cases in every direction;
failures shrunk by Hypothesis, printed as field-level diffs, saved as a case file.

A round draws `examples` cases per method and dimension (fuzz/examples.py, fuzz/dims/), makes them the catalogue of a fresh
Session (the servers must know every example's expectations at start) and runs them through
Session.run per direction, so a Go client runs the whole round in one start and the known
divergences apply exactly as in `grpc-interop run`. Rounds go on while the budget allows another.

A failing example is shrunk by replaying its method's seeded Hypothesis run with the shrink phase
on: examples the round already judged are answered from the round's results, every smaller
candidate Hypothesis tries is sent for real, alone, in the failing direction, with the Go peer as a
plain process (a start costs a fraction of a container's).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import Phase
from hypothesis.database import DirectoryBasedExampleDatabase
from rich.console import Console

from harness import cache
from harness.cases import generate as casegen
from harness.cases.model import Call, Case
from harness.fuzz import dims, examples as ex
from harness.fuzz.strategies import call_key
from harness.report.verdicts import failed
from harness.run.runner import Direction, Prepared, Session, go_tag_args, repro_command
from python_impl.contract import Result

SHRINK_RUNNER = "process"  # the fast path for the one-example runs of a shrink


class _OutOfTime(BaseException):
    """The shrink budget is spent: stops Hypothesis, which treats an Exception as a failure to shrink."""


@dataclass
class Failure:
    direction: Direction
    method: MethodDescriptor
    dimension: str
    case: Case
    result: Result
    round: int
    minimal: Case | None = None
    minimal_result: Result | None = None
    tries: int = 0
    shrink_seconds: float = 0.0
    replayed: bool = False      # the shrink met the round's failing example again (and started there)


@dataclass
class Outcome:
    examples: int = 0           # distinct examples sent
    per_dimension: Counter[str] = field(default_factory=Counter)  # examples sent, by dimension
    runs: int = 0               # example × direction results
    seconds: float = 0.0
    rounds: int = 0
    results: list[Result] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    saved: Path | None = None


def methods(prepared: Prepared) -> list[MethodDescriptor]:
    """Every method of the set's services (echo services included), files Python refuses excepted."""
    return [m for svc in casegen.services(prepared.protoset, prepared.skipped) for m in svc.methods]


def batch(base: Prepared, cases: list[Case], needs_go: bool) -> Prepared:
    """The proto set with `cases` as its cases and catalogue; the Go peer build is shared, not redone."""
    p = Prepared(base.protoset, base.gen, cases, base.known, base.py_findings, base.go_tags, base.gaps)
    if needs_go:
        p.__dict__["build"] = base.build  # functools.cached_property keeps its value there
    return p


def run_cases(base: Prepared, runner: str, dirs: list[Direction], cases: list[Case]) -> list[Result]:
    needs_go = any("go" in (d.client, d.server) for d in dirs)
    with Session(batch(base, cases, needs_go), runner) as session:
        return [r for d in dirs for r in session.run(d, cases)]


def fuzz(base: Prepared, runner: str, dirs: list[Direction], seed: int, budget: float, per_method: int,
         out: Console, shrink_budget: float = 90.0, dimensions: tuple[str, ...] = ("values",)) -> Outcome:
    """Rounds until the budget is spent (at least one) or a round fails, then shrink the first
    failure of each failing method and dimension."""
    ms = methods(base)
    by_method = {ex.method_name(m): m for m in ms}
    outcome = Outcome()
    t0 = time.monotonic()
    by_name: dict[str, tuple[MethodDescriptor, Case, int]] = {}
    while True:
        started = time.monotonic()
        cases = ex.draw_all(ms, seed, outcome.rounds, per_method, dimensions)
        by_name.update({c.name: (by_method[c.method], c, outcome.rounds) for c in cases})
        results = run_cases(base, runner, dirs, cases)
        outcome.examples += len(cases)
        outcome.per_dimension.update(ex.dimension_of(c.name) for c in cases)
        outcome.runs += len(results)
        outcome.results += results
        outcome.rounds += 1
        took = time.monotonic() - started
        out.print(f"round {outcome.rounds}: {len(cases)} examples × {len(dirs)} directions in {took:.1f} s, "
                  f"{len(failed(results))} failing", soft_wrap=True)
        spent = time.monotonic() - t0
        if failed(results) or spent + took > budget:
            break
    outcome.seconds = time.monotonic() - t0
    dir_of = {d.name: d for d in dirs}
    shrunk: set[str] = set()
    deadline = time.monotonic() + shrink_budget
    for r in failed(outcome.results):
        m, case, round_ = by_name[r.case]
        f = Failure(dir_of[r.direction], m, ex.dimension_of(case.name), case, r, round_)
        outcome.failures.append(f)
        what = f"{ex.method_name(m)} {f.dimension}"
        if what not in shrunk and time.monotonic() < deadline:
            shrunk.add(what)
            shrink(base, f, seed, per_method, outcome.results, deadline)
    return outcome


def _database(base: Prepared, f: Failure) -> DirectoryBasedExampleDatabase:
    """Hypothesis' example database, in the cache folder: one per proto set, method, dimension and
    direction, so the next run starts its shrink from the last minimal example."""
    key = hashlib.sha256(f"{base.protoset.digest}:{ex.method_name(f.method)}:{f.dimension}:{f.direction.slug}".encode())
    return DirectoryBasedExampleDatabase(str(cache.root() / "fuzz" / "hypothesis" / key.hexdigest()[:20]))


def shrink(base: Prepared, f: Failure, seed: int, per_method: int, judged: list[Result], deadline: float) -> None:
    """Let Hypothesis shrink f's example: replay its method's seeded run (the round's verdicts answer
    the examples already sent), send every new candidate alone, keep the smallest that fails."""
    started = time.monotonic()
    name = ex.method_name(f.method)
    verdicts = {r.case: r for r in judged if r.direction == f.direction.name}
    round_cases = ex.draw(f.method, seed, f.round, per_method, f.dimension)
    known = {call_key(c.calls[0]): verdicts.get(c.name) for c in round_cases}
    best: list[tuple[Case, Result]] = [(f.case, f.result)]

    class Fails(AssertionError):
        """The example fails in this direction (Hypothesis shrinks what raises this)."""

    def body(call: Call) -> None:
        key = call_key(call)
        if key in known:  # judged by the round: no need to send it again
            if known[key] is not None and failed([known[key]]):
                f.replayed = True
                raise Fails(name)
            return
        if time.monotonic() > deadline:
            raise _OutOfTime  # not an Exception: Hypothesis lets it through, and the smallest so far stands
        f.tries += 1
        case = Case(name=ex.renamed(f.case.name, f.dimension, call, "-min"), calls=[call], source=ex.SOURCE,
                    channel=dims.channel(f.dimension, call))
        try:
            result = run_cases(base, SHRINK_RUNNER, [f.direction], [case])[0]
        except Exception:  # noqa: BLE001 - a peer that cannot start is no smaller failure
            return
        if failed([result]):
            if len(call_key(call)) <= len(call_key(best[-1][0].calls[0])):
                best.append((case, result))
            raise Fails(name)

    try:
        ex.hypothesis_run(f.method, seed, f.round, per_method, body,
                          phases=(Phase.reuse, Phase.generate, Phase.shrink), database=_database(base, f),
                          dimension=f.dimension)
    except (Exception, _OutOfTime):  # noqa: BLE001 - Hypothesis re-raises the minimal failure
        pass
    if len(best) > 1:
        f.minimal, f.minimal_result = best[-1]
    f.shrink_seconds = time.monotonic() - started


def save_text(cases: list[Case]) -> str:
    """Cases as the text of a case file. allow_unicode=False: non-ASCII text is written escaped;
    written raw, PyYAML folds U+0085 (a YAML 1.1 line break) into a space, and the saved case would
    no longer be the failing example."""
    return ("# grpc-interop fuzz failures: regression cases (grpc-interop run --cases FILE)\n"
            + yaml.safe_dump(ex.case_yaml(cases), allow_unicode=False, sort_keys=False, width=100))


def save(outcome: Outcome, path: Path) -> Path:
    """The failures as a case file: each minimal example, and every failing example as it was found."""
    cases: dict[str, Case] = {}
    for f in outcome.failures:
        for c in (f.minimal, f.case):
            if c is not None:
                cases.setdefault(c.name, c)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(save_text(list(cases.values())), encoding="utf-8")
    outcome.saved = path
    return path


def explain(f: Failure, protos: tuple[str, ...], go_tags: tuple[str, ...], runner: str, saved: Path | None) -> str:
    """One failure: the example's diffs, the shrunk example's diffs and data, and how to reproduce it."""
    mode = f.case.calls[0].streaming
    lines = [f"FUZZ {f.result.verdict.upper()}: {f.direction.name} {ex.method_name(f.method)} ({mode}), "
             f"dimension {f.dimension}, example {f.case.name}"]
    lines += [f"  call {d.call}: {d.path}: expected {d.expected}, got {d.got}" for d in f.result.diffs]
    shown = f.case
    if f.minimal is not None and f.minimal_result is not None:
        shown = f.minimal
        start = "" if f.replayed else ", starting from another failing example it drew"
        lines += [f"shrunk by Hypothesis in {f.tries} tries ({f.shrink_seconds:.1f} s{start}) to {f.minimal.name}:"]
        lines += [f"  call {d.call}: {d.path}: expected {d.expected}, got {d.got}" for d in f.minimal_result.diffs]
    elif f.tries:
        lines.append(f"(Hypothesis found no smaller failing example in {f.tries} tries)")
    data = {k: v for k, v in ex.case_yaml([shown])["cases"][0]["calls"][0].items() if k not in ("method", "generic")}
    lines.append("  example: " + json.dumps(data, ensure_ascii=False))
    if saved is not None:
        command = repro_command((*protos, *go_tag_args(go_tags)), f.direction, shown.name, runner, [str(saved)])
        lines += [f"saved in {saved}; reproduce it:", "  " + command]
    return "\n".join(lines)


def summary(outcome: Outcome) -> str:
    rate = outcome.examples / outcome.seconds if outcome.seconds else 0.0
    counts = ", ".join(f"{d} {n}" for d, n in outcome.per_dimension.items())
    return (f"{outcome.examples} examples ({outcome.runs} runs, {outcome.rounds} round(s)) in {outcome.seconds:.1f} s, "
            f"{rate:.1f} examples/s, {len(outcome.failures)} failing; by dimension: {counts}")

