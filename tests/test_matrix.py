"""The grpcio × grpc-go version matrix: aggregation of reports/matrix/*.json, and the grpc-go override
of the Go peer's digest (harness/protoset/codegen.py, $INTEROP_GRPC_GO)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from harness.protoset import codegen
from harness.run import version_matrix as matrix
from harness.protoset.codegen import GoBuild
from harness.engines.peer import image_tag
from harness.protoset import discover

REPO = Path(__file__).resolve().parent.parent


def result(case: str, verdict: str, direction: str = "py→go", diffs: list | None = None) -> dict:
    return {"case": case, "direction": direction, "verdict": verdict, "diffs": diffs or [], "duration_ms": 1.0}


def write_combo(d: Path, grpcio: str, grpcgo: str, results: list[dict] | None, **meta) -> None:
    stem = matrix.combo_name(grpcio, grpcgo)
    d.mkdir(parents=True, exist_ok=True)
    if results is not None:
        (d / f"{stem}.json").write_text(json.dumps(results))
    if meta:
        (d / f"{stem}.meta.json").write_text(json.dumps({"grpcio": grpcio, "grpc_go": grpcgo, **meta}))


OK = [result("a/B/x", "pass"), result("a/B/y", "pass", "go→py"), result("a/B/z", "divergence")]


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    d = tmp_path / "matrix"
    write_combo(d, "1.85.1", "v1.85.0", OK, exit_code=0, run_s=61.2)
    write_combo(d, "1.85.1", "v1.77.0", OK, exit_code=0)
    write_combo(d, "1.76.0", "v1.85.0", OK)   # no meta: counts alone decide
    write_combo(d, "1.76.0", "v1.77.0", [
        *OK, result("svc/M/protocol/gzip", "fail", "go→pyaio",
                    [{"call": 0, "path": "status", "expected": "OK", "got": "INTERNAL"}]),
        result("svc/M/stream/cancel", "unexpected_pass", "pyaio→go")], exit_code=1)
    (d / "unrelated.json").write_text("[]")          # not a combination: ignored
    return d


def test_cells_count_pass_fail_divergence(reports: Path) -> None:
    m = matrix.load(reports)
    assert m.grpcio == ["1.85.1", "1.76.0"] and m.grpcgo == ["v1.85.0", "v1.77.0"]
    good = m.cells[("1.85.1", "v1.85.0")]
    assert (good.passed, good.failed, good.divergences, good.ok) == (2, 0, 1, True)
    bad = m.cells[("1.76.0", "v1.77.0")]
    assert (bad.passed, bad.failed, bad.divergences, bad.ok) == (2, 2, 1, False)   # unexpected_pass fails
    assert bad.text() == "2 pass / 2 fail / 1 div"
    assert [(c.grpcio, c.grpcgo) for c in m.failing] == [("1.76.0", "v1.77.0")]


def test_markdown_names_the_failing_combination(reports: Path) -> None:
    md = matrix.markdown(matrix.load(reports))
    assert "| grpcio (protobuf) \\ grpc-go | v1.85.0 | v1.77.0 |" in md
    assert "| 1.85.1 (7.36.2) | ✅ 2 pass / 0 fail / 1 div (61 s) | ✅ 2 pass / 0 fail / 1 div |" in md
    assert "| 1.76.0 (6.33.6) | ✅ 2 pass / 0 fail / 1 div | ❌ 2 pass / 2 fail / 1 div |" in md
    assert "**Failing combinations (1 of 4):**" in md
    assert "- grpcio 1.76.0 × grpc-go v1.77.0: 2 pass / 2 fail / 1 div (exit code 1)" in md
    assert "  - `fail: status: expected OK, got INTERNAL` in go→pyaio: `svc/M/protocol/gzip`" in md
    assert "  - `unexpected_pass` in pyaio→go: `svc/M/stream/cancel`" in md


def test_failures_are_grouped_by_reason(tmp_path: Path) -> None:
    err = {"call": 0, "path": "error", "expected": "", "got": 'ParseError: no field named "marks"\nmore'}
    write_combo(tmp_path, "1.72.2", "v1.85.0", [
        *(result(f"x/M/p{i}", "error", d, [err]) for i in range(4) for d in ("py→go", "go→py")),
        result("y/M/gzip", "fail", "go→pyaio", [{"call": 0, "path": "compression", "expected": "gzip",
                                                 "got": "identity"}])])
    groups = matrix.failure_groups(matrix.load(tmp_path).cells[("1.72.2", "v1.85.0")])
    assert groups[0] == ('error: ParseError: no field named "marks"', ["py→go", "go→py"],
                         ["x/M/p0", "x/M/p1", "x/M/p2", "x/M/p3"])
    assert groups[1] == ("fail: compression: expected gzip, got identity", ["go→pyaio"], ["y/M/gzip"])
    md = matrix.markdown(matrix.load(tmp_path))
    assert '`error: ParseError: no field named "marks"` in py→go, go→py: `x/M/p0`, `x/M/p1`, `x/M/p2` and 1 more' in md


def test_all_passing(tmp_path: Path) -> None:
    write_combo(tmp_path, "1.85.1", "v1.85.0", OK, exit_code=0)
    m = matrix.load(tmp_path)
    assert not m.failing
    assert "All 1 combinations pass." in matrix.markdown(m)


def test_build_error_and_missing_reports_are_failures(tmp_path: Path) -> None:
    write_combo(tmp_path, "1.72.2", "v1.77.0", None, exit_code=2,
                error="building the Go peer against grpc-go v1.77.0 failed: undefined: grpc.Foo")
    write_combo(tmp_path, "1.72.2", "v1.80.0", None, exit_code=1, error=None)   # crashed before writing results
    m = matrix.load(tmp_path, expected=[("1.72.2", "v1.77.0"), ("1.72.2", "v1.80.0"), ("1.72.2", "v1.85.0")])
    assert m.cells[("1.72.2", "v1.77.0")].text() == "error: building the Go peer against grpc-go v1.77.0 " \
                                                    "failed: undefined: grpc.Foo"
    assert m.cells[("1.72.2", "v1.80.0")].error == "no results"
    assert m.cells[("1.72.2", "v1.85.0")].error == "no report"    # expected, but no file at all
    assert len(m.failing) == 3
    assert "**Failing combinations (3 of 3):**" in matrix.markdown(m)


def test_nonzero_exit_with_clean_results_still_fails(tmp_path: Path) -> None:
    write_combo(tmp_path, "1.85.1", "v1.85.0", OK, exit_code=2)
    assert not matrix.load(tmp_path).cells[("1.85.1", "v1.85.0")].ok


def test_summary_writes_markdown_and_step_summary(reports: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    step = tmp_path / "step_summary.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    assert matrix.main(["summary", "--dir", str(reports), "--found-only"]) == 1
    out = capsys.readouterr().out
    assert "grpc-go v1.77.0" in out and "FAILING: grpcio 1.76.0 × grpc-go v1.77.0" in out
    md = (reports / "summary.md").read_text()
    assert step.read_text() == "earlier step\n" + md   # appended, as GitHub expects


def test_combo_names_round_trip() -> None:
    assert matrix.combo_name("1.76.0", "v1.80.0") == "grpcio-1.76.0_grpc-go-v1.80.0"
    assert matrix.parse_combo("grpcio-1.76.0_grpc-go-v1.80.0") == ("1.76.0", "v1.80.0")
    assert matrix.parse_combo("summary") is None


def test_python_requirements_replace_the_repo_pins() -> None:
    reqs = matrix.python_requirements("1.72.2")
    assert "grpcio==1.72.2" in reqs and "grpcio-tools==1.72.2" in reqs and "protobuf==6.33.6" in reqs
    assert not [r for r in reqs if "1.85.1" in r or r.startswith("protobuf>")]
    assert any(r.startswith("rich") for r in reqs)


def test_run_refuses_an_environment_with_other_versions(tmp_path: Path) -> None:
    # this venv has the repo's grpcio, not 1.0.0: refused before anything is built
    assert matrix.main(["run", "--grpcio", "1.0.0", "--grpc-go", "v1.80.0", "--out", str(tmp_path)]) == 2
    meta = json.loads((tmp_path / "grpcio-1.0.0_grpc-go-v1.80.0.meta.json").read_text())
    assert meta["exit_code"] == 2 and "not grpcio 1.0.0" in meta["error"]


def test_ci_workflow_runs_the_configured_versions() -> None:
    wf = yaml.safe_load((REPO / "ci/github/interop-matrix.yml").read_text())
    m = wf["jobs"]["interop"]["strategy"]["matrix"]
    assert m["grpcio"] == list(matrix.GRPCIO) and m["grpcgo"] == matrix.GRPC_GO
    steps = " ".join(s.get("run", "") for s in wf["jobs"]["interop"]["steps"])
    assert "make setup" in steps and "nox -s \"interop(grpcio=" in steps


# ---------------------------------------------------------------- the grpc-go override

@pytest.fixture
def protoset(tmp_path: Path):
    (tmp_path / "m.proto").write_text('syntax = "proto3"; package mx; message A {}')
    return discover(tmp_path)


def test_go_digest_depends_on_the_grpc_go_version(protoset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(codegen.GRPC_GO_ENV, raising=False)
    default = codegen.go_digest(protoset)
    digests = {}
    for v in ("v1.77.0", "v1.80.0"):
        monkeypatch.setenv(codegen.GRPC_GO_ENV, v)
        digests[v] = codegen.go_digest(protoset)
    assert len({default, *digests.values()}) == 3
    tags = {image_tag(GoBuild(digest=d[:20], src=Path(), binary=Path())) for d in (default, *digests.values())}
    assert len(tags) == 3   # one peer image per grpc-go version
    monkeypatch.setenv(codegen.GRPC_GO_ENV, "v1.77.0")
    assert codegen.go_digest(protoset) == digests["v1.77.0"]   # stable


def test_grpc_go_override_equal_to_go_mod_pin_is_no_override(protoset, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = next(line.split()[1] for line in (REPO / "go_peer/go.mod").read_text().splitlines()
                  if line.split()[:1] == ["google.golang.org/grpc"])
    monkeypatch.delenv(codegen.GRPC_GO_ENV, raising=False)
    default = codegen.go_digest(protoset)
    monkeypatch.setenv(codegen.GRPC_GO_ENV, pinned)
    assert codegen.grpc_go_override() is None
    assert codegen.go_digest(protoset) == default   # `make setup`'s image serves that column


def test_grpc_go_override_must_be_a_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(codegen.GRPC_GO_ENV, "1.77")
    with pytest.raises(codegen.CodegenError, match="not a grpc-go module version"):
        codegen.grpc_go_override()


def test_reports_with_coverage_beside_the_results_are_read(tmp_path: Path) -> None:
    """`run --json` writes {"results": […], "coverage": {…}}; the matrix counts the results."""
    stem = matrix.combo_name("1.85.1", "v1.85.0")
    tmp_path.joinpath(f"{stem}.json").write_text(json.dumps({"results": OK, "coverage": {"directions": {}}}))
    cell = matrix.load(tmp_path).cells[("1.85.1", "v1.85.0")]
    assert cell.counts == {"pass": 2, "divergence": 1} and cell.error is None


# ---------------------------------------------------------------- the other axes (issue 12)

def test_backend_and_protobuf_go_axes_are_configured_and_in_the_workflow() -> None:
    extra = matrix.extra_axes()
    assert ("1.85.1+python", "v1.85.0") in extra and ("1.85.1", "v1.77.0+protobuf-go-v1.36.10") in extra
    assert set(extra) <= set(matrix.configured())
    wf = yaml.safe_load((REPO / "ci/github/interop-matrix.yml").read_text())
    include = [(i["grpcio"], i["grpcgo"]) for i in wf["jobs"]["interop"]["strategy"]["matrix"]["include"]]
    assert include == extra
    assert matrix.split_grpcio("1.85.1+python") == ("1.85.1", "python") and matrix.split_grpcio("1.76.0") == ("1.76.0", None)
    assert matrix.split_grpcgo("v1.85.0+protobuf-go-v1.36.6") == ("v1.85.0", "v1.36.6")
    assert matrix.python_requirements("1.85.1+python") == matrix.python_requirements("1.85.1")
    assert matrix.parse_combo(matrix.combo_name("1.85.1+python", "v1.85.0")) == ("1.85.1+python", "v1.85.0")


def test_go_digest_depends_on_the_protobuf_go_version(protoset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(codegen.GRPC_GO_ENV, raising=False)
    monkeypatch.delenv(codegen.PROTOBUF_GO_ENV, raising=False)
    default = codegen.go_digest(protoset)
    monkeypatch.setenv(codegen.PROTOBUF_GO_ENV, "v1.36.6")
    assert codegen.protobuf_go_override() == "v1.36.6" and codegen.go_digest(protoset) != default
    monkeypatch.setenv(codegen.PROTOBUF_GO_ENV, "1.36")
    with pytest.raises(codegen.CodegenError, match="not a protobuf-go module version"):
        codegen.protobuf_go_override()


_SESSION = re.compile(r"interop\(grpcio='([^']+)', grpcgo='([^']+)'\)")


def test_sessions_named_in_noxfile_and_docs_exist() -> None:
    """A session the docstring or the docs tell people to run is one `nox -l` lists."""
    configured = set(matrix.configured())
    for path in [REPO / "noxfile.py", *sorted((REPO / "docs").glob("*.md"))]:
        named = {m.groups() for m in _SESSION.finditer(path.read_text())}
        assert named <= configured, f"{path.name} names sessions that do not exist: {sorted(named - configured)}"
    assert {m.groups() for m in _SESSION.finditer((REPO / "noxfile.py").read_text())}  # it names some


def test_docs_are_written_from_the_reports(tmp_path: Path) -> None:
    """docs/matrix.md comes from the runs' files: every configured combination with its versions, and
    the case runs each version-conditioned entry excused in it (0 outside its range)."""
    from harness.run import divergences, matrix_docs

    entry = next(e for e in divergences.load(divergences.builtin_files(), builtin=True) if e.versions)
    known = {"call": 0, "path": "divergence", "expected": "known", "got": f"{entry.reason} (builtin)"}
    d = tmp_path / "matrix"
    for grpcio, grpcgo in matrix.configured():
        old = grpcio == min(matrix.GRPCIO, key=matrix._version_key)
        results = [result("a/B/x", "pass"), *([result("a/B/y", "divergence", diffs=[known])] if old else [])]
        write_combo(d, grpcio, grpcgo, results, exit_code=0, run_s=60.0, commit="abc123", finished="2026-12-07T12:00:00Z",
                    versions={"grpcio": grpcio.split("+")[0], "protobuf": "6.33.6", "protobuf_backend": "upb",
                              "grpc_go": grpcgo.split("+")[0], "protobuf_go": "v1.36.12", "go": "go1.26.8"})
    text = matrix_docs.render(d)
    assert text.startswith(matrix_docs.MARK) and "`abc123` (2026-12-07)" in text
    assert "All 11 combinations pass." in text
    for grpcio, grpcgo in matrix.configured():
        assert f"`interop(grpcio='{grpcio}', grpcgo='{grpcgo}')`" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| 1. `{entry.match}`"))  # the first group
    counts = [x.strip() for x in row.split("|")[3:-1]]
    assert counts.count("1") == len(matrix.GRPC_GO) and counts.count("0") == len(matrix.configured()) - len(matrix.GRPC_GO)
    out = tmp_path / "matrix.md"
    assert matrix_docs.main(["--dir", str(d), "--out", str(out)]) == 0 and out.read_text() == text


def test_the_committed_docs_are_generated() -> None:
    """docs/matrix.md is the command's output, not an edited page."""
    assert (REPO / "docs" / "matrix.md").read_text().startswith("<!-- generated by `make matrix-docs`")


def test_ci_runs_the_oldest_supported_combination() -> None:
    """.ci/run runs `make matrix-oldest`, the nox session of the oldest grpcio × the oldest grpc-go,
    which is one of the configured sessions."""
    grpcio, grpcgo = matrix.oldest()
    assert (grpcio, grpcgo) in matrix.configured()
    assert all(matrix._version_key(grpcio) <= matrix._version_key(v) for v in matrix.GRPCIO)
    assert all(matrix._version_key(grpcgo) <= matrix._version_key(v) for v in matrix.GRPC_GO)
    assert "\nmake matrix-oldest\n" in (REPO / ".ci" / "run").read_text()
    assert 'nox $(NOX_OPTS) -s "$$($(PY) -m harness.run.version_matrix oldest)"' in (REPO / "Makefile").read_text()
