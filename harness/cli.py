"""`grpc-interop`: the harness's command line (run, bench, coverage, cases, gen, peer, serve, clean, compat, fuzz,
report)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Callable

from rich.console import Console

from harness.cases import channels as channel_cases
from harness.cases import profiles
from harness.cases import model as cases_mod
from harness.report import coverage, coverage_view, export
from harness.run import versions
from harness.report import results as results_doc
from harness.run import divergences
from harness.report import verdicts as report
from harness.report.progress import LiveProgress
from harness.report.verdicts import FINDING_PREFIX
from harness import cache
from harness.protoset.codegen import (GO_TAGS_ENV, CodegenError, Finding, build_go, generate_python, go_build_cached,
                                      load, python_findings, reported)
from harness.protoset.gotoolchain import GoToolchainError
from harness.protoset import gotoolchain
from harness.engines.peer import GoServer, PeerError, clean, docker_client, ensure_image, reap_live, select_runner
from harness.protoset import ProtoSetError, add_arguments, from_args
from harness.fuzz import command as fuzz_command
from harness.probe import command as probe_command
from harness.report import record
from harness.run import runlog
from harness.run import shard as shard_mod
from harness.run.runner import (DEFAULT_CONCURRENCY, MAX_CONCURRENCY, Plan, Prepared, Session, check_concurrency,
                                direction, directions, plan, prepare, run_all, select)


def _common(p: argparse.ArgumentParser) -> None:
    add_arguments(p)
    p.add_argument("--cases", action="append", type=Path, metavar="FILE",
                   help="case file(s) to use instead of the built-in ones (repeatable)")
    p.add_argument("--divergences", action="append", type=Path, metavar="FILE",
                   help="your known-divergence file(s), added to the built-in ones (repeatable)")
    p.add_argument("--no-generated", action="store_true",
                   help="only the case files; no cases generated from the descriptors")
    p.add_argument("--go-build-tags", default=os.environ.get(GO_TAGS_ENV, ""), metavar="TAGS",
                   help="Go build tags for the Go peer and its code generators, comma-separated (default "
                        f"${GO_TAGS_ENV}); protolegacy makes protobuf-go accept MessageSet")
    p.add_argument("--channel", choices=channel_cases.MODES, default=None,
                   help="which cases also run over TLS or mTLS: default = the TLS/mTLS channel cases plus one value "
                        "case per method over TLS; tls / mtls = every catalogue case over it as well; all = both; "
                        "plaintext = no TLS at all")


def _min_coverage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-coverage", action="append", metavar="PCT|KIND=PCT",
                   help="fail when field coverage (or the named number, e.g. 'enum values=100') is below PCT "
                        "in some direction; repeatable")


def _concurrency(text: str) -> int:
    """--concurrency N: an argparse type, so a bad N is a usage error naming the range."""
    try:
        return check_concurrency(int(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("invalid literal for int() with base 10", "not a number"))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="grpc-interop", description="Python (grpcio) <-> Go (grpc-go) interop harness")
    sub = ap.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser("run", help="run the cases in every direction and print the matrix")
    _common(run)
    run.add_argument("--direction", action="append", metavar="DIR",
                     help="py→go, go→py, pyaio→go, go→pyaio, py→py, pyaio→pyaio, go→go (or py-go, …); "
                          "repeatable; default all")
    run.add_argument("-k", dest="patterns", action="append", metavar="PATTERN",
                     help="only cases whose name contains PATTERN or matches it as a glob; repeatable")
    run.add_argument("--peer-runner", default=os.environ.get("INTEROP_PEER_RUNNER", "auto"),
                     choices=["auto", "docker", "process"],
                     help="how the Go peer runs: docker (a container), process, or auto "
                          "(docker when an engine answers, else process, announced loudly)")
    run.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    run.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML")
    run.add_argument("--markdown", type=Path, metavar="FILE",
                     help="append a Markdown summary (default: $GITHUB_STEP_SUMMARY when set)")
    run.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML report")
    run.add_argument("--shard", metavar="I/N",
                     help="run only shard I of N (1-based): every case is in exactly one shard, all its directions "
                          "with it; balanced by measured cost (--shard-timings); merge with `report merge`")
    run.add_argument("--shard-timings", type=Path, metavar="FILE",
                     help="case costs for --shard: a `run --json` or `report merge --json` file, or "
                          '{"timings": {case: ms}} (default: the table shipped with the harness, then each '
                          "case's kind); every shard must use the same file")
    run.add_argument("--server-address", metavar="HOST:PORT",
                     help="use the server peer already running there (grpc-interop serve) instead of starting one")
    run.add_argument("--concurrency", type=_concurrency, default=DEFAULT_CONCURRENCY, metavar="N",
                     help=f"cases in flight at once per direction, on one connection (1-{MAX_CONCURRENCY}; "
                          f"default {DEFAULT_CONCURRENCY}); results keep the catalogue order")
    run.add_argument("--profile", choices=profiles.PROFILES, default=profiles.DEFAULT,
                     help="how much to run: quick = one value case per method and streaming mode, the protocol "
                          "essentials, every direction (pre-commit, pull requests); full = every case (default); "
                          f"deep = full with --channel {profiles.DEEP_CHANNEL} and a fuzz pass (--fuzz-budget; nightly)")
    run.add_argument("--fuzz-budget", type=float, default=profiles.DEEP_FUZZ_BUDGET_S, metavar="SECONDS",
                     help=f"the deep profile's fuzz pass: its time budget (default {profiles.DEEP_FUZZ_BUDGET_S:g})")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="print the libraries' log lines (grpc core, the peers, warnings) live; they are "
                          "always kept in the run's log file")
    run.add_argument("--log-file", type=Path, metavar="FILE",
                     help="where the run's log goes (default: a new file under the cache folder's logs/, "
                          "named at the end of the run)")
    _min_coverage(run)

    bench = sub.add_parser("bench", help="Py<->Go performance: calls/s, msg/s and latency per direction, beside "
                                         "the same-language controls and the raw grpcio floor")
    _common(bench)
    bench.add_argument("--direction", action="append", metavar="DIR", help="as for run; repeatable; default all")
    bench.add_argument("--method", action="append", metavar="SERVICE/METHOD",
                       help="a method to measure (repeatable; default: the first method of each streaming mode)")
    bench.add_argument("--case", dest="bench_cases", action="append", metavar="NAME",
                       help="a case to measure, by its full name (repeatable; with --method, both)")
    bench.add_argument("--concurrency", type=_concurrency, default=DEFAULT_CONCURRENCY, metavar="N",
                       help=f"measure at concurrency 1 and N (default {DEFAULT_CONCURRENCY})")
    bench.add_argument("--duration", type=float, default=0.4, metavar="SECONDS",
                       help="time budget of each measurement (case x direction x concurrency; default 0.4)")
    bench.add_argument("--calls", type=int, default=2000, metavar="N",
                       help="at most N calls per measurement (default 2000): every loop is bounded in count and time")
    bench.add_argument("--peer-runner", default=os.environ.get("INTEROP_PEER_RUNNER", "auto"),
                       choices=["auto", "docker", "process"], help="how the Go peer runs (as for run)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the measurements as JSON")

    cov = sub.add_parser("coverage", help="what the cases exercise, per direction: fields, enum values, oneof "
                                          "members, map key types, presence states, streaming patterns, "
                                          "status codes, metadata kinds; every uncovered item listed")
    _common(cov)
    cov.add_argument("--direction", action="append", metavar="DIR", help="as for run; repeatable; default all")
    cov.add_argument("-k", dest="patterns", action="append", metavar="PATTERN", help="as for run; repeatable")
    cov.add_argument("--results", type=Path, metavar="FILE",
                     help="measure what really ran: the JSON a `run --json FILE` wrote (instead of the selection)")
    cov.add_argument("--json", type=Path, metavar="FILE", help="also write the coverage as JSON")
    _min_coverage(cov)

    lst = sub.add_parser("cases", help="list the cases for a proto set")
    _common(lst)

    gen = sub.add_parser("gen", help="generate Python and Go code for a proto set (cached by content hash)")
    _common(gen)

    peer = sub.add_parser("peer", help="build the Go peer binary and its container image")
    _common(peer)
    peer.add_argument("--no-image", action="store_true", help="build the binary only")

    serve = sub.add_parser("serve", help="start one server peer by hand (to attach a debugger)")
    _common(serve)
    serve.add_argument("--lang", choices=["py", "pyaio", "go"], required=True)
    serve.add_argument("--addr", default="127.0.0.1:50051")
    serve.add_argument("--peer-runner", default=os.environ.get("INTEROP_PEER_RUNNER", "auto"),
                       choices=["auto", "docker", "process"])

    cln = sub.add_parser("clean", help="remove every container this harness started (leftovers of crashed runs)")
    cln.add_argument("--cache", action="store_true",
                     help="also empty the cache folder (generated code, plugins, Go peer builds; see --cache-dir)")

    rep = sub.add_parser("report", help="work with results files: merge shards and matrix jobs, timing tables")
    rsub = rep.add_subparsers(dest="report_cmd", required=True)
    merge = rsub.add_parser("merge", help="merge the --json results of shards (and matrix jobs) into one result "
                                          "set: the matrix, and --json/--junit/--markdown/--html of all of it")
    merge.add_argument("files", nargs="+", type=Path, metavar="FILE", help="results written by `run --json`")
    merge.add_argument("--allow-incomplete", action="store_true",
                       help="accept results of interrupted runs; what did not run is listed, and the merged "
                            f"set is marked incomplete (exit {EXIT_INCOMPLETE} when nothing failed)")
    merge.add_argument("--title", default="gRPC interop (merged)", help="the HTML report's title")
    for flag, text in (("--json", "write the merged results (the same format, for another merge)"),
                       ("--junit", "write JUnit XML"), ("--html", "write the self-contained HTML report")):
        merge.add_argument(flag, type=Path, metavar="FILE", help=text)
    merge.add_argument("--markdown", type=Path, metavar="FILE",
                       help="append a Markdown summary (default: $GITHUB_STEP_SUMMARY when set)")
    tim = rsub.add_parser("timings", help="a timing table for --shard-timings from results (case -> ms, summed "
                                          "over directions)")
    tim.add_argument("files", nargs="+", type=Path, metavar="FILE", help="results written by `run --json`")
    tim.add_argument("--out", type=Path, required=True, metavar="FILE")

    compat = sub.add_parser("compat", help="is the proto set compatible with a base revision? static diff + "
                                           "cross-revision runs on the wire (docs/compat.md)")
    compat.add_argument("--base", required=True, metavar="GIT-REF|DIR",
                        help="the old revision: a git ref of the protos folder's repository, or a folder")
    add_arguments(compat)  # --protos is the new revision; -I and --files apply to both revisions
    compat.add_argument("--allow", type=Path, metavar="FILE",
                        help="YAML list of {match: <glob over method/field path>, reason} accepting breaking changes")
    compat.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    compat.add_argument("--peer-runner", default=os.environ.get("INTEROP_PEER_RUNNER", "auto"),
                        choices=["auto", "docker", "process"])
    compat.add_argument("--verbose", "-v", action="store_true", help="list unchanged items one by one")
    fuzz_command.add_parser(sub)
    probe_command.add_parser(sub)
    # global, and accepted after the command too; SUPPRESS: a subcommand never resets what came before it
    ap.add_argument("--cache-dir", type=Path, metavar="DIR", default=None, help=CACHE_HELP)
    for p in [*sub.choices.values(), *rsub.choices.values()]:
        if p is rep:
            continue
        p.add_argument("--cache-dir", type=Path, metavar="DIR", default=argparse.SUPPRESS, help=CACHE_HELP)
    return ap


# Exit codes: 0 every case passed (or is a known divergence); 1 a case failed, or coverage is too low;
# 2 the run could not start (bad input, no toolchain); 3 interrupted (SIGINT or SIGTERM): every
# requested report was written with what ran, marked incomplete, listing what did not.
EXIT_INCOMPLETE = 3

CACHE_HELP = (f"where generated code, protoc plugins and Go peer builds are kept (default: ${cache.ENV}, "
              f"else $XDG_CACHE_HOME/{cache.APP}, else ~/.cache/{cache.APP})")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.cache_dir is not None:
        cache.use(args.cache_dir)
    try:
        return COMMANDS[args.cmd](args)
    except (CodegenError, ProtoSetError, cases_mod.CaseError, divergences.DivergenceError, PeerError,
            GoToolchainError, ValueError) as e:
        print(f"grpc-interop {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("grpc-interop: interrupted; peers stopped", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `grpc-interop cases | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


def _prepare(args: argparse.Namespace) -> Prepared:
    """The run's proto set, cases and known divergences, from the options every command shares (and
    the run's --profile: its share of the cases, its channel mode)."""
    profile = getattr(args, "profile", profiles.DEFAULT)
    channel = profiles.channel_mode(profile, args.channel)
    return prepare(from_args(args), args.cases, generated=not args.no_generated, divergence_files=args.divergences,
                   go_tags=args.go_build_tags, channel=channel or "default", profile=profile)


