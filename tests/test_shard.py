"""Sharding (harness/run/shard.py): deterministic, balanced by cost, every case in exactly one shard."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.run import shard
from harness.run.runner import DIRECTIONS, plan
from harness.report.verdicts import FINDING_PREFIX
from python_impl.contract import Diff, Result


def test_parse_accepts_i_of_n_and_names_the_fix() -> None:
    assert shard.parse("2/3") == shard.Shard(2, 3) and str(shard.parse(" 1 / 1 ")) == "1/1"
    assert shard.parse(None) is None
    for bad in ("0/3", "4/3", "3", "a/b", "1/0"):
        with pytest.raises(shard.ShardError, match="give I/N"):
            shard.parse(bad)


def test_every_case_is_in_exactly_one_shard_whatever_the_input_order() -> None:
    names = [f"pkg.S/M{i}/T/pattern{i % 7}" for i in range(200)]
    timings = {n: (i * 37) % 101 + 1 for i, n in enumerate(names)}
    first = shard.assign(names, 3, timings)
    shuffled = names[:]
    random.Random(4).shuffle(shuffled)
    assert shard.assign(shuffled, 3, timings) == first  # no dependence on generation order
    parts = [shard.in_shard(shard.Shard(i, 3), shuffled, timings) for i in (1, 2, 3)]
    assert set().union(*parts) == set(names) and sum(len(p) for p in parts) == len(names)


def test_heavy_kinds_are_spread_when_no_timing_names_them() -> None:
    """Without a table, deadline and size-limit cases cost what their kind costs: they are dealt
    round the shards instead of piling up in one (a count-based split would put them anywhere)."""
    heavy = [f"s.S/M{i}/protocol/near_size_limit" for i in range(3)] + [f"s.S/M{i}/stream/deadline_exceeded"
                                                                       for i in range(3)]
    light = [f"s.S/M{i}/T/typical" for i in range(60)]
    where = shard.assign(heavy + light, 3, {})
    assert sorted(where[n] for n in heavy if "size" in n) == [1, 2, 3]
    assert sorted(where[n] for n in heavy if "deadline" in n) == [1, 2, 3]
    loads = shard.loads(heavy + light, 3, {})
    assert max(loads) - min(loads) <= shard.kind_cost("s.S/M/T/typical")


def test_the_checked_in_table_balances_protos_within_one_percent() -> None:
    table = shard.load_timings()
    assert len(table) > 500  # measured on protos/ (BENCHMARKS.md)
    loads = shard.loads(sorted(table), 3, table)
    assert (max(loads) - min(loads)) / max(loads) < 0.01, loads


def test_a_results_file_is_a_timing_table(tmp_path: Path) -> None:
    rows = [Result("a/b/c", "py→go", "pass", [], 2.4), Result("a/b/c", "go→py", "pass", [], 3.0),
            Result("a/b/d", "py→go", "fail", [Diff(0, "x", "1", "2")], 0.0)]
    (tmp_path / "r.json").write_text(json.dumps({"results": [r.to_json() for r in rows]}))
    assert shard.load_timings(tmp_path / "r.json") == {"a/b/c": 5, "a/b/d": 1}
    shard.write_timings(rows, tmp_path / "t.json")
    assert shard.load_timings(tmp_path / "t.json") == {"a/b/c": 5, "a/b/d": 1}
    (tmp_path / "bad.json").write_text("[1")
    with pytest.raises(shard.ShardError, match="bad.json"):
        shard.load_timings(tmp_path / "bad.json")


@dataclass
class _Case:
    name: str
    control: str | None = None


class _Prepared:
    """What plan() reads of a Prepared: the catalogue, findings per direction, runnable cases."""

    def __init__(self, names: list[str], findings: list[str]) -> None:
        self.cases = [_Case(n) for n in names]
        self.rows = findings

    def finding_results(self, d, patterns=None) -> list[Result]:
        return [Result(FINDING_PREFIX + f, d.name, "finding", []) for f in self.rows]

    def runnable(self, d, cases):
        return cases


def test_plan_shards_cover_every_direction_case_and_finding_once() -> None:
    names = [f"p.S/M{i % 9}/T/x{i}" for i in range(120)] + ["p.S/M0/protocol/near_size_limit"]
    prepared = _Prepared(names, ["a.proto", "b/c.proto", "d.proto"])
    plans = [plan(prepared, list(DIRECTIONS), None, shard.Shard(i, 3), {}) for i in (1, 2, 3)]
    for d in DIRECTIONS:
        everything = plans[0].expected[d.name]
        assert all(p.expected[d.name] == everything for p in plans)  # each shard records the whole selection
        mine = [n for p in plans for n in p.mine[d.name]]
        assert sorted(mine) == sorted(everything) and len(mine) == len(set(mine))
    # all directions of a case in the same shard
    for p in plans:
        assert {c.name for c in p.cases} == {n for n in p.mine["py→go"] if not n.startswith(FINDING_PREFIX)}
