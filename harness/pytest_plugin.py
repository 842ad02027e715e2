"""pytest plugin (entry point `pytest11`): options, hooks and small fixtures only.

A test that asks for `interop_run` is parametrized over direction × case, one test id each
(`py-go:routeguide.RouteGuide/GetFeature/named_point`), so `-k` filters work. The machinery lives in
harness.runner; Go-client directions run all their selected cases in one batch. In a repository with
no such test, `--interop-protos DIR` brings its own (harness/pytest_interop.py).
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness import cache
from harness.cases import channels as channel_cases
from harness.cases import profiles
from harness.cases.model import Case
from harness.engines.peer import PeerError, select_runner
from harness.protoset import discover
from harness.protoset.gotoolchain import GoToolchainError
from harness.report import coverage
from harness.protoset.codegen import GO_TAGS_ENV
from harness.run import shard as shard_mod
from harness.run import runlog
from harness.run.runlog import RunLog
from harness.run.runner import (DEFAULT_CONCURRENCY, MAX_CONCURRENCY, Direction, ExternalServer, Prepared, Session,
                                check_concurrency, directions, prepare, share)
from python_impl.contract import Diff, Result

_PREPARED = pytest.StashKey[Prepared]()
_SHARED = pytest.StashKey[tuple]()  # xdist controller: (session, servers, runner, batch folder)
_RAN = pytest.StashKey[list]()  # (direction, case) of every interop test that ran, from its reports
_COVERAGE = pytest.StashKey[list]()  # the lines the terminal summary prints about coverage
_LOG = pytest.StashKey[RunLog]()  # xdist controller: fd 2 of the shared servers, into a run log
_LOG_DONE = pytest.StashKey[RunLog]()  # that log once closed, for the terminal summary
_RAN_PROPERTY = "interop_ran"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("grpc-interop")
    # default None: given or not decides whether the plugin adds its own test (pytest_collection_modifyitems)
    g.addoption("--interop-protos", default=None,
                help="proto folder under test; a buf.yaml / buf.work.yaml there gives the roots "
                     "(default: protos, unless --interop-proto-path is given)")
    g.addoption("--interop-proto-path", action="append", default=[], metavar="DIR",
                help="another import root, as protoc's -I; its files join the set (repeatable)")
    g.addoption("--interop-files", action="append", default=[], metavar="GLOB",
                help="only these files' services get cases (globs over import paths); repeatable")
    g.addoption("--interop-cases", action="append", type=Path, default=None,
                help="case file(s) instead of the built-in ones")
    g.addoption("--interop-divergences", action="append", type=Path, default=None,
                help="known-divergence file(s) added to the built-in ones")
    g.addoption("--interop-no-generated", action="store_true",
                help="only the case files; no cases generated from the descriptors")
    g.addoption("--interop-direction", action="append", default=None,
                help="only these directions (py-go, go-py, pyaio-go, go-pyaio, py-py, pyaio-pyaio, go-go); repeatable")
    g.addoption("--interop-min-coverage", action="append", default=None, metavar="PCT|KIND=PCT",
                help="fail the session when the field coverage of the interop cases that ran (or the named "
                     "number, e.g. 'enum values=100') is below PCT in some direction (a direction of "
                     "--interop-direction where -k left nothing to run counts 0); repeatable")
    g.addoption("--interop-shard", default=None, metavar="I/N",
                help="only shard I of N of the cases (1-based; all directions of a case in one shard), split as "
                     "`grpc-interop run --shard` splits them, balanced by measured cost")
    g.addoption("--interop-shard-timings", type=Path, default=None, metavar="FILE",
                help="case costs for --interop-shard (a `grpc-interop run --json` file or a timing table; "
                     "default: the table shipped with the harness, then each case's kind)")
    g.addoption("--interop-go-build-tags", default=os.environ.get(GO_TAGS_ENV, ""), metavar="TAGS",
                help="Go build tags for the Go peer and its generators, comma-separated (default "
                     f"${GO_TAGS_ENV}); protolegacy makes protobuf-go accept MessageSet")
    g.addoption("--interop-channel", choices=channel_cases.MODES, default=None,
                help="which cases also run over TLS or mTLS (as grpc-interop run --channel)")
    g.addoption("--interop-profile", choices=profiles.PROFILES, default=profiles.DEFAULT,
                help="how much to run, as grpc-interop run --profile: quick, full (default) or deep (full with "
                     f"--interop-channel {profiles.DEEP_CHANNEL}; the fuzz pass is grpc-interop's alone)")
    g.addoption("--peer-runner", default=os.environ.get("INTEROP_PEER_RUNNER", "auto"),
                choices=["auto", "docker", "process"],
                help="how the Go peer runs (auto: docker when an engine answers, else a loud fallback)")
    g.addoption("--interop-concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                help=f"cases in flight at once per direction, on one connection (1-{MAX_CONCURRENCY}; "
                     f"default {DEFAULT_CONCURRENCY})")
    g.addoption("--interop-cache-dir", type=Path, default=None, metavar="DIR",
                help=f"where generated code and Go peer builds are kept (default: ${cache.ENV}, "
                     f"else $XDG_CACHE_HOME/{cache.APP}, else ~/.cache/{cache.APP})")


DEFAULT_PROTOS = "protos"
BUILTIN_TESTS = "harness.pytest_interop"


def pytest_configure(config: pytest.Config) -> None:
    # registered here too: a user's repository has no pytest configuration naming it (--strict-markers)
    config.addinivalue_line("markers", "interop: a real cross-language run (needs the Go peer)")
    if config.getoption("interop_cache_dir") is not None:
        cache.use(config.getoption("interop_cache_dir"))
    config.pluginmanager.register(_RanRecorder(config), "grpc-interop-ran")


def _prepared(config: pytest.Config) -> Prepared:
    if _PREPARED not in config.stash:
        paths = config.getoption("interop_proto_path")
        protos = config.getoption("interop_protos") or (None if paths else DEFAULT_PROTOS)
        ps = discover(protos, paths, config.getoption("interop_files"))
        profile = config.getoption("interop_profile")
        config.stash[_PREPARED] = prepare(ps, config.getoption("interop_cases"),
                                          generated=not config.getoption("interop_no_generated"),
                                          divergence_files=config.getoption("interop_divergences"),
                                          go_tags=config.getoption("interop_go_build_tags"),
                                          channel=profiles.channel_mode(profile, config.getoption("interop_channel"))
                                          or "default", profile=profile)
        prepared = config.stash[_PREPARED]
        reporter = config.pluginmanager.get_plugin("terminalreporter")  # none on xdist workers
        for line in [prepared.protoset.notice(), *(f"not generated: {g}" for g in prepared.gaps)]:
            if line and reporter is not None:
                reporter.write_line(f"grpc-interop: {line}")
    return config.stash[_PREPARED]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "interop_run" not in metafunc.fixturenames:
        return
    directions = _directions(metafunc.config)
    prepared = _prepared(metafunc.config)
    if not prepared.cases:
        # `grpc-interop run` fails here too: a green run that exchanged nothing tested nothing
        raise pytest.UsageError(f"grpc-interop: the proto set at {prepared.protoset.label} gives no cases (no "
                                "service and no message type to exchange); point --interop-protos at your protos")
    params = []
    shard = shard_mod.parse(metafunc.config.getoption("interop_shard"))
    ours = shard_mod.in_shard(shard, [c.name for c in prepared.cases],
                              shard_mod.load_timings(metafunc.config.getoption("interop_shard_timings"))
                              if shard else {})
    for d in directions:
        # A file a language cannot compile or load is one failing test per direction with that
        # language on one side (finding/<file>), instead of its cases. Knowing Go's findings takes
        # the Go peer's build: only when interop tests are selected at all.
        selected = _interop_selected(metafunc.config)
        findings = prepared.finding_results(d) if selected else []
        cases = prepared.runnable(d, prepared.cases) if selected else prepared.cases
        if shard is not None:  # the same split as `grpc-interop run --shard` (harness/run/shard.py)
            findings = [r for r in findings if shard_mod.finding_shard(r.case, shard.count) == shard.index]
            cases = [c for c in cases if c.name in ours]
        params += [pytest.param(d, Finding(r), id=f"{d.slug}:{r.case}", marks=pytest.mark.interop) for r in findings]
        params += [pytest.param(d, c, id=f"{d.slug}:{c.name}", marks=pytest.mark.interop) for c in cases]
    metafunc.parametrize(("interop_direction", "interop_case"), params)


@dataclass(frozen=True)
class Finding:
    """A test parameter standing for a proto file a language cannot compile or load."""
    result: Result

    @property
    def name(self) -> str:
        return self.result.case


class _BuiltinTests(pytest.Module):
    """harness/pytest_interop.py, imported as the installed module it is (not from a path, which
    would put site-packages first on sys.path)."""

    def _getobj(self) -> Any:
        return importlib.import_module(BUILTIN_TESTS)


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect: the added tests are filtered like any other
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """`pytest --interop-protos DIR` in a repository whose tests do not ask for `interop_run` (or that
    has no tests at all): add the plugin's own interop test, so the cases run with no conftest."""
    asked = config.getoption("interop_protos") is not None or config.getoption("interop_proto_path")
    if not asked or any("interop_run" in getattr(i, "fixturenames", ()) for i in items):
        return
    path = Path(importlib.import_module(BUILTIN_TESTS).__file__)
    module = _BuiltinTests.from_parent(session, path=path, nodeid="grpc-interop")
    items.extend(session.genitems(module))