def logged(body: Callable[[argparse.Namespace, Console, runlog.RunLog], int]) -> Callable[[argparse.Namespace], int]:
    """A command whose libraries' lines (grpc core, warnings, the peers) go to a run log, named at the
    end (issue 19 item 1); `-v` (run) prints them live too."""
    def command(args: argparse.Namespace) -> int:
        out = report.console()
        verbose = getattr(args, "verbose", False) and args.cmd == "run"  # compat's -v lists unchanged items
        echo = ((lambda line: out.print(line, markup=False, highlight=False, style="dim", soft_wrap=True))
                if verbose else None)
        log = runlog.RunLog(getattr(args, "log_file", None), echo)
        hint = "" if verbose else ("; -v prints them live" if args.cmd == "run" else "")
        named = lambda: out.print(f"log: {log.path} ({log.count} lines{hint})", markup=False, soft_wrap=True)  # noqa: E731
        try:
            with log:
                code = body(args, out, log)
        except BaseException:
            log.close()
            if log.count:  # a command that could not start says so in one line (main); one cut short names its log
                named()
            raise
        log.close()
        named()  # at the end: everything the libraries and peers printed is there …
        for line in log.last:  # … then the command's summary, still its last line (scripts read it)
            out.print(line, soft_wrap=True)
        return code
    return command


