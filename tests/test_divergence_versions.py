"""Known divergences conditioned on library versions (`versions:`): an entry applies only to a run
whose libraries are in its range. Outside it the entry is as if absent (a failure stays a failure);
inside it the entry must still diverge (a pass is stale)."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest

from harness.run import divergences, runner
from python_impl.contract import Diff, Result

REPO = Path(__file__).resolve().parent.parent
OLD = {"grpcio": "1.72.2", "protobuf": "6.33.6", "protobuf_backend": "upb", "grpc_go": "v1.77.0",
       "protobuf_go": "v1.36.10"}
NEW = {**OLD, "grpcio": "1.85.1", "protobuf": "7.36.2", "grpc_go": "v1.85.0", "protobuf_go": "v1.36.12"}


def entry(tmp_path: Path, versions: str) -> divergences.Divergence:
    f = tmp_path / "d.yaml"
    f.write_text("divergences:\n  - match: 'py-go:svc/M/*'\n    contains: 'raised ValueError'\n"
                 f"    reason: old grpcio raises\n    versions: {versions}\n")
    [e] = divergences.load([f], builtin=False)
    return e


def result(verdict: str) -> Result:
    diffs = [Diff(0, "status.code", "INTERNAL", "raised ValueError: metadata was invalid")] if verdict == "fail" else []
    return Result("svc/M/protocol/x", "py→go", verdict, diffs)


def judge(e: divergences.Divergence, verdict: str, versions: dict[str, str] | None) -> str:
    return divergences.apply([e], result(verdict), "py-go", versions=versions).verdict


def test_an_entry_applies_inside_its_range_only(tmp_path: Path) -> None:
    e = entry(tmp_path, "{grpcio: '>=1.72,<1.85'}")
    assert judge(e, "fail", OLD) == "divergence"
    assert judge(e, "fail", NEW) == "fail"          # outside: the entry does not excuse it
    assert judge(e, "pass", NEW) == "pass"          # outside: a pass is no news
    assert judge(e, "pass", OLD) == "unexpected_pass"  # inside, the difference gone: stale
    assert judge(e, "fail", None) == "fail"         # versions unknown: no condition holds


def test_go_versions_with_or_without_v_and_the_protobuf_backend(tmp_path: Path) -> None:
    e = entry(tmp_path, "{grpc_go: '<v1.80', protobuf_go: '>=1.36.10', protobuf_backend: [upb, cpp]}")
    assert judge(e, "fail", OLD) == "divergence"
    assert judge(e, "fail", NEW) == "fail"
    assert judge(e, "fail", {**OLD, "protobuf_backend": "python"}) == "fail"
    # a run without Go (the peer was not built) matches no grpc-go condition
    assert judge(e, "fail", {**OLD, "grpc_go": "not used", "protobuf_go": "not used"}) == "fail"


@pytest.mark.parametrize(("versions", "error"), [
    ("{grpcio_tools: '<2'}", "versions is a mapping of"),
    ("{}", "versions is a mapping of"),
    ("'<1.80'", "versions is a mapping of"),
    ("{grpcio: 'old'}", "is not a version specifier"),
    ("{grpcio: ''}", "is not a version specifier"),
    ("{protobuf_backend: ''}", "backend name"),
])
def test_malformed_versions_are_refused_naming_the_entry(tmp_path: Path, versions: str, error: str) -> None:
    with pytest.raises(divergences.DivergenceError, match=error) as e:
        entry(tmp_path, versions)
    assert "d.yaml: divergences[0] (py-go:svc/M/*)" in str(e.value)


@pytest.fixture(scope="module")
def prepared(seed_gen) -> runner.Prepared:
    return runner.prepare(REPO / "protos")


def test_a_run_judges_its_results_by_the_versions_it_runs(prepared: runner.Prepared, tmp_path: Path) -> None:
    """Through a real py→py run, whose versions the session reads itself: a long status message is
    refused by every grpcio client (a divergence), a unary value case passes."""
    refused = "tutorial.HelloService/SayHello/protocol/long_status_message"
    passes = "tutorial.HelloService/SayHello/HelloRequest/typical"
    cases = [c for c in prepared.cases if c.name in (refused, passes)]
    assert len(cases) == 2
    mine = grpc.__version__
    f = tmp_path / "d.yaml"

    def run(versions: str) -> dict[str, str]:
        f.write_text("divergences:\n"
                     f"  - {{match: 'py-py:{refused}', requires: 'received metadata size exceeds hard limit',\n"
                     "      contains: 'received metadata size exceeds hard limit', losses: true,\n"
                     f"      reason: measured, versions: {versions}}}\n"
                     f"  - {{match: 'py-py:{passes}', contains: 'x', reason: measured, versions: {versions}}}\n")
        prepared.known = divergences.load([f], builtin=False)
        with runner.Session(prepared, "process") as session:
            return {r.case: r.verdict for r in session.run(runner.direction("py-py"), cases)}

    # this grpcio is in the range: the refusal is the divergence, the passing case's entry is stale
    assert run(f"{{grpcio: '=={mine}'}}") == {refused: "divergence", passes: "unexpected_pass"}
    # another grpcio's entry: neither applies, the refusal is a failure, the pass a pass
    assert run(f"{{grpcio: '!={mine}'}}") == {refused: "fail", passes: "pass"}


def _combination_versions(grpcio: str, grpcgo: str) -> dict[str, str]:
    """The versions a configured combination runs with, as its report records them."""
    from harness.run import version_matrix as vm

    (py, backend), (go, protobuf_go) = vm.split_grpcio(grpcio), vm.split_grpcgo(grpcgo)
    pin = re.search(r"google\.golang\.org/protobuf (v\S+)", (REPO / "go_peer" / "go.mod").read_text())
    assert pin is not None
    return {"grpcio": py, "protobuf": vm.GRPCIO[py], "protobuf_backend": backend or "upb", "grpc_go": go,
            "protobuf_go": protobuf_go or pin.group(1)}


def test_every_builtin_version_range_is_one_the_matrix_runs() -> None:
    """A built-in entry whose range no configured combination is in would never be measured again."""
    from harness.run import version_matrix as vm

    tested = [_combination_versions(*c) for c in vm.configured()]
    for e in divergences.load(divergences.builtin_files(), builtin=True):
        if e.versions:
            assert any(e.in_versions(v) for v in tested), (e.match, e.versions)
            assert not all(e.in_versions(v) for v in tested), (e.match, "applies everywhere: drop `versions`")


@pytest.mark.parametrize(("slug", "verdict", "diffs"), [
    ("go-py", "fail", [("status.code", "OK", 'UNIMPLEMENTED "Method not found!"'), ("responses.count", "1", "0")]),
    ("py-py", "error", [("error", "", "KeyError: \"Couldn't find message grpc.health.v1.HealthListRequest\"")]),
])
def test_a_capability_signature_holds_for_its_versions_only(slug: str, verdict: str, diffs: list) -> None:
    """grpcio-health-checking 1.72/1.76 lack Health/List in another way than 1.85 (no method at all,
    no request message): the capability's probe says so with those versions, and not with others."""
    from harness.run import capabilities

    cap = next(c for c in capabilities.load() if c.library == "grpcio-health-checking")

    def judged(versions: dict[str, str]) -> str:
        r = Result("grpc.health.v1.Health/List/standard/all", slug.replace("-", "→"), verdict,
                   [Diff(0, *d) for d in diffs])
        return capabilities.judge(cap, r, slug, "unary", versions).verdict

    assert judged(OLD) == capabilities.VERDICT
    assert judged(NEW) == verdict