def _is_xdist_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


def _directions(config: pytest.Config) -> list[Direction]:
    return directions(config.getoption("interop_direction"))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist the controller starts the server peers once; every worker uses the same ones."""
    config = session.config
    if not _is_xdist_controller(config) or not _interop_selected(config):
        return
    runner = select_runner(config.getoption("peer_runner"))
    shared = Session(_prepared(config), runner)
    sides = sorted({d.server for d in _directions(config)})
    # The Python servers live in this process, whose fd 2 is the terminal (a worker's is captured per
    # test): grpc core's lines about the handshakes the TLS cases refuse on purpose go to a log; the
    # workers, started after this, keep the terminal (_TerminalForWorkers)
    log = config.stash[_LOG] = RunLog(runlog.default_path("pytest")).__enter__()
    config.pluginmanager.register(_TerminalForWorkers(log), "grpc-interop-terminal-for-workers")
    try:
        servers = {side: share(shared.server(side), shared.certs(), log.path).to_json() for side in sides}
        config.stash[_SHARED] = (shared, servers, runner, tempfile.mkdtemp(prefix="interop-batches-"))
    except BaseException:
        _close_log(config)
        if log.count:  # what grpc printed before the error belongs beside it
            print(f"--- the shared servers' log ({log.path}) ---\n{log.tail(40)}", file=sys.stderr)
        shared.__exit__(None, None, None)
        raise


def _close_log(config: pytest.Config) -> None:
    log = config.stash.get(_LOG, None)
    if log is not None:
        del config.stash[_LOG]
        log.__exit__(None, None, None)
        log.close()
        config.stash[_LOG_DONE] = log


class _TerminalForWorkers:
    """xdist starts its worker processes after the controller's log took fd 2, and a child inherits
    fd 2: the log pauses while they are started, so they keep the terminal (a crashing worker's last
    words stay in sight), and so does the process that replaces a crashed one."""

    def __init__(self, log: RunLog) -> None:
        self.log, self.pending = log, 0

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, specs: list) -> None:
        self._pause(len(specs))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        if error is not None:  # xdist replaces it next (unless its restart limit is reached)
            self._pause(1)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_newgateway(self, gateway: Any) -> None:  # one worker process started
        self.pending -= 1
        if self.pending <= 0:
            self.log.resume()

    def _pause(self, processes: int) -> None:
        self.pending = processes
        if processes:
            self.log.pause()


def _interop_selected(config: pytest.Config) -> bool:
    """False when `-m` rules the interop tests out: then no peer is built or started."""
    from _pytest.mark.expression import Expression

    markexpr = config.getoption("markexpr")
    return not markexpr or Expression.compile(markexpr).evaluate(lambda name, **kw: name == "interop")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    if _SHARED not in node.config.stash:
        return
    shared, servers, runner, batches = node.config.stash[_SHARED]
    node.workerinput["interop"] = json.dumps({"servers": servers, "runner": runner, "batches": batches})


def pytest_sessionfinish(session: pytest.Session) -> None:
    try:
        if _SHARED in session.config.stash:
            shared, _, _, batches = session.config.stash[_SHARED]
            shutil.rmtree(batches, ignore_errors=True)
            shared.__exit__(None, None, None)
    finally:
        _close_log(session.config)
    _judge_coverage(session)


class _RanRecorder:
    """Notes which case ran in which direction, from the tests' reports (workers' reports reach the
    xdist controller with their user properties, so the controller sees every run)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == _RAN_PROPERTY:
                self.config.stash.setdefault(_RAN, []).append(tuple(value))


