"""`grpc-interop fuzz`: its options and the command (registered by harness/cli.py)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from harness import cache
from harness.fuzz import dims, run as fuzzrun
from harness.protoset import add_arguments, from_args
from harness.protoset.codegen import GO_TAGS_ENV, go_build_cached
from harness.protoset import gotoolchain
from harness.engines.peer import select_runner
from harness.report import verdicts as report
from harness.run import divergences
from harness.run.runner import directions, prepare

DEFAULT_EXAMPLES = 5  # per method and dimension: with every dimension, one round fits --budget 60


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("fuzz", help="differential fuzzing: random messages and streams from the descriptors, "
                                    "sent between the languages; failures shrunk and saved as cases")
    add_arguments(p)  # the proto set, exactly as `run` takes it
    p.add_argument("--divergences", action="append", type=Path, metavar="FILE",
                   help="your known-divergence file(s), added to the built-in ones (repeatable)")
    p.add_argument("--go-build-tags", default=os.environ.get(GO_TAGS_ENV, ""), metavar="TAGS",
                   help=f"Go build tags for the Go peer (default ${GO_TAGS_ENV}), as for run")
    p.add_argument("--direction", action="append", metavar="DIR",
                   help="as for run (py→go, py-go, …); repeatable; default all seven")
    p.add_argument("--peer-runner", default=os.environ.get("INTEROP_PEER_RUNNER", "auto"),
                   choices=["auto", "docker", "process"], help="as for run (shrinking always uses process)")
    p.add_argument("--seed", type=int, default=0, help="the examples follow from it: same seed, same examples")
    p.add_argument("--budget", type=float, default=60.0, metavar="SECONDS",
                   help="start no round of examples past this time (one round always runs)")
    p.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, metavar="N",
                   help=f"examples per method, dimension and round (default {DEFAULT_EXAMPLES})")
    p.add_argument("--dimensions", metavar="A,B", default=None,
                   help=f"the protocol dimensions drawn, comma-separated (default all: {','.join(dims.NAMES)})")
    p.add_argument("--shrink-budget", type=float, default=90.0, metavar="SECONDS",
                   help="time for shrinking the failures, all together")
    p.add_argument("--save-failures", type=Path, metavar="FILE",
                   help="write the failures (each minimal example too) as a case file: regression cases for "
                        "`grpc-interop run --cases FILE` (default: under the cache folder)")
    return p


def cmd_fuzz(args: argparse.Namespace, last: list[str] | None = None) -> int:
    """`last`: where the summary goes instead of the console (the caller prints it last, after the
    run log's name: harness/cli.py logged)."""
    if args.examples < 1:
        raise ValueError("--examples is a count of examples per method, at least 1")
    chosen = directions(args.direction)
    dimensions = dims.parse(getattr(args, "dimensions", None))  # before any build: a typo fails at once
    out = report.console()
    t0 = time.monotonic()
    # no cases are generated or loaded: the examples are the cases (and the servers' catalogue)
    prepared = prepare(from_args(args), [], generated=False, go_tags=args.go_build_tags)
    prepared.known += divergences.load(args.divergences or [], builtin=False)
    ps = prepared.protoset
    needs_go = any("go" in (d.client, d.server) for d in chosen)
    if needs_go and not go_build_cached(ps, prepared.go_tags):
        gotoolchain.current()  # neither Go nor Docker: one line saying what to install
    runner = select_runner(args.peer_runner)
    if needs_go:
        prepared.build  # noqa: B018 - built before the clock of the rounds starts
    out.print(f"fuzz {ps.label} ({len(ps.files)} files): seed {args.seed}, {args.examples} examples per method and "
              f"round, dimensions {','.join(dimensions)}, budget {args.budget:g} s, {len(chosen)} direction(s), Go peer runner {runner}; "
              f"prepared in {time.monotonic() - t0:.1f} s", soft_wrap=True)
    for finding in sorted({f.file for d in chosen for f in prepared.findings(d)}):
        out.print(f"  not fuzzed in some directions: {finding} is a finding (grpc-interop gen shows why)")
    missing = [n for n in dims.NAMES if n not in dimensions]
    if not getattr(args, "dimensions", None) and missing:  # the default is all: say which this install lacks
        out.print(f"  not fuzzed: dimension(s) {', '.join(missing)} (no module in harness/fuzz/dims/)", soft_wrap=True)
    outcome = fuzzrun.fuzz(prepared, runner, chosen, args.seed, args.budget, args.examples, out, args.shrink_budget,
                           dimensions)
    if outcome.failures:
        path = args.save_failures or cache.root() / "fuzz" / f"failures-{ps.digest[:12]}-s{args.seed}.yaml"
        fuzzrun.save(outcome, path)
        for f in outcome.failures:
            if f.tries or f.minimal is not None:  # each method's first failure, shrunk: in full
                out.print(fuzzrun.explain(f, ps.spec, prepared.go_tags, runner, outcome.saved), markup=False,
                          soft_wrap=True)
                out.print()
        rest = [f for f in outcome.failures if not (f.tries or f.minimal is not None)]
        if rest:
            out.print(f"{len(rest)} more failing example(s), in {outcome.saved} too:")
            for f in rest:
                first = f.result.diffs[0] if f.result.diffs else None
                what = f"{first.path}: expected {first.expected}, got {first.got}" if first else f.result.verdict
                out.print(f"  {f.direction.slug} {f.case.name}: {what}"[:300], markup=False, soft_wrap=True)
    tail = [fuzzrun.summary(outcome)]
    if not outcome.runs:  # nothing crossed a language boundary: never a green fuzz run
        tail.append("[bold red]no example was sent: no method to fuzz in the chosen directions[/bold red]")
    for line in tail if last is None else ():
        out.print(line, soft_wrap=True)
    if last is not None:
        last += tail
    if not outcome.runs:
        return 1
    return 1 if outcome.failures else 0