@logged
def cmd_run(args: argparse.Namespace, out: Console, log: runlog.RunLog) -> int:
    code = _run(args, out, log)
    if args.profile == "deep" and code in (0, 1):  # the fuzz pass, whatever the run found
        fuzz_args = argparse.Namespace(**{**vars(args), "seed": 0, "budget": args.fuzz_budget,
                                          "examples": fuzz_command.DEFAULT_EXAMPLES, "shrink_budget": 90.0,
                                          "save_failures": None})
        out.print(f"profile deep: fuzz pass, budget {args.fuzz_budget:g} s", soft_wrap=True)
        code = max(code, fuzz_command.cmd_fuzz(fuzz_args, log.last))
    return code


def _run(args: argparse.Namespace, out: Console, log: runlog.RunLog) -> int:
    chosen = directions(args.direction)
    thresholds = coverage.parse_thresholds(args.min_coverage)
    shard = shard_mod.parse(args.shard)
    t0 = time.monotonic()
    if args.server_address and args.channel not in (None, "plaintext"):
        raise ValueError(f"--channel {args.channel} needs the TLS listeners of the peers the harness starts; a "
                         "server started by hand (--server-address) has none it knows: leave --channel out")
    if args.server_address:
        args.channel = "plaintext"
    prepared = _prepare(args)
    if args.server_address:  # a server started by hand has only the listener it was given
        elsewhere = {c.name for c in prepared.cases if (c.channel or {}).get("listener", "plaintext") != "plaintext"}
        prepared.cases = [c for c in prepared.cases if c.name not in elsewhere]
        out.print(f"grpc-interop: --server-address: {len(elsewhere)} cases on other listeners (TLS, mTLS, keepalive, "
                  "max_age, restart) are left out: a server started by hand has only its plaintext one",
                  markup=False, soft_wrap=True)
    ps = prepared.protoset
    uses_go = any("go" in (d.client, d.server) for d in chosen)
    if uses_go and not go_build_cached(ps, prepared.go_tags):
        gotoolchain.current()  # with neither Go nor Docker: one line that says what to install, before anything
    runner = select_runner(args.peer_runner)
    out.print(f"proto set {ps.label} ({len(ps.files)} files, {ps.digest[:12]}); profile {args.profile}; "
              f"{len(prepared.cases)} cases; Go peer runner: {runner}; prepared in {time.monotonic() - t0:.1f} s",
              soft_wrap=True)
    if ps.notice():
        out.print(f"  {ps.notice()}", soft_wrap=True)
    for gap in prepared.gaps:
        out.print(f"  not generated: {gap}", soft_wrap=True)
    if args.server_address and len({d.server for d in chosen}) > 1:
        raise ValueError("--server-address serves one side: choose directions with one server language")
    timings = shard_mod.load_timings(args.shard_timings) if shard or args.shard_timings else None
    the_plan = plan(prepared, chosen, args.patterns, shard, timings)
    tested = versions.collect(ps.digest, prepared.build.binary if uses_go else None)
    out.print(versions.line(tested), markup=False, soft_wrap=True)
    if shard:
        est = shard_mod.loads([c.name for c in prepared.cases], shard.count, timings or {})
        out.print(f"shard {shard}: {len(the_plan.cases)} of {len(prepared.cases)} cases, {the_plan.total} case runs "
                  f"(estimated {est[shard.index - 1] / 1000:.1f} s of case time; shards {', '.join(f'{x / 1000:.1f}' for x in est)} s)",
                  soft_wrap=True)
    names = [d.name for d in chosen]
    ran: list = []
    findings = {d.name: sum(n.startswith(FINDING_PREFIX) for n in the_plan.mine[d.name]) for d in chosen}
    try:
        with LiveProgress(out, {d: len(n) for d, n in the_plan.mine.items()}, findings) as live:
            results, session = run_all(prepared, runner, chosen, args.patterns, on_result=ran.append,
                                       server_address=args.server_address, the_plan=the_plan,
                                       concurrency=args.concurrency, events=live.event, versions=tested)
    except (KeyboardInterrupt, SystemExit) as e:
        if isinstance(e, SystemExit) and e.code != 128 + signal.SIGTERM:
            raise
        # both signal handlers (harness/engines/peer.py) reaped already; this covers a KeyboardInterrupt
        # that came another way (a SIGINT handler of the embedding program's): the peers would run on
        reap_live(closing=True)
        return _interrupted(args, out, prepared, the_plan, names, ran, tested, t0,
                            "SIGINT" if isinstance(e, KeyboardInterrupt) else "SIGTERM")
    session.log_lines, session.log_path = log.between, log.path
    with session:
        for title, text in session.peer_outputs():
            log.append(title, text)
        if not results:
            out.print("[red]no case matched[/red]")
            return 1
        out.print(report.matrix(results, names))
        failed = report.failed(results)
        # explained while the peers still run: the explanation carries their logs
        explanations = {(r.direction, r.case): session.explain(direction(r.direction), r)
                        for r in failed}
        for r in failed:
            # soft_wrap: commands in the explanation must stay copy-pasteable, never wrapped
            out.print(explanations[(r.direction, r.case)], markup=False, soft_wrap=True)
            out.print()
    cov = coverage.measure(coverage.universe_of(ps, prepared.cases, skip=prepared.skipped), prepared.cases,
                           coverage.ran_by_direction(results, names))
    run = record.run_record(prepared, the_plan, names, results, tested, explanations, time.monotonic() - t0, None,
                            args.profile)
    run["timeline"] = session.timeline(t0)
    _write_reports(args, results, names, explanations, f"gRPC interop: {ps.label}", cov, run)
    if run["capabilities"]:
        out.print(report.capability_table(run["capabilities"]))
    out.print(cov.summary() + "  (grpc-interop coverage lists what is uncovered)", markup=False, soft_wrap=True)
    too_low = _too_low(out, cov, thresholds)
    out.print(versions.line(tested), markup=False, soft_wrap=True)
    idle = results_doc.not_exercised_lines(run["divergences"])
    if args.profile == "quick" and idle:  # most are, by design: the count, not a page of them
        idle = [idle[0].rstrip(":") + " (profile quick; the JSON's run.divergences lists them)"]
    for line in idle:
        out.print(line, style="dim", markup=False, soft_wrap=True)
    log.last.append(f"{report.summary(results)} in {time.monotonic() - t0:.1f} s (profile {args.profile})")
    if run["not_run"]:  # every planned (direction, case) must have a result: never green with gaps
        log.last.append(f"[bold red]{len(run['not_run'])} planned case runs have no result[/bold red] "
                        "(the JSON's run.not_run lists them)")
    return 1 if failed or too_low or run["not_run"] else 0


