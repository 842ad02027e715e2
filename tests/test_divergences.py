"""Known divergences: expected failures become `divergence`, stale ones fail, dead patterns are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.run import divergences
from python_impl.contract import Diff, Result

ENTRY = divergences.Divergence(match="go-py:svc/M/*/deep", contains=("RESOURCE_EXHAUSTED",), reason="limits differ",
                               source="mine.yaml", builtin=False)


def result(verdict: str, got: str = "") -> Result:
    diffs = [Diff(0, "status.code", "OK", got)] if got else []
    return Result("svc/M/T/deep", "go→py", verdict, diffs)


def test_expected_failure_becomes_a_divergence() -> None:
    r = divergences.apply([ENTRY], result("fail", "RESOURCE_EXHAUSTED"), "go-py")
    assert r.verdict == "divergence" and "limits differ" in r.diffs[-1].got


def test_a_different_failure_stays_a_failure() -> None:
    assert divergences.apply([ENTRY], result("fail", "INTERNAL"), "go-py").verdict == "fail"


def test_a_pass_is_a_stale_entry() -> None:
    r = divergences.apply([ENTRY], result("pass"), "go-py")
    assert r.verdict == "unexpected_pass" and "stale" in r.diffs[0].got


def test_other_directions_are_untouched() -> None:
    assert divergences.apply([ENTRY], result("fail", "RESOURCE_EXHAUSTED"), "py-go").verdict == "fail"


def test_dead_pattern_is_an_error_for_user_files_only() -> None:
    with pytest.raises(divergences.DivergenceError, match="dead pattern"):
        divergences.check_dead([ENTRY], [("go-py", "svc/M/T/other", "unary")])
    builtin = divergences.Divergence(**{**ENTRY.__dict__, "builtin": True})
    divergences.check_dead([builtin], [("go-py", "svc/M/T/other", "unary")])


def test_malformed_files(tmp_path: Path) -> None:
    bad = tmp_path / "d.yaml"
    bad.write_text("divergences: [{match: x, contains: y}]")
    with pytest.raises(divergences.DivergenceError, match="needs the keys"):
        divergences.load([bad], builtin=False)
    bad.write_text("divergences: [{match: x, contains: y, reason: ' '}]")
    with pytest.raises(divergences.DivergenceError, match="gives no reason"):
        divergences.load([bad], builtin=False)


def test_builtin_file_loads() -> None:
    assert all(e.reason for e in divergences.load(divergences.builtin_files(), builtin=True))


def test_a_divergence_never_hides_another_diff() -> None:
    r = result("fail", "RESOURCE_EXHAUSTED")
    r.diffs.append(Diff(0, "server.requests[0].name", '"a"', '"b"'))
    assert divergences.apply([ENTRY], r, "go-py").verdict == "fail"


def test_the_entry_that_covers_the_diffs_is_chosen() -> None:
    other = divergences.Divergence(**{**ENTRY.__dict__, "contains": ("INTERNAL",), "reason": "second"})
    r = divergences.apply([ENTRY, other], result("fail", "INTERNAL"), "go-py")
    assert r.verdict == "divergence" and "second" in r.diffs[-1].got


def test_an_entry_can_be_limited_to_streaming_modes() -> None:
    unary_only = divergences.Divergence(**{**ENTRY.__dict__, "streaming": ("unary",)})
    assert divergences.apply([unary_only], result("fail", "RESOURCE_EXHAUSTED"), "go-py", "unary").verdict == "divergence"
    assert divergences.apply([unary_only], result("pass"), "go-py", "server_stream").verdict == "pass"


RACE = divergences.Divergence(match="pyaio-*:*", contains=("Internal error from Core", "responses.count"),
                              reason="a race in the client library", source="mine.yaml", builtin=False,
                              requires=("Internal error from Core",), intermittent=True)


def test_an_intermittent_entry_excuses_its_signature_and_what_follows_from_it() -> None:
    r = result("fail", 'INTERNAL "Internal error from Core"')
    r.diffs.append(Diff(0, "responses.count", "1", "0"))
    assert divergences.apply([RACE], r, "pyaio-go").verdict == "divergence"


def test_an_intermittent_entry_never_excuses_side_effects_without_its_signature() -> None:
    r = Result("svc/M/T/deep", "pyaio→go", "fail", [Diff(0, "responses.count", "1", "0")])
    assert divergences.apply([RACE], r, "pyaio-go").verdict == "fail"


def test_a_pass_under_an_intermittent_entry_is_just_a_pass() -> None:
    assert divergences.apply([RACE], result("pass"), "pyaio-go").verdict == "pass"
    # ...but a deterministic entry matching the same result still calls it stale
    both = [RACE, divergences.Divergence(**{**ENTRY.__dict__, "match": "pyaio-go:*"})]
    assert divergences.apply(both, result("pass"), "pyaio-go").verdict == "unexpected_pass"


def test_an_intermittent_entry_needs_a_signature(tmp_path: Path) -> None:
    bad = tmp_path / "d.yaml"
    bad.write_text("divergences: [{match: x, contains: y, reason: r, intermittent: true}]")
    with pytest.raises(divergences.DivergenceError, match="needs 'requires'"):
        divergences.load([bad], builtin=False)
    bad.write_text("divergences: [{match: x, contains: y, reason: r, intermittent: sometimes, requires: y}]")
    with pytest.raises(divergences.DivergenceError, match="true or false"):
        divergences.load([bad], builtin=False)


BUILTIN_RACE = next(e for e in divergences.load(divergences.builtin_files(), builtin=True) if e.intermittent)
SIGNATURE = Diff(0, "status.code", "OK", 'INTERNAL "Internal error from Core"')


def race_result(*diffs: Diff) -> Result:
    return Result("svc/M/T/early", "pyaio→go", "fail", [SIGNATURE, *diffs])


@pytest.mark.parametrize("lost", [
    Diff(0, "responses.count", "2", "1"), Diff(0, 'trailers["x-t"]', '["e"]', "[]"),
    Diff(0, 'headers["x-h"]', '["v"]', "[]"), Diff(0, "details.count", "2", "0"),
    Diff(0, "server.checked", "present", "missing"),
    Diff(0, "status.message", '"plain ABORTED message"', '"Internal error from Core"'),
    Diff(0, "responses[1]", '{reply: "b"}', "<missing>"),  # the lost response, by its index
])
def test_the_aio_race_excuses_its_signature_and_what_it_lost(lost: Diff) -> None:
    assert divergences.apply([BUILTIN_RACE], race_result(lost), "pyaio-go", "bidi", ends_early=True).verdict == "divergence"


@pytest.mark.parametrize("wrong", [
    Diff(0, "responses[0].details", '"a"', '"b"'),        # a field named like a lost part
    Diff(0, "responses[1].note", '"see details"', '"x"'),  # a value naming one
    Diff(0, "responses.count", "1", "3"),                  # more responses: the race only loses them
    Diff(0, 'headers["x-h"]', '["a"]', '["b"]'),          # a wrong value, not a lost one
    Diff(0, "server.requests[0].details.count", "1", "0"),
    Diff(0, "responses[2]", "<missing>", '{reply: "c"}'),  # an extra response arrived
    Diff(0, "responses[0]", '{reply: "a"}', "<moved to [1]>"),  # one arrived out of order
    Diff(0, "server.requests[1]", '{greeting: "b"}', "<missing>"),  # the server's finding, not a loss
])
def test_the_aio_race_never_excuses_what_arrived_wrong(wrong: Diff) -> None:
    assert divergences.apply([BUILTIN_RACE], race_result(wrong), "pyaio-go", "bidi", ends_early=True).verdict == "fail"
    # its modes only
    assert divergences.apply([BUILTIN_RACE], race_result(), "pyaio-go", "unary", ends_early=True).verdict == "fail"


def test_entry_fields_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "d.yaml"
    for text, error in [("streaming: bidi", "streaming is a list"), ("streaming: [duplex]", "streaming is a list"),
                        ("requires: []", "requires is a text"), ("losses: true", "needs 'requires'")]:
        bad.write_text(f"divergences: [{{match: x, contains: y, reason: r, {text}}}]")
        with pytest.raises(divergences.DivergenceError, match=error):
            divergences.load([bad], builtin=False)


def test_the_aio_race_needs_a_call_that_ends_before_the_client_half_closes(seed_gen) -> None:
    """A deterministic "Internal error from Core" on a call the server read in full is a failure.
    (seed_gen loads the protos' descriptors, which case generation reads.)"""
    from harness.cases import generate
    from harness.protoset import discover

    cases = {c.name: c for c in generate.generate(discover(Path(__file__).resolve().parent.parent / "protos"))}
    many = cases["shapes.v1.Shapes/ClientStream/stream/many"]
    assert not many.ends_early
    r = Result(many.name, "pyaio→go", "fail", [SIGNATURE, Diff(0, "responses.count", "1", "0")])
    assert divergences.apply([BUILTIN_RACE], r, "pyaio-go", "client_stream", many.ends_early).verdict == "fail"
    for early in ("Bidi/stream/server_finishes_early", "Bidi/stream/client_cancels_after_first",
                  "ClientStream/stream/deadline_exceeded", "Bidi/stream/cancel_before_first_message"):
        case = cases[f"shapes.v1.Shapes/{early}"]
        assert case.ends_early, early
        r = Result(case.name, "pyaio→go", "fail", [SIGNATURE, Diff(0, "responses.count", "1", "0")])
        assert divergences.apply([BUILTIN_RACE], r, "pyaio-go", case.calls[0].streaming,
                                 case.ends_early).verdict == "divergence"


DEPTH = [e for e in divergences.load(divergences.builtin_files(), builtin=True) if e.match.startswith("go-py")
         and "deep_recursion_150" in e.match]


@pytest.mark.parametrize("slug, mode, status", [
    ("go-py", "unary", 'INTERNAL "Exception deserializing request!"'),
    ("go-pyaio", "unary", "UNKNOWN \"Unexpected <class 'google.protobuf.message.DecodeError'>: Error parsing message "
                          "with type 'shapes.v1.Everything': Exceeded upb_DecodeOptions_MaxDepth\""),
    ("go-py", "bidi", 'FAILED_PRECONDITION "catalogue case x: Failed to parse tree field: Message too deep. '
                      'Max recursion depth is 100"'),
])
def test_the_depth_divergence_excuses_the_upb_depth_failure(slug: str, mode: str, status: str) -> None:
    r = Result("svc/M/T/deep_recursion_150", slug, "fail", [
        Diff(0, "status.code", "OK", status), Diff(0, "responses.count", "1", "0"),
        Diff(0, "server.checked", "present", "missing")])
    assert divergences.apply(DEPTH, r, slug, mode).verdict == "divergence"


@pytest.mark.parametrize("slug", ["go-py", "go-pyaio"])
@pytest.mark.parametrize("mode", ["unary", "bidi"])
def test_the_depth_divergence_never_excuses_a_lost_answer_or_an_engine_crash(slug: str, mode: str) -> None:
    lost = [Diff(0, "responses.count", "1", "0"), Diff(0, "server.checked", "present", "missing")]
    ok_but_lost = Result("svc/M/T/deep_recursion_150", slug, "fail", list(lost))
    assert divergences.apply(DEPTH, ok_but_lost, slug, mode).verdict == "fail"
    crash = Result("svc/M/T/deep_recursion_150", slug, "fail", [
        Diff(0, "status.code", "OK", 'INTERNAL "Exception calling application: KeyError"'), *lost])
    assert divergences.apply(DEPTH, crash, slug, mode).verdict == "fail"


def test_a_go_pass_that_carries_diffs_is_a_fail() -> None:
    """_align never trusts the Go client's label alone: a pass has no differences."""
    from harness.cases.model import Case
    from harness.run.runner import _align, direction

    case = Case(name="svc/M/T/x", calls=[], source="mine.yaml")
    claimed = Result("svc/M/T/x", "go-py", "pass", [Diff(0, "responses[0].a", "1", "2")])
    (r,) = _align([case], [claimed], direction("go-py"))
    assert (r.verdict, r.direction) == ("fail", "go→py")
    missing = Case(name="svc/M/T/y", calls=[], source="mine.yaml")
    assert [x.verdict for x in _align([case, missing], [], direction("go-py"))] == ["error", "error"]


GO_SERVER_RESET = next(e for e in divergences.load(divergences.builtin_files(), builtin=True)
                       if e.match.endswith("/stream/deadline_exceeded"))


RESET = 'CANCELLED "Stream removed (RST_STREAM (Received RST_STREAM with error code 8))"'


@pytest.mark.parametrize("slug, verdict", [("py-go", "divergence"), ("pyaio-go", "divergence"), ("go-go", "fail"),
                                           ("go-py", "fail"), ("py-py", "fail"), ("pyaio-pyaio", "fail")])
def test_cancelled_for_a_deadline_is_excused_only_with_a_go_server(slug: str, verdict: str) -> None:
    r = Result("svc/M/stream/deadline_exceeded", slug, "fail", [Diff(0, "status.code", "DEADLINE_EXCEEDED", RESET)])
    assert divergences.apply([GO_SERVER_RESET], r, slug, "unary", ends_early=True).verdict == verdict


# ---- issue 17: each tightened entry, against a crafted result the entry it replaces excused

def _old(match: str, contains: tuple[str, ...], requires: tuple[str, ...] = (), **kw: bool) -> divergences.Divergence:
    return divergences.Divergence(match=match, contains=contains, reason="the entry before issue 17",
                                  source="known_divergences.yaml", builtin=True, requires=requires, **kw)


BUILTIN = divergences.load(divergences.builtin_files(), builtin=True)
OLD_OK = ("status.code: expected RESOURCE_EXHAUSTED, got OK", "responses.count: expected 0, got 1",
          "responses[0]: expected <missing>, got ")
TIGHTENED = [
    # a Go server that gives up and answers CANCELLED itself, before the deadline
    ("py-go", "svc/M/stream/deadline_exceeded",
     _old("*-go:*/stream/deadline_exceeded", ("status.code: expected DEADLINE_EXCEEDED, got CANCELLED",),
          ("status.code: expected DEADLINE_EXCEEDED, got CANCELLED",), intermittent=True),
     [Diff(0, "status.code", "DEADLINE_EXCEEDED", 'CANCELLED "server gave up"')]),
    # a grpc-go client handing on another number than the one sent
    ("go-go", "svc/M/protocol/code_17", _old("go-go:*/protocol/code_*", ("status.code: expected UNKNOWN, got CODE_",)),
     [Diff(0, "status.code", "UNKNOWN", "CODE_99")]),
    ("go-go", "svc/M/protocol/code_17", _old("go-go:*/protocol/code_*", ("status.code: expected UNKNOWN, got CODE_",)),
     [Diff(0, "status.code", "UNKNOWN", 'CODE_18 "bogus"')]),

    # the over-limit metadata let through, and the response damaged on the way
    ("py-go", "svc/M/protocol/metadata_request_over_hard_limit",
     _old("*-go:*/protocol/metadata_request_over_hard_limit", OLD_OK, OLD_OK[:1]),
     [Diff(0, "status.code", "RESOURCE_EXHAUSTED", "OK"), Diff(0, "responses.count", "0", "1"),
      Diff(0, "responses[0]", "<missing>", '{reply: "garbage"}')]),
    ("go-py", "svc/M/protocol/metadata_headers_over_hard_limit",
     _old("go-*:*/protocol/metadata_headers_over_hard_limit", OLD_OK, OLD_OK[:1]),
     [Diff(0, "status.code", "RESOURCE_EXHAUSTED", "OK"), Diff(0, "responses.count", "0", "1"),
      Diff(0, "responses[0]", "<missing>", '{reply: "garbage"}')]),
]


@pytest.mark.parametrize("slug, case, old, diffs", TIGHTENED)
def test_a_tightened_entry_no_longer_excuses_what_the_old_one_did(slug: str, case: str, old: divergences.Divergence,
                                                                   diffs: list[Diff]) -> None:
    mode = "unary"
    assert divergences.apply([old], Result(case, slug, "fail", list(diffs)), slug, mode, True).verdict == "divergence"
    assert divergences.apply(BUILTIN, Result(case, slug, "fail", list(diffs)), slug, mode, True).verdict == "fail"


@pytest.mark.parametrize("slug, case, diffs", [
    ("py-go", "svc/M/stream/deadline_exceeded", [Diff(0, "status.code", "DEADLINE_EXCEEDED", RESET)]),
    ("go-go", "svc/M/protocol/code_17", [Diff(0, "status.code", "UNKNOWN", "CODE_17")]),
    ("go-go", "svc/M/protocol/code_99", [Diff(0, "status.code", "UNKNOWN", "CODE_99")]),
    ("go-py", "svc/M/protocol/code_17", [Diff(0, "server.status", "CODE_17", "UNKNOWN")]),
    ("py-py", "svc/M/protocol/code_99", [Diff(0, "server.status", "CODE_99", "UNKNOWN")]),
    ("py-go", "svc/M/protocol/metadata_request_over_hard_limit", [Diff(0, "status.code", "RESOURCE_EXHAUSTED", "OK")]),
    ("go-go", "svc/M/protocol/metadata_headers_over_hard_limit", [Diff(0, "status.code", "RESOURCE_EXHAUSTED", "OK")]),
    ("go-pyaio", "svc/M/protocol/metadata_trailers_over_hard_limit",
     [Diff(0, "status.code", "RESOURCE_EXHAUSTED", "OK")]),
    ("pyaio-go", "svc/M/protocol/metadata_trailers_over_hard_limit",
     [Diff(0, "status.code", "RESOURCE_EXHAUSTED",
           'INTERNAL "Stream removed (RST_STREAM (Received RST_STREAM with error code 2))"')]),
])
def test_a_tightened_entry_excuses_what_its_reason_says(slug: str, case: str, diffs: list[Diff]) -> None:
    assert divergences.apply(BUILTIN, Result(case, slug, "fail", diffs), slug, "unary", True).verdict == "divergence"


@pytest.mark.parametrize("slug, case, diffs", [
    # what arrived is compared with what the server sent: a dropped header or trailer is a failure
    ("go-go", "svc/M/protocol/metadata_headers_over_hard_limit",
     [Diff(0, "status.code", "RESOURCE_EXHAUSTED", "OK"), Diff(0, 'headers["x-large"]', '["aaa"]', "[]")]),
    ("go-go", "svc/M/protocol/metadata_trailers_over_hard_limit",
     [Diff(0, "status.code", "RESOURCE_EXHAUSTED", "OK"), Diff(0, 'trailers["x-large"]', '["aaa"]', "[]")]),
    # a server that sends CANCELLED with the reset's own words: its confirmation gives it away
    ("py-go", "svc/M/stream/deadline_exceeded",
     [Diff(0, "status.code", "DEADLINE_EXCEEDED", RESET), Diff(0, "server.status", "OK", "CANCELLED")]),
    # a Go server that drops the long trailers instead of resetting: the grpcio client sees OK
    ("py-go", "svc/M/protocol/metadata_trailers_over_hard_limit", [Diff(0, "status.code", "RESOURCE_EXHAUSTED", "OK")]),
    # the server must confirm what it received
    ("go-go", "svc/M/protocol/metadata_request_over_hard_limit",
     [Diff(0, "status.code", "RESOURCE_EXHAUSTED", "OK"), Diff(0, "server.checked", "present", "missing")]),
    # the right number with a message nobody sent (the generated case expects none: expect.message "")
    ("go-go", "svc/M/protocol/code_17",
     [Diff(0, "status.code", "UNKNOWN", 'CODE_17 "bogus"'), Diff(0, "status.message", '""', '"bogus"')]),
    # a code clamped on the way, seen by grpc-go's client or confirmed by the server
    ("go-go", "svc/M/protocol/code_17", [Diff(0, "status.code.number", "CODE_17 (sent by the server)", "UNKNOWN")]),
    ("py-go", "svc/M/protocol/code_17", [Diff(0, "server.status", "CODE_17", "UNKNOWN")]),
    ("go-py", "svc/M/protocol/code_17", [Diff(0, "server.status", "CODE_17", "CODE_99")]),
])
def test_a_tightened_entry_never_excuses_a_broken_peer(slug: str, case: str, diffs: list[Diff]) -> None:
    assert divergences.apply(BUILTIN, Result(case, slug, "fail", diffs), slug, "unary", True).verdict == "fail"


def test_a_failure_reproduces_with_the_runs_go_build_tags() -> None:
    """A protolegacy run's failure must reproduce as such, not as a finding of the untagged peer."""
    from types import SimpleNamespace

    from harness.run.runner import Session, direction

    prepared = SimpleNamespace(protoset=SimpleNamespace(spec=("--protos", "/p")), go_tags=("protolegacy",), cases=[],
                               channel="default")
    text = Session(prepared, "docker").explain(direction("py-go"), Result("svc/M/T/x", "py→go", "fail",
                                                                          [Diff(0, "a", "1", "2")]))
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("grpc-interop ")]
    assert len(commands) == 3 and all("--go-build-tags protolegacy" in c for c in commands), text


