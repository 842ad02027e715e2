"""The `wire` and `json` fuzz dimensions (harness/fuzz/dims/wire.py, json.py) and the case keys they
use (requests_wire, server.requests_wire, server.responses_wire, expect.responses_wire, protojson):
the loader's checks, the Python engine's comparisons, what the strategies draw, and the fixed
proving cases (tests/data/wire_cases.yaml) in every direction."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.unknown_fields import UnknownFieldSet

from harness.cases import model
from harness.fuzz.dims import json as json_dim
from harness.fuzz.dims import wire
from harness.fuzz import run as fuzz_run
from python_impl.check import check
from python_impl.contract import JSON_KEY, Outcome, parsed_json, protojson_of, wire_diffs
from python_impl.plan import Plan, Read, Run, Send

SEED = 3  # the seed of conftest's `draw` here
REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "tests" / "data" / "wire_cases.yaml"
RUNNER = os.environ.get("INTEROP_PEER_RUNNER", "auto")
LEGACY = "shapes.legacy.LegacyService/Roundtrip"


def _method(name: str) -> Any:
    svc, _, meth = name.partition("/")
    return descriptor_pool.Default().FindServiceByName(svc).methods_by_name[meth]


def _legacy(**fields: Any) -> Any:
    return GetMessageClass(descriptor_pool.Default().FindMessageTypeByName("shapes.legacy.Legacy"))(**fields)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _load(call: dict[str, Any], name: str = f"{LEGACY}/fuzz/wire/t") -> list[model.Case]:
    return model.load_file("t.yaml", text=model.yaml.safe_dump({"cases": [{"name": name, "calls": [call]}]}))


# ---------------------------------------------------------------- case keys

def test_wire_keys_load_and_travel_to_the_engines(seed_gen: Any) -> None:
    data = _b64(_legacy(id="a").SerializeToString() + wire.field_bytes(1000, "varint", 7))
    [case] = _load({"method": LEGACY, "requests_wire": [data], "server": {"requests_wire": [data], "responses_wire": [data]},
                    "expect": {"responses_wire": [data]}, "generic": True})
    out = case.calls[0].to_json()
    assert out["requests_wire"] == [data] and out["requests"] == []
    assert out["server"]["responses_wire"] == [data] and out["expect"]["responses_wire"] == [data]


@pytest.mark.parametrize("call, says", [
    ({"requests_wire": ["not base64!"], "expect": {"responses": [{"id": "a"}]}}, "requests_wire holds a value that is not base64"),
    ({"requests": [{"id": "a"}], "requests_wire": ["CgFh"], "expect": {"responses": [{"id": "a"}]}},
     "give requests_wire or requests, not both"),
    ({"requests_wire": ["CgFh"], "expect": {"responses": [], "responses_wire": []}},
     "give expect.responses_wire or expect.responses, not both"),
    ({"requests_wire": ["CgFh", "CgFh"], "expect": {"responses": [{"id": "a"}]}}, "give exactly one request, not 2"),
    ({"requests_wire": ["CgFh"], "server": {"responses_wire": ["CgLDKP8="]}, "expect": {"responses_wire": []}},
     "server.responses_wire[0] is not a valid shapes.legacy.Legacy"),
    ({"requests": [{"id": "a"}], "protojson": "yes", "expect": {"responses": [{"id": "a"}]}}, "protojson is true or false"),
    ({"requests_wire": ["CgFh"], "protojson": True, "expect": {"responses": [{"id": "a"}]}}, "no wire-form messages"),
    ({"requests": [{"id": "a"}], "protojson": True, "expect": {"responses_wire": ["CgFh"]}}, "no wire-form messages"),
    ({"requests_wire": ["CgFh"]}, "nothing says what comes back"),
])
def test_a_bad_wire_or_protojson_key_names_the_case(seed_gen: Any, call: dict[str, Any], says: str) -> None:
    with pytest.raises(model.CaseError, match="fuzz/wire/t") as err:
        _load({"method": LEGACY, **call})
    assert says in str(err.value)


# ---------------------------------------------------------------- the Python engine's comparisons

def test_wire_comparison_is_by_meaning_with_unknown_fields(seed_gen: Any) -> None:
    base = _legacy(id="a").SerializeToString()
    with_unknown = base + wire.field_bytes(1000, "varint", 7)
    got = type(_legacy()).FromString(base)  # a library that dropped the unknown field
    [(path, _, _)] = wire_diffs([_b64(with_unknown)], [got], "responses_wire")
    assert path == "responses_wire[0].<unknown fields>"
    # the same message written in another order is the same message (protobuf-go writes extensions first)
    reordered = wire.field_bytes(1000, "varint", 7) + base
    assert wire_diffs([_b64(reordered)], [type(got).FromString(with_unknown)], "responses_wire") == []
    assert wire_diffs([_b64(base)], [], "responses_wire") == [("responses_wire.count", "1", "0")]


def test_closed_enum_numbers_outside_the_set_become_unknown_fields(seed_gen: Any) -> None:
    msg = type(_legacy()).FromString(_legacy(id="a").SerializeToString() + wire.field_bytes(4, "enum", 9))
    assert not msg.HasField("level")
    assert [(f.field_number, f.data) for f in UnknownFieldSet(msg)] == [(4, 9)]
    assert wire.replaces_closed(msg.DESCRIPTOR, msg.SerializeToString() + wire.field_bytes(4, "enum", 10))
    assert wire.replaces_closed(msg.DESCRIPTOR, _legacy(id="a", level=3).SerializeToString() + wire.field_bytes(4, "enum", 9))
    assert not wire.replaces_closed(msg.DESCRIPTOR, msg.SerializeToString())


def _finish(call: Any, metadata: list[Any], request: Any) -> Any:
    """How the generic server's plan ends a unary call of LEGACY given this request."""
    run = Run(Plan("c", 0, call, _method(LEGACY)).script(metadata, request, False))
    while isinstance(run.step(), (Read, Send)):
        pass
    return dict(run.finish.trailing)


