"""Interop coverage: computed from the case data and the descriptors, per direction, with every gap
named; the `coverage` command, --min-coverage, and the generated cases' real numbers."""

from __future__ import annotations

import importlib.resources
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_tools import protoc

from harness.cases.model import Call, Case
from harness.protoset import discover
from harness.report import coverage

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "data" / "coverage_protos"
FIELDS_LINE = re.compile(r"^fields: (\d+\.\d)%$", re.M)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pool.DescriptorPool:
    """The tiny proto in a pool of its own: one process imports one proto set's generated code."""
    out = tmp_path_factory.mktemp("tiny") / "tiny.pb"
    wkt = importlib.resources.files("grpc_tools") / "_proto"  # google/protobuf/*.proto
    assert protoc.main(["protoc", f"-I{TINY}", f"-I{wkt}", f"--descriptor_set_out={out}", "--include_imports",
                        "coverage_tiny.proto"]) == 0
    pool = descriptor_pool.DescriptorPool()
    for f in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(f)
    return pool


def _case(pattern: str, requests: list[dict], responses: list[dict], method: str = "Call", **kw) -> Case:
    streaming = "unary" if method == "Call" else "server_stream"
    call = Call(method=f"cov.tiny.Tiny/{method}", streaming=streaming, request_type="cov.tiny.Req",
                response_type="cov.tiny.Inner", requests=requests,
                expect={"status": kw.pop("status", "OK"), "responses": responses}, **kw)
    return Case(name=f"cov.tiny.Tiny/{method}/{pattern}", calls=[call], source="test")


NAMED = _case("named", [{"name": "n", "mood": "MOOD_HAPPY", "text": "t", "tags": {"k": 1}}], [{"flag": True}])
COUNTED = _case("counted", [{"count": 3, "maybe": 0, "inner": {}, "number": "5", "when": "2024-01-01T00:00:00.5Z"}],
                [{}],
                metadata={"x-a": ["1"], "x-b-bin": ["AAE="]})


def _measure(pool: descriptor_pool.DescriptorPool, cases: list[Case], ran: dict[str, set[str]]) -> coverage.Coverage:
    return coverage.measure(coverage.universe_of(discover(TINY), cases, pool), cases, ran)


def test_a_field_no_case_sets_is_listed_uncovered(tiny) -> None:
    cov = _measure(tiny, [NAMED], {"py→go": {NAMED.name}})
    fields = {i.name for i in cov.uncovered("fields")}
    assert fields == {"count (2)", "maybe (4)", "number (6)", "inner (8)", "when (9)", "seconds (1)", "nanos (2)"}
    # a well-known type's fields count like any other: one that only ever travels empty shows up
    assert "google.protobuf.Timestamp: seconds (1)" in {str(i) for i in cov.uncovered("fields")}
    assert cov.counts("fields", "py→go") == (5, 12)  # Req's 9 fields, Inner.flag, Timestamp's 2
    assert {i.name for i in cov.uncovered("oneof members")} == {"pick.number"}
    assert {i.name for i in cov.uncovered("enum values")} == {"MOOD_UNSPECIFIED (0)", "MOOD_SAD (2)"}
    assert {i.name for i in cov.uncovered("presence states")} >= {"maybe: default", "maybe: non-default",
                                                                  "inner: default", "text: default"}
    assert cov.counts("map key types", "py→go") == (1, 1)
    # the method nothing called is uncovered; the called one has its pattern and status
    patterns = {str(i) for i in cov.uncovered("streaming patterns")}
    assert "cov.tiny.Tiny/Call: ok" not in patterns and "cov.tiny.Tiny/Watch: responses_many" in patterns
    assert "unary methods: OK" not in {str(i) for i in cov.uncovered("status codes")}


