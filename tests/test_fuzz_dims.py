"""The protocol dimensions of `grpc-interop fuzz` (harness/fuzz/dims/): loaded by name, seeded and
named per dimension, every drawn call a legal case that keeps its new keys through a saved case
file, and the draws stay where both libraries agree (sizes under grpcio's limits, codes either
client reads)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf import descriptor_pool

from harness.cases import model
from harness.fuzz import dims, examples, run
from harness.fuzz.dims import metadata, status
from python_impl import plan

SEED = 3  # the seed of conftest's `draw` here


def _method(name: str) -> Any:
    svc, _, meth = name.partition("/")
    return descriptor_pool.Default().FindServiceByName(svc).methods_by_name[meth]


def test_dimensions_load_by_name_and_a_missing_one_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dims.available() == dims.NAMES and dims.parse(None) == dims.NAMES
    assert dims.parse("status, metadata,status") == ("status", "metadata")
    with pytest.raises(dims.DimensionError, match="unknown fuzz dimension 'nope'; the dimensions are values"):
        dims.parse("values,nope")
    monkeypatch.setattr(dims, "NAMES", (*dims.NAMES, "ghost"))
    with pytest.raises(dims.DimensionError, match=r"'ghost' has no module harness/fuzz/dims/ghost.py"):
        dims.parse("ghost")
    assert "ghost" not in dims.available()  # the default: what this install has


def test_each_dimension_draws_legal_cases_named_and_seeded_by_dimension(seed_gen: Any) -> None:
    m = _method("shapes.v1.Shapes/Bidi")
    cases = []
    for d in dims.NAMES:
        drawn = examples.draw(m, 7, 0, 4, d)
        assert drawn and all(c.name.startswith(f"shapes.v1.Shapes/Bidi/fuzz/{d}/") for c in drawn), d
        assert all(examples.dimension_of(c.name) == d for c in drawn)
        cases += drawn
    # a saved case file carries every key a dimension adds (server.check_deadline, fractional timeouts)
    loaded = model.load_file("fuzz.yaml", text=run.save_text(cases))
    as_text = lambda cs: [json.dumps(c.to_json(), sort_keys=True) for c in cs]  # noqa: E731
    assert as_text(loaded) == as_text(cases)
    assert any(c.calls[0].server.get("check_deadline") for c in loaded)


def test_metadata_blocks_stay_under_grpcio_soft_limit_and_reach_every_place(seed_gen: Any, draw: Any) -> None:
    calls = draw(metadata.calls(_method("shapes.v1.Shapes/ServerStream")), 30)
    blocks = [b for c in calls for b in (c.metadata, c.expect.get("headers") or {}, c.expect.get("trailers") or {}) if b]
    assert all(metadata.size(b) <= metadata.BLOCK_BUDGET for b in blocks)
    assert all(c.expect.get("headers") or {} for c in calls if c.expect.get("headers") and c.expect["responses"])
    # headers on a response stream with no response are tagged (grpc-go's Trailers-Only answer, a known
    # divergence that excuses a missing header) and expect no trailer that it could hide
    assert all(metadata.tag(c) == "trailers_only" and "trailers" not in c.expect
               for c in calls if c.expect.get("headers") and not c.expect["responses"])
    values = [(k, v) for b in blocks for k, vs in b.items() for v in vs]
    assert any(k.endswith("-bin") for k, _ in values) and any(v == "" for _, v in values)
    assert all(base64.b64decode(v, validate=True) is not None for k, v in values if k.endswith("-bin"))
    assert any(len(vs) > 1 for b in blocks for vs in b.values())  # repeated keys
    assert all(k == k.lower() and not k.startswith(("interop-", "grpc-")) or k.startswith("grpc-x-fuzz")
               for k, _ in values)


def test_status_codes_past_16_are_tagged_and_every_code_one_client_reads(seed_gen: Any, draw: Any) -> None:
    calls = draw(status.calls(_method("shapes.v1.Shapes/Unary")), 50)
    past = [c for c in calls if status.tag(c)]
    assert past and all(c.expect == {"status": "UNKNOWN", "message": "", "responses": []} for c in past)
    assert all(17 <= int(c.server["status"][5:]) <= 2**31 - 2 for c in past if status.tag(c) == "code_past_16")
    assert all(int(c.server["status"][5:]) >= 2**31 - 1 for c in past if status.tag(c) != "code_past_16")
    assert {c.expect["status"] for c in calls if not status.tag(c)} <= set(model.STATUS_CODES[1:])
    assert any(c.expect.get("details") for c in calls)
    assert all(status.wire_size(c.expect["message"], c.expect.get("details") or []) <= metadata.BLOCK_BUDGET
               for c in calls if not status.tag(c))
    name = examples.renamed("a.B/M/fuzz/status/s1-r0-e3", "status",
                            next(c for c in past if status.tag(c) == "code_past_16"), "-min")
    assert name == "a.B/M/fuzz/status/code_past_16/s1-r0-e3-min"


def test_the_deadline_check_range() -> None:
    # 500 ms of grace below; grpcio's rounding (measured up to 4%) and 27 000 h cap above
    assert plan.deadline_ok(2001, 1502) and not plan.deadline_ok(2001, 1499)
    assert plan.deadline_ok(2001, 2100) and not plan.deadline_ok(2001, 2999)  # a whole-second round-up is caught
    # no grace above: a client that sends 400 ms more than it was given is caught (time only shortens)
    assert plan.deadline_ok(2001, 2101) and not plan.deadline_ok(2001, 2401)
    # a grpc-go client rounds up only at its 8th digit: 4% late is grpcio's rounding, never Go's
    assert plan.deadline_ok(2001, 2081) and not plan.deadline_ok(2001, 2081, go_client=True)
    assert plan.deadline_ok(2001, 2001, go_client=True) and plan.deadline_ok(10**9, 10**9 + 9_000, go_client=True)
    assert plan.deadline_ok(100_000, 104_000) and not plan.deadline_ok(100_000, 106_000)
    ten_years = 10 * 365 * 24 * 3600 * 1000.0
    assert plan.deadline_ok(ten_years, plan.MAX_TIMEOUT_MS) and not plan.deadline_ok(ten_years, 1e9)


def test_the_server_check_of_no_deadline(seed_gen: Any) -> None:
    from types import SimpleNamespace

    def plan_of(**kw: Any) -> plan.Plan:
        call = SimpleNamespace(method="/shapes.v1.Shapes/Unary", requests=[{}], expect={"status": "OK", "responses": [{}]},
                               server={"check_deadline": True}, **{"timeout_ms": 2001, **kw})
        return plan.Plan("c", 0, call, _method("shapes.v1.Shapes/Unary"))

    none = plan_of(no_deadline=True)
    assert none.deadline_diffs(None) == [] and none.deadline_diffs(9.2e15) == []  # grpcio's infinite future
    assert none.deadline_diffs(2.0) == [("server.deadline", "no deadline", "2000 ms")]
    assert plan_of().deadline_diffs(None) == [("server.deadline", "2001 ms (from 1501 to 2101.05)", "no deadline")]
    assert plan_of().deadline_diffs(2.9) == [("server.deadline", "2001 ms (from 1501 to 2101.05)", "2900 ms")]
    assert plan_of().deadline_diffs(2.0) == []
    # the client's user-agent says whose rounding applies: 80 ms late is grpcio's, never grpc-go's
    go = [("user-agent", "grpc-go/1.77.0")]
    assert plan_of().deadline_diffs(2.08, [("user-agent", "grpc-python/1.85.1 grpc-c/58.0.0")]) == []
    assert plan_of().deadline_diffs(2.08, go) == [("server.deadline", "2001 ms (from 1501 to 2002.02)", "2080 ms")]
    assert plan_of().deadline_diffs(2.0, go) == []
    long = plan_of(timeout_ms=11_490_001.5)  # every digit shown, not 1.149e+07
    assert long.deadline_diffs(13_000.0) == [("server.deadline", "11490001.5 ms (from 11489501.5 to 12064501.575)",
                                              "13000000 ms")]


@pytest.mark.parametrize("extra, error", [
    ({"server": {"check_deadline": "yes"}}, "server.check_deadline is true or false, not 'yes'"),
    ({"no_deadline": 1}, "no_deadline is true or false, not 1"),
    ({"timeout_ms": float("inf")}, "timeout_ms is a positive number of milliseconds, not inf"),
    ({"timeout_ms": True}, "timeout_ms is a positive number of milliseconds, not True"),
])
def test_the_loader_names_the_case_of_a_bad_deadline_key(seed_gen: Any, extra: dict[str, Any], error: str) -> None:
    import yaml

    call = {"method": "shapes.v1.Shapes/Unary", "requests": [{}], "expect": {"responses": [{}]}, **extra}
    text = yaml.safe_dump({"cases": [{"name": "shapes.v1.Shapes/Unary/fuzz/deadlines/bad", "calls": [call]}]})
    with pytest.raises(model.CaseError, match=f"case 'shapes.v1.Shapes/Unary/fuzz/deadlines/bad': {error}"):
        model.load_file("f.yaml", text=text)