def test_the_generic_server_checks_requests_wire(seed_gen: Any) -> None:
    sent = _legacy(id="a").SerializeToString() + wire.field_bytes(1000, "fixed32", 5)
    call = SimpleNamespace(requests=[], requests_wire=[_b64(sent)], expect={"status": "OK", "responses": []},
                           server={"requests_wire": [_b64(sent)], "responses_wire": [_b64(sent)]}, metadata={})
    assert "interop-server-diffs-bin" not in _finish(call, [], type(_legacy()).FromString(sent))
    lost = _finish(call, [], _legacy(id="a"))  # the unknown field did not survive the server's library
    assert b"server.requests_wire[0].<unknown fields>" in lost["interop-server-diffs-bin"]


def test_the_generic_server_parses_and_renders_protojson(seed_gen: Any) -> None:
    call = SimpleNamespace(requests=[{"id": "a"}], expect={"status": "OK", "responses": [{"id": "r", "level": "LEVEL_LOW"}]},
                           server={}, metadata={}, protojson=True)
    ok = _finish(call, [(JSON_KEY, b'{"id": "a"}')], _legacy(id="a"))
    assert "interop-server-diffs-bin" not in ok
    assert json_format.Parse(ok[JSON_KEY].decode(), _legacy()) == _legacy(id="r", level=1)
    wrong = _finish(call, [(JSON_KEY, b'{"id": "b"}')], _legacy(id="a"))
    assert b"server.json.request.id" in wrong["interop-server-diffs-bin"]


def test_the_client_checks_responses_wire(seed_gen: Any) -> None:
    want = _legacy(id="a").SerializeToString() + wire.field_bytes(4, "enum", 9)
    call = SimpleNamespace(method=f"/{LEGACY}", response_type="shapes.legacy.Legacy", server={},
                           expect={"status": "OK", "responses_wire": [_b64(want)]})
    assert check(call, Outcome(responses=[type(_legacy()).FromString(want)]), 0) == []
    lost = check(call, Outcome(responses=[_legacy(id="a")]), 0)
    assert [d.path for d in lost] == ["responses_wire[0].<unknown fields>"]