def _judge_coverage(session: pytest.Session) -> None:
    """The coverage of the interop cases that ran, per direction; below --interop-min-coverage the
    session fails, naming the number and the direction."""
    config = session.config
    thresholds = coverage.parse_thresholds(config.getoption("interop_min_coverage"))
    ran = config.stash.get(_RAN, [])
    if hasattr(config, "workerinput") or not (ran or thresholds):
        return
    prepared = _prepared(config)
    names = [d.name for d in _directions(config)]
    results = [{"direction": d, "case": c} for d, c in ran]
    cov = coverage.measure(coverage.universe_of(prepared.protoset, prepared.cases, skip=prepared.skipped), prepared.cases,
                           coverage.ran_by_direction(results, names))
    problems = cov.below(thresholds)
    config.stash[_COVERAGE] = [cov.summary()] + [f"coverage too low: {p}" for p in problems]
    if problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_report_header(config: pytest.Config) -> str | None:
    """The profile of the interop cases (issue 19: each report names its profile)."""
    if not _interop_selected(config):
        return None
    return f"grpc-interop: profile {config.getoption('interop_profile')}"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    log = config.stash.get(_LOG_DONE, None)
    if log is not None and log.count:
        terminalreporter.write_line(f"grpc-interop: {log.count} lines the shared servers printed (grpc core, "
                                    f"python_impl) are in {log.path}")
    lines = config.stash.get(_COVERAGE, [])
    if lines:
        terminalreporter.section("grpc-interop coverage")
        for i, line in enumerate(lines):
            terminalreporter.write_line(line, red=i > 0, bold=i > 0)