# ---------------------------------------------------------------- every built-in entry, exercised

EXAMPLES_FILE = Path(__file__).resolve().parent / "data" / "known_divergence_examples.yaml"


def _examples() -> list[dict]:
    import yaml

    return yaml.safe_load(EXAMPLES_FILE.read_text(encoding="utf-8"))["examples"]


def _example_result(ex: dict, extra: list[Diff] = ()) -> Result:
    return Result(ex["case"], ex["direction"].replace("-", "→"), "fail",
                  [Diff(0, path, expected, got) for path, expected, got in ex["diffs"]] + list(extra))


def _excusing(entries: list[divergences.Divergence], ex: dict) -> list[divergences.Divergence]:
    """The entries that apply to the example and cover every one of its diffs."""
    judged = [divergences.apply([e], _example_result(ex), ex["direction"], ex["streaming"], ex.get("ends_early", False),
                                ex.get("versions")) for e in entries]
    return [e for e, r in zip(entries, judged) if r.verdict == "divergence"]


@pytest.mark.parametrize("ex", _examples(), ids=lambda ex: f"{ex['direction']}:{ex['case']}")
def test_each_example_is_excused_by_exactly_the_entry_it_names(ex: dict) -> None:
    """The result the entry documents is a divergence through that entry alone, with the whole
    library loaded; one more difference of another kind beside it is a failure again (the entry
    never hides another failure)."""
    builtin = divergences.load(divergences.builtin_files(), builtin=True)
    excusing = _excusing(builtin, ex)
    assert [e.match for e in excusing] == [ex["entry"]], f"excused by {[e.match for e in excusing]}"
    judged = divergences.apply(builtin, _example_result(ex), ex["direction"], ex["streaming"], ex.get("ends_early", False),
                               ex.get("versions"))
    assert judged.verdict == "divergence" and judged.diffs[-1].got == f"{excusing[0].reason} ({excusing[0].source})"
    other = Diff(0, "responses[0].f_int32", "1", "2")
    again = divergences.apply(builtin, _example_result(ex, [other]), ex["direction"], ex["streaming"],
                              ex.get("ends_early", False), ex.get("versions"))
    assert again.verdict == "fail"