def test_the_client_parses_the_servers_protojson(seed_gen: Any) -> None:
    call = SimpleNamespace(method=f"/{LEGACY}", response_type="shapes.legacy.Legacy", server={}, protojson=True,
                           expect={"status": "OK", "responses": [{"id": "a"}]})
    assert check(call, Outcome(responses=[_legacy(id="a")], trailers=[(JSON_KEY, b'{"id":"a"}')]), 0) == []
    wrong = check(call, Outcome(responses=[_legacy(id="a")], trailers=[(JSON_KEY, b'{"id": "b"}')]), 0)
    assert [d.path for d in wrong] == ["json.response.id"]
    missing = check(call, Outcome(responses=[_legacy(id="a")]), 0)
    assert [d.path for d in missing] == ["json.response"]


def test_protojson_parse_finds_what_python_misreads(seed_gen: Any) -> None:
    """What the json dimension found: protobuf-go writes -0 for a negative zero, which json_format
    reads as 0.0 (harness/run/known_divergences.yaml)."""
    msg = GetMessageClass(descriptor_pool.Default().FindMessageTypeByName("shapes.v1.Scalars"))(f_double=-0.0)
    assert parsed_json([(JSON_KEY, b'{"fDouble": -0.0}')], msg, "json") == []
    assert parsed_json([(JSON_KEY, b'{"fDouble": -0}')], msg, "json") == [("json.f_double", "-0.0", "0.0")]
    assert parsed_json([], msg, "json") == [("json", f"one protojson rendering in {JSON_KEY}", "0")]


# ---------------------------------------------------------------- what the strategies draw

def test_wire_draws_every_kind_and_every_example_loads(seed_gen: Any, draw: Any) -> None:
    drawn = {name: draw(wire.calls(_method(name)), 30) for name in (LEGACY, "shapes.ed.EditionService/Watch")}
    refused = [c for cs in drawn.values() for c in cs if c.expect["status"] == "INTERNAL"]
    assert refused and all(c.server == {"status": "OK"} and len(c.requests_wire) == 1 for c in refused)
    legacy = [base64.b64decode(b) for c in drawn[LEGACY] for b in c.requests_wire]
    parsed = [type(_legacy()).FromString(b) for b in legacy]
    numbers = {f.field_number for p in parsed for f in UnknownFieldSet(p)}
    assert 4 in numbers and numbers - {4}  # closed-enum numbers and unknown field numbers
    assert any(b"\xc3\x28" in b or b"\xff" in b for b in legacy)  # strings of bytes that are not UTF-8
    for name, cs in drawn.items():
        for c in cs:
            assert not any(wire.replaces_closed(_method(name).input_type, base64.b64decode(b)) for b in c.requests_wire)
            saved = fuzz_run.save_text([model.Case(name=f"{name}/fuzz/wire/x", calls=[c], source="drawn")])
            [back] = model.load_file("saved.yaml", text=saved)  # as --save-failures writes it
            assert back.calls[0] == c


def test_wire_draws_timestamps_past_their_json_range(seed_gen: Any, draw: Any) -> None:
    wkt = descriptor_pool.Default().FindMessageTypeByName("shapes.v1.WellKnown")
    seconds = [GetMessageClass(wkt).FromString(b).ts.seconds for _, b in draw(wire.appended(wkt), 150)]
    assert any(s > 253402300799 or s < -62135596800 for s in seconds)


def test_json_draws_one_request_and_one_response_under_budget(seed_gen: Any, draw: Any) -> None:
    for name in ("shapes.v1.Shapes/ClientStream", LEGACY):
        for c in draw(json_dim.calls(_method(name)), 15):
            assert c.protojson and len(c.requests) == 1 and len(c.expect["responses"]) == 1
            request = GetMessageClass(_method(name).input_type)()
            json_format.ParseDict(c.requests[0], request)
            assert len(protojson_of(request)) <= json_dim.JSON_BUDGET


# ---------------------------------------------------------------- the fixed cases, every direction

@pytest.mark.interop
def test_the_fixed_wire_and_json_cases_in_every_direction() -> None:
    """Both engines read the new keys: every fixed case passes or is its measured known divergence."""
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--protos", str(REPO / "protos"), "--cases",
                           str(CASES), "--no-generated", "--peer-runner", RUNNER], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    counts = [line for line in proc.stdout.splitlines() if "→" in line and "case runs" in line]
    assert len(counts) == 7 and all("9/9 case runs, 0 failing" in line for line in counts), counts
    assert "py→go: 9/9 case runs, 0 failing, 5 known divergences" in proc.stdout  # closed enum ×2, -0, float ×2
