"""Case files are data, parsed strictly: every mistake names the file and the case."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cases import model as cases

HELLO = "tutorial.HelloService/SayHello"


def load(seed_gen, text: str) -> list[cases.Case]:
    return cases.load_file("mine.yaml", text=text)


def test_builtin_seed_cases_load_and_resolve(seed_gen) -> None:
    loaded = cases.load_all(cases.builtin_case_files())
    assert len(loaded) >= 50
    modes = {c.calls[0].streaming for c in loaded}
    assert modes == {"unary", "server_stream", "client_stream", "bidi"}
    bidi = next(c for c in loaded if c.name == "tutorial.HelloService/BidiHello/ping_pong")
    assert (bidi.calls[0].request_type, bidi.calls[0].bidi) == ("tutorial.HelloRequest", "ping_pong")
    assert bidi.to_json()["calls"][0]["method"] == "/tutorial.HelloService/BidiHello"


@pytest.mark.parametrize("text, message", [
    ("cases: [{name: x/y/z, calls: [{method: nope.Svc/M, requests: [{}]}]}]", "service 'nope.Svc' is not in the proto set"),
    (f"cases: [{{name: {HELLO}/a, calls: [{{method: tutorial.HelloService/Nope, requests: [{{}}]}}]}}]", "has no method 'Nope'"),
    (f"cases: [{{name: {HELLO}/a, calls: [{{method: {HELLO}, requests: [{{}}], expect: {{status: BROKEN}}}}]}}]", "not a gRPC status code"),
    (f"cases: [{{name: {HELLO}/a, calls: [{{method: {HELLO}, requests: [{{greting: x}}]}}]}}]", "requests\\[0\\] is not a valid tutorial.HelloRequest"),
    (f"cases: [{{name: {HELLO}/a, calls: [{{method: {HELLO}, requests: [{{}}], expect: {{respones: []}}}}]}}]", "unknown expect key"),
    (f"cases: [{{name: {HELLO}/a, calls: [{{method: {HELLO}, requests: [{{}}], metdata: {{}}}}]}}]", "unknown call key"),
    (f"cases: [{{name: {HELLO}/a, calls: [{{method: {HELLO}, requests: []}}]}}]", "exactly one request"),
    (f"cases: [{{name: other/a/b, calls: [{{method: {HELLO}, requests: [{{}}], expect: {{responses: [{{}}]}}}}]}}]",
     "names are '<service>/<method>/<pattern>'"),
    (f"cases: [{{name: {HELLO}/é, calls: [{{method: {HELLO}, requests: [{{}}]}}]}}]", "printable ASCII"),
    (f"cases: [{{name: {HELLO}/a, calls: []}}]", "has no calls"),
    ("kases: []", "a case file is a mapping"),
    ("cases: [{name: idc.IndicatorGraph/GetMACDGraph/x, calls: [{method: idc.IndicatorGraph/GetMACDGraph, "
     "requests: [{}], expect: {status: INVALID_ARGUMENT}}]}]", "streams responses before its INVALID_ARGUMENT: say how many with expect.responses"),
    ("cases: [{name: idc.IndicatorGraph/GetMACDGraph/x, calls: [{method: idc.IndicatorGraph/GetMACDGraph, "
     "requests: [{}], expect: {status: INVALID_ARGUMENT, responses: null}}]}]", "say how many with expect.responses"),
    # unpinned, any response would pass: five garbage responses gave no diff (both engines refuse it too)
    (f"cases: [{{name: {HELLO}/a, calls: [{{method: {HELLO}, requests: [{{}}]}}]}}]", "may end OK and nothing says what comes back"),
    ("cases: [{name: routeguide.RouteGuide/ListFeatures/x, calls: [{method: routeguide.RouteGuide/ListFeatures, "
     "requests: [{}], expect: {status: ABORTED, status_alternatives: [OK], responses: null}}]}]", "may end OK"),
])
def test_mistakes_are_named(seed_gen, text: str, message: str) -> None:
    with pytest.raises(cases.CaseError, match=message) as e:
        load(seed_gen, text)
    assert str(e.value).startswith("mine.yaml")


def test_duplicate_names_across_files(seed_gen, tmp_path: Path) -> None:
    text = f"cases: [{{name: {HELLO}/a, calls: [{{method: {HELLO}, requests: [{{}}], expect: {{responses: [{{}}]}}}}]}}]"
    (tmp_path / "one.yaml").write_text(text)
    (tmp_path / "two.yaml").write_text(text)
    with pytest.raises(cases.CaseError, match="defined twice: in .*one.yaml and .*two.yaml"):
        cases.load_all([tmp_path / "one.yaml", tmp_path / "two.yaml"])


def test_builtin_file_for_other_services_is_not_for_this_run(seed_gen) -> None:
    text = "requires: [not.Here]\ncases: [{name: not.Here/M/x, calls: [{method: not.Here/M, requests: [{}]}]}]"
    assert cases.load_file("seeds.yaml", text=text, builtin=True) == []


def test_users_file_requiring_a_missing_service_is_an_error_not_dropped(seed_gen, tmp_path: Path) -> None:
    """A typo under 'requires' in a user's --cases file would silently remove all its cases."""
    text = (f"requires: [tutorial.HeloService]\n"
            f"cases: [{{name: {HELLO}/a, calls: [{{method: {HELLO}, requests: [{{}}]}}]}}]")
    with pytest.raises(cases.CaseError, match="mine.yaml: requires service 'tutorial.HeloService', which the proto set"):
        load(seed_gen, text)
    (tmp_path / "mine.yaml").write_text(text)
    with pytest.raises(cases.CaseError, match="HeloService"):
        cases.load_all([tmp_path / "mine.yaml"])