def test_status_codes_count_per_streaming_mode_of_the_set(tiny) -> None:
    """A status code travels the same way on every method of a mode: the set's modes each need every
    code once, not each method (issue 17)."""
    failing = _case("not_found", [{}], [], status="NOT_FOUND")
    cov = _measure(tiny, [NAMED, failing], {"py→go": {NAMED.name, failing.name}})
    assert cov.counts("status codes", "py→go") == (2, 2 * len(coverage.STATUS_CODES))  # unary and server_stream
    missing = {str(i) for i in cov.uncovered("status codes")}
    assert {"unary methods: OK", "unary methods: NOT_FOUND"}.isdisjoint(missing)
    assert {"server_stream methods: OK", "server_stream methods: NOT_FOUND", "unary methods: ABORTED"} <= missing


def test_a_direction_only_counts_the_cases_that_ran_there(tiny) -> None:
    cov = _measure(tiny, [NAMED, COUNTED], {"py→go": {NAMED.name}, "go→py": {NAMED.name, COUNTED.name}})
    assert cov.percent("fields", "go→py") == 100.0
    assert cov.percent("fields", "py→go") == pytest.approx(100 * 5 / 12)
    assert cov.lowest("fields") == ("py→go", pytest.approx(100 * 5 / 12))
    assert not cov.uniform()
    missing = cov.uncovered("fields")
    assert all(directions == ["py→go"] for directions in missing.values())
    # an open enum's zero on a field without presence counts where a Req without mood was carried
    assert {i.name: d for i, d in cov.uncovered("enum values").items()} == {"MOOD_UNSPECIFIED (0)": ["py→go"],
                                                                            "MOOD_SAD (2)": ["py→go", "go→py"]}
    kinds = cov.uncovered("metadata kinds")
    assert kinds[coverage.Item("metadata kinds", "cov.tiny.Tiny/Call", "request -bin")] == ["py→go"]
    assert "fields 41.7%" in cov.summary() and "lowest direction" in cov.summary()


def test_min_coverage_fails_below_and_passes_above(tiny) -> None:
    cov = _measure(tiny, [NAMED], {"py→go": {NAMED.name}})
    (problem,) = cov.below({"fields": 42})
    assert problem.startswith("fields: 41.7% in py→go (5/12) is below --min-coverage 42%")
    assert "cov.tiny.Req: count (2)" in problem
    assert cov.below({"fields": 41.5}) == []
    assert cov.below({"enum values": 34}) and not cov.below({"enum values": 33})
    assert coverage.parse_thresholds(["99.5", "enum_values=100"]) == {"fields": 99.5, "enum values": 100.0}
    with pytest.raises(ValueError, match="unknown number 'colours'"):
        coverage.parse_thresholds(["colours=3"])


