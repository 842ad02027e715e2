"""pytest plugin (entry point `pytest11`): options, hooks and small fixtures only.

A test that asks for `interop_run` is parametrized over direction × case, one test id each
(`py-go:routeguide.RouteGuide/GetFeature/named_point`), so `-k` filters work. The machinery lives in
harness.runner; Go-client directions run all their selected cases in one batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.cases import Case
from harness.peer import select_runner
from harness.runner import DIRECTIONS, Direction, Prepared, Session, direction, prepare
from python_impl.client import Result

_PREPARED = pytest.StashKey[Prepared]()


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
    g.addoption("--peer-runner", default=os.environ.get("INTEROP_PEER_RUNNER", "auto"),
                choices=["auto", "docker", "process"],
                help="how the Go peer runs (auto: docker when an engine answers, else a loud fallback)")


def _prepared(config: pytest.Config) -> Prepared:
    if _PREPARED not in config.stash:
        config.stash[_PREPARED] = prepare(config.getoption("interop_protos"), config.getoption("interop_cases"),
                                          generated=not config.getoption("interop_no_generated"),
                                          divergence_files=config.getoption("interop_divergences"))
    return config.stash[_PREPARED]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "interop_run" not in metafunc.fixturenames:
        return
    names = metafunc.config.getoption("interop_direction")
    directions = [direction(n) for n in names] if names else list(DIRECTIONS)
    cases = _prepared(metafunc.config).cases
    metafunc.parametrize(("interop_direction", "interop_case"),
                         [pytest.param(d, c, id=f"{d.slug}:{c.name}", marks=pytest.mark.interop)
                          for d in directions for c in cases])


@pytest.fixture(scope="session")
def interop_session(request: pytest.FixtureRequest) -> Any:
    """Peers for the whole test session: the Go peer is built once, started once, always removed."""
    runner = select_runner(request.config.getoption("peer_runner"))
    with Session(_prepared(request.config), runner) as session:
        session.batches = {}  # direction name -> {case name: Result}
        yield session


@dataclass
class InteropRun:
    direction: Direction
    case: Case
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
    if d.client == "py":
        result = s.run(d, [interop_case])[0]
    else:
        if d.name not in s.batches:
            # session.items is the final selection (after -k): batch exactly the cases that will run.
            chosen = [i.callspec.params["interop_case"] for i in request.session.items
                      if getattr(i, "callspec", None) and i.callspec.params.get("interop_direction") == d]
            s.batches[d.name] = {r.case: r for r in s.run(d, chosen)}
        result = s.batches[d.name][interop_case.name]
    return InteropRun(d, interop_case, result, s)