def test_defaults(seed_gen) -> None:
    (case,) = load(seed_gen, f"cases: [{{name: {HELLO}/a, calls: [{{method: {HELLO}, requests: [{{}}], "
                             f"expect: {{responses: []}}, metadata: {{X-Key: v, k-bin: [AAE=]}}}}]}}]")
    call = case.calls[0]
    assert call.expect == {"status": "OK", "responses": []} and call.timeout_ms == cases.DEFAULT_TIMEOUT_MS
    # keys reach the peers as written (issue 8): an uppercase key is a case of its own, never fixed up here
    assert call.metadata == {"X-Key": ["v"], "k-bin": ["AAE="]}


def test_zero_is_kept_in_the_json_form(seed_gen) -> None:
    from harness.cases.model import Call

    call = Call(method="a.B/C", streaming="unary", request_type="x", response_type="y", requests=[{}],
                expect={"status": "CANCELLED"}, cancel_after_responses=0)
    assert call.to_json()["cancel_after_responses"] == 0
    assert "raw" not in call.to_json() and "server" not in call.to_json()


def test_generic_true_sends_a_seed_service_case_to_the_generic_engines(seed_gen, tmp_path: Path) -> None:
    from harness.protoset import discover
    from harness.run.runner import prepare

    call = {"method": "routeguide.RouteGuide/GetFeature", "requests": [{"latitude": 1}],
            "expect": {"responses": [{"name": "a\u0000b"}]}}
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump({"cases": [
        {"name": "routeguide.RouteGuide/GetFeature/fuzz/generic", "calls": [{**call, "generic": True}]},
        {"name": "routeguide.RouteGuide/GetFeature/fuzz/seed", "calls": [call]}]}))
    prepared = prepare(discover(Path(__file__).resolve().parent.parent / "protos"), [path], generated=False)
    # the hand-written seed answers the other one (its own data); the generic engines answer this one
    assert [c.name for c in prepared.catalogue] == ["routeguide.RouteGuide/GetFeature/fuzz/generic"]
    path.write_text(yaml.safe_dump({"cases": [
        {"name": "routeguide.RouteGuide/GetFeature/fuzz/bad", "calls": [{**call, "generic": "yes"}]}]}))
    with pytest.raises(cases.CaseError, match="generic is true or false"):
        cases.load_file(path)