CASES_YAML = """cases:
  - name: cov.tiny.Tiny/Call/named
    calls: [{method: cov.tiny.Tiny/Call, requests: [{name: n, mood: MOOD_HAPPY, text: t, tags: {k: 1}}],
             expect: {responses: [{flag: true}]}}]
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line in its own process (one process serves one proto set)."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600)


def test_coverage_command_prints_the_fields_line_and_every_gap(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES_YAML)
    args = ["coverage", "--protos", str(TINY), "--cases", str(cases), "--no-generated"]
    proc = cli(*args, "--direction", "py-go", "--min-coverage", "41")
    assert proc.returncode == 0, proc.stderr
    assert FIELDS_LINE.search(proc.stdout).group(1) == "41.7"
    assert "count (2)" in proc.stdout and "cov.tiny.Req" in proc.stdout and "cov.tiny.Tiny/Watch" in proc.stdout
    proc = cli(*args, "--min-coverage", "99")
    assert proc.returncode == 1
    assert "coverage too low: fields: 41.7% in py→go (5/12) is below --min-coverage 99%" in proc.stdout
    # what a run really ran, from its JSON: only go→py ran the case
    results = tmp_path / "run.json"
    results.write_text(json.dumps({"results": [{"case": "cov.tiny.Tiny/Call/named", "direction": "go→py",
                                                "verdict": "pass"}], "coverage": {}}))
    proc = cli(*args, "--results", str(results))
    assert proc.returncode == 0 and FIELDS_LINE.search(proc.stdout).group(1) == "41.7"
    proc = cli(*args, "--results", str(results), "--direction", "go-py", "--direction", "py-go")
    assert FIELDS_LINE.search(proc.stdout).group(1) == "0.0" and "name (1) [py→go]" in proc.stdout
    # -k selecting nothing: nothing ran, nothing is covered
    proc = cli(*args, "-k", "no-such-case")
    assert proc.returncode == 0 and FIELDS_LINE.search(proc.stdout).group(1) == "0.0"


@pytest.mark.parametrize("protos", ["protos", "tests/data/newuser_protos"])
def test_generated_cases_cover_at_least_99_percent_of_fields(protos: str) -> None:
    """The real number, measured by the command a user runs (its own process: one proto set each)."""
    proc = cli("coverage", "--protos", protos)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = FIELDS_LINE.search(proc.stdout)
    assert found, proc.stdout[-3000:]
    assert float(found.group(1)) >= 99.0, proc.stdout[-20000:]


def test_empty_metadata_values_are_a_kind_of_their_own(tiny) -> None:
    """A peer that drops empty values passes every other metadata case: the kind says whether any
    case that ran carried one (issue 8)."""
    md = {"x-e": ["", "v"], "x-e-bin": [""]}
    empty = _case("empty", [{}], [{}], metadata=md)
    empty.calls[0].expect.update(trailers=md)
    cov = _measure(tiny, [COUNTED, empty], {"py→go": {COUNTED.name}, "go→py": {empty.name}})
    kinds = {(i.name, tuple(d)) for i, d in cov.uncovered("metadata kinds").items() if i.owner == "cov.tiny.Tiny/Call"}
    assert ("request empty ascii", ("py→go",)) in kinds and ("trailers empty -bin", ("py→go",)) in kinds
    assert ("headers empty ascii", ("py→go", "go→py")) in kinds  # no case carried one
    assert not any(name == "request -bin" for name, _ in kinds)  # COUNTED's x-b-bin, and the empty one


@pytest.mark.parametrize("streaming, bidi", [("client_stream", "half_duplex"), ("bidi", "half_duplex")])
def test_a_client_cancel_after_requests_is_its_own_pattern_per_mode(streaming: str, bidi: str) -> None:
    """cancel_after_requests (the `cancel` fuzz dimension): the client sends k requests and cancels
    without half-closing. It is a pattern of client_stream and bidi, not an error status the server sent."""
    call = Call(method="cov.tiny.Tiny/Call", streaming=streaming, request_type="cov.tiny.Req",
                response_type="cov.tiny.Inner", requests=[{}, {}], bidi=bidi, cancel_after_requests=1,
                expect={"status": "CANCELLED", "responses": []})
    assert coverage._streaming_patterns(call) == {"client_cancels_after_requests"}
    assert "client_cancels_after_requests" in coverage.STREAMING_PATTERNS[streaming]
    assert "client_cancels_after_requests" not in coverage.STREAMING_PATTERNS["server_stream"]
    # a server's error status after the client's requests stays error_status
    failed = Call(method="cov.tiny.Tiny/Call", streaming=streaming, request_type="cov.tiny.Req",
                  response_type="cov.tiny.Inner", requests=[{}], expect={"status": "ABORTED", "responses": []})
    assert "error_status" in coverage._streaming_patterns(failed)


def test_a_client_cancel_mid_server_stream_is_no_error_after_responses() -> None:
    call = Call(method="cov.tiny.Tiny/Watch", streaming="server_stream", request_type="cov.tiny.Req",
                response_type="cov.tiny.Inner", requests=[{}], cancel_after_responses=1,
                expect={"status": "CANCELLED", "responses": [{}]})
    assert "error_after_responses" not in coverage._streaming_patterns(call)
    aborted = Call(method="cov.tiny.Tiny/Watch", streaming="server_stream", request_type="cov.tiny.Req",
                   response_type="cov.tiny.Inner", requests=[{}], expect={"status": "ABORTED", "responses": [{}]})
    assert "error_after_responses" in coverage._streaming_patterns(aborted)