def test_every_built_in_entry_is_exercised_by_an_example() -> None:
    """Each entry of the library excuses at least one example (tests/data/known_divergence_examples.yaml
    says how a new entry adds its own): an entry nothing exercises may excuse anything, or nothing."""
    builtin = divergences.load(divergences.builtin_files(), builtin=True)
    exercised = {id(e) for ex in _examples() for e in _excusing(builtin, ex)}
    missing = [f"{e.match} ({e.reason[:60]}…)" for e in builtin if id(e) not in exercised]
    assert not missing, f"built-in entries with no example in {EXAMPLES_FILE.name}: {missing}"


def test_every_text_an_entry_excuses_by_is_shown_by_one_of_its_examples() -> None:
    """An entry excuses a diff that holds any of its `contains` texts: a text that no example of the
    entry shows is breadth nothing measured (the test above passes while an entry is broader than
    its example). Each text must appear in a diff of an example that names the entry."""
    builtin = divergences.load(divergences.builtin_files(), builtin=True)
    unshown = []
    for e in builtin:
        texts = [divergences._text(d) for ex in _examples() if ex["entry"] == e.match
                 for d in _example_result(ex).diffs]
        unshown += [f"{e.match}: {c!r}" for c in e.contains if not any(c in t for t in texts)]
    assert not unshown, f"contains texts no example in {EXAMPLES_FILE.name} shows: {unshown}"


def test_every_entry_that_excuses_losses_has_an_example_of_one() -> None:
    """`losses: true` excuses whatever went missing (fewer responses, empty headers, no server
    confirmation): an entry that has it with no example showing a loss its `contains` does not
    already cover excuses more than anything measured."""
    builtin = divergences.load(divergences.builtin_files(), builtin=True)
    unshown = []
    for e in (e for e in builtin if e.losses):
        diffs = [d for ex in _examples() if ex["entry"] == e.match for d in _example_result(ex).diffs]
        if not any(divergences._lost(d) and not any(c in divergences._text(d) for c in e.contains) for d in diffs):
            unshown.append(e.match)
    assert not unshown, f"entries with losses: true and no example of a loss in {EXAMPLES_FILE.name}: {unshown}"