def _interrupted(args: argparse.Namespace, out: Console, prepared: Prepared, the_plan: Plan, names: list[str],
                 ran: list, tested: dict, t0: float, signame: str) -> int:
    """SIGINT or SIGTERM mid-run: every requested report, with what ran, marked incomplete; the cases
    that did not run are listed. A second signal cannot cut the reports short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    explanations = {(r.direction, r.case): record.brief(r) for r in report.failed(ran)}
    cov = coverage.measure(coverage.universe_of(prepared.protoset, prepared.cases, skip=prepared.skipped),
                           prepared.cases, coverage.ran_by_direction(ran, names))
    run = record.run_record(prepared, the_plan, names, ran, tested, explanations, time.monotonic() - t0, signame,
                            args.profile)
    _write_reports(args, ran, names, explanations, f"gRPC interop: {prepared.protoset.label}", cov, run)
    missing = run["not_run"]
    out.print(f"[bold red]interrupted ({signame})[/bold red] after {time.monotonic() - t0:.1f} s: "
              f"{len(ran)} case runs kept, {len(missing)} did not run; the reports are marked incomplete",
              soft_wrap=True)
    for d, c in missing[:20]:
        out.print(f"  not run: {d} {c}", markup=False, soft_wrap=True)
    if len(missing) > 20:
        out.print(f"  … and {len(missing) - 20} more (the JSON's run.not_run lists them all)", soft_wrap=True)
    return EXIT_INCOMPLETE


@logged
def cmd_bench(args: argparse.Namespace, out: Console, log: runlog.RunLog) -> int:
    from harness.run import bench

    t0 = time.monotonic()
    chosen = directions(args.direction)
    prepared = _prepare(args)
    cases = bench.bench_cases(prepared, args.method) if args.method or not args.bench_cases else []
    cases += bench.named_cases(prepared, args.bench_cases or [])
    runner = select_runner(args.peer_runner)
    concurrencies = sorted({1, args.concurrency})
    out.print(f"bench: {len(cases)} cases ({', '.join(c.name for c in cases)}) x {len(chosen)} directions x "
              f"concurrency {' and '.join(map(str, concurrencies))}; each at most {args.calls} calls or "
              f"{args.duration:g} s; Go peer runner: {runner}", soft_wrap=True)
    with Session(prepared, runner) as session:
        phases = bench.run_bench(session, chosen, cases, concurrencies, args.calls, args.duration,
                                 on_phase=lambda d: out.print(f"  {d.name} measured ({time.monotonic() - t0:.1f} s)"))
    out.print(bench.render(phases))
    bad = [p for p in phases if not p.ok]
    for p in bad:
        out.print(f"[red]{p.direction} {p.case} (concurrency {p.concurrency}): {p.verdicts or 'no call'} "
                  f"{p.problem}[/red]", soft_wrap=True)
    if args.json:
        args.json.write_text(json.dumps({"phases": [p.to_json() for p in phases]}, indent=1))
    log.last.append(f"bench done in {time.monotonic() - t0:.1f} s")
    return 1 if bad else 0


def _too_low(out: Console, cov: coverage.Coverage, thresholds: dict[str, float]) -> bool:
    """Print each number under its --min-coverage; True when there is one."""
    problems = cov.below(thresholds)
    for problem in problems:
        out.print(f"coverage too low: {problem}", style="bold red", markup=False, soft_wrap=True)
    if problems:
        out.print("  add cases that carry the uncovered items (a case file, --cases), or lower --min-coverage; "
                  "`grpc-interop coverage --protos DIR` lists every gap", markup=False, soft_wrap=True)
    return bool(problems)


def _write_reports(args: argparse.Namespace, results: list, names: list[str], explanations: dict,
                   title: str, cov: coverage.Coverage | None, run: dict) -> None:
    """Every report asked for, from the same results; `run` says what was tested and what did not run."""
    if args.json:
        results_doc.write(args.json, results, cov.to_json() if cov is not None else None, run)
    if args.junit:
        export.junit(results, explanations, args.junit, run)
    summary_file = args.markdown or (Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get("GITHUB_STEP_SUMMARY") else None)
    if summary_file:
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        with summary_file.open("a", encoding="utf-8") as f:  # GITHUB_STEP_SUMMARY is appended to
            f.write(export.markdown(results, names, explanations, cov, run) + "\n")
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(export.html_page(results, names, explanations, title, cov, run),
                             encoding="utf-8")


def cmd_report(args: argparse.Namespace) -> int:
    if args.report_cmd == "timings":
        rows = [r for f in args.files for r in results_doc.read(f).results]
        table = shard_mod.write_timings(rows, args.out)
        print(f"{args.out}: {len(table)} cases, {sum(table.values()) / 1000:.1f} s in all")
        return 0
    merged = results_doc.merge([results_doc.read(f) for f in args.files], args.allow_incomplete)
    out = report.console()
    run = merged.run
    for line in _versions_lines(run):
        out.print(line, markup=False, soft_wrap=True)
    out.print(report.matrix(merged.results, merged.directions))
    explanations = merged.explanations
    failed = report.failed(merged.results)
    for r in failed:
        out.print(explanations.get((r.direction, r.case)) or record.brief(r), markup=False, soft_wrap=True)
        out.print()
    cov = coverage.from_json(merged.coverage) if merged.coverage else None
    _write_reports(args, merged.results, merged.directions, explanations, args.title, cov, run)
    if run["capabilities"]:
        out.print(report.capability_table(run["capabilities"]))
    if cov is not None:
        out.print(cov.summary(), markup=False, soft_wrap=True)
    for problem in results_doc.stale(run["divergences"]):
        out.print(f"stale known divergence: {problem}", style="bold red", markup=False, soft_wrap=True)
    for line in results_doc.not_exercised_lines(run["divergences"]):
        out.print(line, style="dim", markup=False, soft_wrap=True)
    if merged.missing:
        out.print(f"[bold red]incomplete[/bold red]: {len(merged.missing)} (direction, case) did not run "
                  f"(--allow-incomplete): " + ", ".join(f"{d} {c}" for d, c in merged.missing[:10])
                  + (" …" if len(merged.missing) > 10 else ""), soft_wrap=True)
    out.print(f"{report.summary(merged.results)} from {len(args.files)} file(s)")
    return 1 if failed else (EXIT_INCOMPLETE if merged.missing else 0)


def _versions_lines(run: dict) -> list[str]:
    if run.get("variants"):
        return [f"{label}: {versions.line(v)}" for label, v in run["variants"].items()]
    return [versions.line(run.get("versions") or {})]


def cmd_coverage(args: argparse.Namespace) -> int:
    """Coverage of the selected cases per direction (or of a run's results), every gap listed."""
    thresholds = coverage.parse_thresholds(args.min_coverage)
    prepared = _prepare(args)
    names = [d.name for d in directions(args.direction)]
    if args.results:
        data = json.loads(args.results.read_text(encoding="utf-8"))
        results = data["results"] if isinstance(data, dict) else data
        if args.direction:
            results = [r for r in results if r["direction"] in names]
        ran = coverage.ran_by_direction(results, names if args.direction else [])
    else:
        chosen = {c.name for c in select(prepared.cases, args.patterns)}
        ran = {d: set(chosen) for d in names}
    cov = coverage.measure(coverage.universe_of(prepared.protoset, prepared.cases, skip=prepared.skipped), prepared.cases, ran)
    out = report.console()
    # what the numbers leave out of the user's set: a stood-aside copy is not in the universe at all
    notice = prepared.protoset.notice()
    for line in [*(notice.splitlines() if notice else []), *(f"not generated: {g}" for g in prepared.gaps)]:
        out.print(f"not tested: {line}", markup=False, soft_wrap=True)
    coverage_view.print_coverage(out, cov)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(cov.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    return 1 if _too_low(out, cov, thresholds) else 0


def cmd_cases(args: argparse.Namespace) -> int:
    prepared = _prepare(args)
    for c in prepared.cases:
        print(f"{c.name}\t{c.calls[0].streaming}\t{c.source}")
    if prepared.protoset.notice():  # on stderr: the listing stays one case per line for scripts
        print(prepared.protoset.notice(), file=sys.stderr)
    for gap in prepared.gaps:
        print(f"not generated: {gap}", file=sys.stderr)
    return 0


def cmd_gen(args: argparse.Namespace) -> int:
    """Generate both languages' code; files a language refuses are listed with the tool's message
    (exit 1), the rest is generated."""
    ps = load(from_args(args))
    pkg = generate_python(ps)
    print(f"python: {pkg}")
    go = build_go(ps, args.go_build_tags)
    print(f"go:     {go.src}")
    return _print_findings(reported(ps, [*python_findings(pkg), *go.findings]))


def _print_findings(findings: list[Finding]) -> int:
    for f in findings:
        print(f"finding: {f.file}: {'Go' if f.lang == 'go' else 'Python'} ({f.tool}):", file=sys.stderr)
        print("  " + f.message.replace("\n", "\n  "), file=sys.stderr)
    return 1 if findings else 0


def cmd_peer(args: argparse.Namespace) -> int:
    build_ps = load(from_args(args))
    build = build_go(build_ps, args.go_build_tags)
    print(f"binary: {build.binary}")
    if not args.no_image:
        client = docker_client()
        if client is None:
            raise PeerError("no Docker engine answers; run `make setup` first, or pass --no-image")
        print(f"image:  {ensure_image(build, client)}")
    return _print_findings(reported(build_ps, list(build.findings)))


def cmd_serve(args: argparse.Namespace) -> int:
    """One server peer in the foreground, with the run's catalogue, for a debugger or a manual client."""
    prepared = _prepare(args)
    catalogue = cache.root() / "catalogue" / f"{prepared.protoset.digest[:20]}.json"
    catalogue.parent.mkdir(parents=True, exist_ok=True)
    catalogue.write_text(prepared.catalogue_json())
    catalogue.chmod(0o644)
    print(f"catalogue: {catalogue} ({len(prepared.catalogue)} cases)", file=sys.stderr)
    if args.lang == "go":
        build = prepared.build
        if select_runner(args.peer_runner) == "docker":
            # through the same lifecycle as a run's peers: hardened, labelled, and gone with this process
            with GoServer(build, "docker", catalogue, args.addr) as server:
                print(f"{server.describe()}; stop with Ctrl-C", file=sys.stderr)
                print(f"LISTENING {server.address}", flush=True)
                for chunk in server._container.logs(stream=True, follow=True):
                    sys.stderr.buffer.write(chunk)
                    sys.stderr.buffer.flush()
            return 0
        os.execv(build.binary, [str(build.binary), "serve", "--addr", args.addr, "--cases", str(catalogue)])
    from harness.engines.python_peer import main as py_main

    return py_main(["serve", *prepared.protoset.spec, "--addr", args.addr, "--cases", str(catalogue)]
                   + (["--aio"] if args.lang == "pyaio" else []))


def cmd_clean(args: argparse.Namespace) -> int:
    print(f"removed {clean(all_sessions=True)} container(s)")
    if args.cache:
        shutil.rmtree(cache.root(), ignore_errors=True)
        print(f"removed the cache folder {cache.root()}")
    return 0


def cmd_compat(args: argparse.Namespace) -> int:
    """Static descriptor diff and cross-revision wire runs against --base (harness/compat/cross_revision.py)."""
    from harness.compat.cross_revision import compat

    return compat(args.base, args.protos or args.protos_default, args.allow, args.json, args.peer_runner,
                  verbose=args.verbose, proto_paths=args.proto_paths, files=args.file_globs)


COMMANDS = {"run": cmd_run, "bench": cmd_bench, "coverage": cmd_coverage, "cases": cmd_cases, "gen": cmd_gen,
            "peer": cmd_peer, "serve": cmd_serve, "clean": cmd_clean, "compat": cmd_compat, "report": cmd_report,
            "fuzz": logged(lambda args, out, log: fuzz_command.cmd_fuzz(args, log.last)),
            "probe": probe_command.cmd_probe}

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