@pytest.fixture(scope="session")
def interop_session(request: pytest.FixtureRequest) -> Any:
    """Peers for the whole test session: the Go peer is built once, started once, always removed.
    Under xdist the servers are the controller's; workers share one Go-client batch per direction."""
    config = request.config
    handed = json.loads(getattr(config, "workerinput", {}).get("interop", "null") or "null")
    runner = handed["runner"] if handed else select_runner(config.getoption("peer_runner"))
    try:
        concurrency = check_concurrency(config.getoption("interop_concurrency"))
    except ValueError as e:
        raise pytest.UsageError(f"--interop-concurrency: {e}") from None
    with Session(_prepared(config), runner, concurrency=concurrency) as session:
        if handed:
            session.external = {side: ExternalServer(**v) for side, v in handed["servers"].items()}
        session.batch_dir = Path(handed["batches"]) if handed else None
        if session.batch_dir is not None:
            # directions overlap across workers, as in run_all; the cases that need their server to
            # themselves (runner.lane: restarts, refused handshakes) go one direction at a time per
            # server, across every worker
            session.exclusive_lock = lambda side: _file_lock(session.batch_dir / f"exclusive-{side}.lock")
        yield session


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _run_once(session: Session, d: Direction, cases: list[Case]) -> list[Result]:
    """The batch's results; a batch that cannot run at all is an error for each of its cases,
    recorded once (not re-run, and re-waited for, by every test)."""
    try:
        return session.run(d, cases)
    except (PeerError, GoToolchainError) as e:
        return [Result(c.name, d.name, "error", [Diff(0, "error", "the batch to run", str(e)[-4000:])]) for c in cases]


def _batch(session: Session, d: Direction, cases: list[Case]) -> dict[str, Result]:
    """One batch per direction for the whole run: under xdist the first worker runs it, the others
    wait on the lock and read its results."""
    if session.batch_dir is None:
        return {r.case: r for r in _run_once(session, d, cases)}
    with (session.batch_dir / f"{d.slug}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = session.batch_dir / f"{d.slug}.json"
        if not done.exists():
            results = _run_once(session, d, cases)
            done.write_text(json.dumps([r.to_json() for r in results], ensure_ascii=False))
        return {r["case"]: Result.from_json(r) for r in json.loads(done.read_text())}


@dataclass
class InteropRun:
    direction: Direction
    case: Case | Finding
    result: Result
    session: Session

    def assert_pass(self) -> None:
        if self.result.verdict == "divergence":
            pytest.xfail(f"known divergence: {self.result.diffs[-1].got}")
        if self.result.verdict == "capability":
            pytest.xfail(f"capability one side lacks: {self.result.diffs[-1].got}")
        if self.result.verdict != "pass":
            pytest.fail(self.session.explain(self.direction, self.result), pytrace=False)


@pytest.fixture
def interop_run(request: pytest.FixtureRequest, interop_session: Any, interop_direction: Direction,
                interop_case: Case) -> InteropRun:
    """Run one case in one direction (a Go client's whole batch on its first use)."""
    d, s = interop_direction, interop_session
    if isinstance(interop_case, Finding):
        return InteropRun(d, interop_case, interop_case.result, s)
    request.node.user_properties.append((_RAN_PROPERTY, (d.name, interop_case.name)))
    # Every direction runs as one batch: the Go client in one process, pyaio on one event loop, py on
    # one channel, each with up to --interop-concurrency cases in flight.
    if d.name not in s.batches:
        # session.items is the final selection (after -k): batch exactly the cases that will run.
        chosen = [i.callspec.params["interop_case"] for i in request.session.items
                  if getattr(i, "callspec", None) and i.callspec.params.get("interop_direction") == d
                  and isinstance(i.callspec.params["interop_case"], Case)]
        s.batches[d.name] = _batch(s, d, chosen)
    result = s.batches[d.name][interop_case.name]
    return InteropRun(d, interop_case, result, s)
