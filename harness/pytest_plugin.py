"""pytest plugin (entry point `pytest11`): options, hooks and small fixtures only.

A test that asks for `interop_run` is parametrized over direction × case, one test id each
(`py-go:routeguide.RouteGuide/GetFeature/named_point`), so `-k` filters work. The machinery lives in
harness.runner; Go-client directions run all their selected cases in one batch.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.cases.model import Case
from harness.engines.peer import PeerError, select_runner
from harness.protoset.codegen import GO_TAGS_ENV
from harness.run.runner import Direction, ExternalServer, Prepared, Session, directions, prepare, share
from python_impl.contract import Diff, Result

_PREPARED = pytest.StashKey[Prepared]()
_SHARED = pytest.StashKey[tuple]()  # xdist controller: (session, servers, runner, batch folder)


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("grpc-interop")
    g.addoption("--interop-protos", default="protos", help="proto folder under test (default: protos)")
    g.addoption("--interop-cases", action="append", type=Path, default=None,
                help="case file(s) instead of the built-in ones")
    g.addoption("--interop-divergences", action="append", type=Path, default=None,
                help="known-divergence file(s) added to the built-in ones")
    g.addoption("--interop-no-generated", action="store_true",
                help="only the case files; no cases generated from the descriptors")
    g.addoption("--interop-direction", action="append", default=None,
                help="only these directions (py-go, go-py, pyaio-go, go-pyaio, py-py, pyaio-pyaio, go-go); repeatable")
    g.addoption("--interop-go-build-tags", default=os.environ.get(GO_TAGS_ENV, ""), metavar="TAGS",
                help="Go build tags for the Go peer and its generators, comma-separated (default "
                     f"${GO_TAGS_ENV}); protolegacy makes protobuf-go accept MessageSet")
    g.addoption("--peer-runner", default=os.environ.get("INTEROP_PEER_RUNNER", "auto"),
                choices=["auto", "docker", "process"],
                help="how the Go peer runs (auto: docker when an engine answers, else a loud fallback)")


def _prepared(config: pytest.Config) -> Prepared:
    if _PREPARED not in config.stash:
        config.stash[_PREPARED] = prepare(config.getoption("interop_protos"), config.getoption("interop_cases"),
                                          generated=not config.getoption("interop_no_generated"),
                                          divergence_files=config.getoption("interop_divergences"),
                                          go_tags=config.getoption("interop_go_build_tags"))
        notice = config.stash[_PREPARED].protoset.notice()
        reporter = config.pluginmanager.get_plugin("terminalreporter")  # none on xdist workers
        if notice and reporter is not None:
            reporter.write_line(f"grpc-interop: {notice}")
    return config.stash[_PREPARED]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "interop_run" not in metafunc.fixturenames:
        return
    directions = _directions(metafunc.config)
    prepared = _prepared(metafunc.config)
    params = []
    for d in directions:
        # A file a language cannot compile or load is one failing test per direction with that
        # language on one side (finding/<file>), instead of its cases. Knowing Go's findings takes
        # the Go peer's build: only when interop tests are selected at all.
        selected = _interop_selected(metafunc.config)
        findings = prepared.finding_results(d) if selected else []
        cases = prepared.runnable(d, prepared.cases) if selected else prepared.cases
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
    config.stash[_SHARED] = (shared, {side: share(shared.server(side)).to_json() for side in sides}, runner,
                             tempfile.mkdtemp(prefix="interop-batches-"))


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
    if _SHARED in session.config.stash:
        shared, _, _, batches = session.config.stash[_SHARED]
        shared.__exit__(None, None, None)
        shutil.rmtree(batches, ignore_errors=True)


@pytest.fixture(scope="session")
def interop_session(request: pytest.FixtureRequest) -> Any:
    """Peers for the whole test session: the Go peer is built once, started once, always removed.
    Under xdist the servers are the controller's; workers share one Go-client batch per direction."""
    config = request.config
    handed = json.loads(getattr(config, "workerinput", {}).get("interop", "null") or "null")
    runner = handed["runner"] if handed else select_runner(config.getoption("peer_runner"))
    with Session(_prepared(config), runner) as session:
        if handed:
            session.external = {side: ExternalServer(**v) for side, v in handed["servers"].items()}
        session.batch_dir = Path(handed["batches"]) if handed else None
        yield session


def _run_once(session: Session, d: Direction, cases: list[Case]) -> list[Result]:
    """The batch's results; a batch that cannot run at all is an error for each of its cases,
    recorded once (not re-run, and re-waited for, by every test)."""
    try:
        return session.run(d, cases)
    except PeerError as e:
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
            done.write_text(json.dumps([r.to_json() for r in _run_once(session, d, cases)], ensure_ascii=False))
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
        if self.result.verdict != "pass":
            protos = self.session.prepared.protoset.root
            pytest.fail(self.session.explain(self.direction, self.result, protos), pytrace=False)


@pytest.fixture
def interop_run(request: pytest.FixtureRequest, interop_session: Any, interop_direction: Direction,
                interop_case: Case) -> InteropRun:
    """Run one case in one direction (a Go client's whole batch on its first use)."""
    d, s = interop_direction, interop_session
    if isinstance(interop_case, Finding):
        return InteropRun(d, interop_case, interop_case.result, s)
    if d.client == "py":
        result = s.run(d, [interop_case])[0]
    else:  # go: one client process; pyaio: one event loop, for all the direction's cases
        if d.name not in s.batches:
            # session.items is the final selection (after -k): batch exactly the cases that will run.
            chosen = [i.callspec.params["interop_case"] for i in request.session.items
                      if getattr(i, "callspec", None) and i.callspec.params.get("interop_direction") == d
                      and isinstance(i.callspec.params["interop_case"], Case)]
            s.batches[d.name] = _batch(s, d, chosen)
        result = s.batches[d.name][interop_case.name]
    return InteropRun(d, interop_case, result, s)
