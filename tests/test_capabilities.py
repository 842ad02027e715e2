"""Capabilities one side's library lacks (harness/run/capabilities.py): one probe per direction, rows apart."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.cases import standard as stdcases
from harness.report import export
from harness.report.verdicts import counts, excused_share, failed
from harness.run import capabilities
from harness.run.runner import Prepared, direction
from python_impl.contract import Diff, Result

V1 = "grpc.reflection.v1.ServerReflection/ServerReflectionInfo/standard/"
LIST = "grpc.health.v1.Health/List/standard/all"
CHECK_V1 = "grpc.health.v1.Health/Check/standard/service/grpc.reflection.v1.ServerReflection"
UNIMPLEMENTED = [Diff(0, "status.code", "OK", 'UNIMPLEMENTED "Method not found!"'), Diff(0, "responses.count", "1", "0")]


def _prepared() -> Prepared:
    served = ["a.v1.Svc", *stdcases.STANDARD]
    cases = stdcases.health_cases(served) + [c for v in ("v1", "v1alpha") for c in stdcases.reflection_cases(v, [], served)]
    prepared = Prepared(None, None, cases)  # type: ignore[arg-type]
    prepared.__dict__["build"] = SimpleNamespace(findings=[])  # no Go build: nothing here is about Go's files
    return prepared


def test_the_cases_a_capability_covers_run_only_their_probe_in_its_directions() -> None:
    prepared = _prepared()
    every = [c.name for c in prepared.cases]
    for slug in ("py-py", "pyaio-pyaio", "go-py", "go-pyaio"):
        names = [c.name for c in prepared.runnable(direction(slug), prepared.cases)]
        assert [n for n in names if n.startswith(V1)] == [V1 + "list_services"], slug
        assert LIST in names and CHECK_V1 not in names
        assert set(every) - set(names) == {n for n in every if n.startswith(V1) or n == CHECK_V1} - {V1 + "list_services"}
        assert set(prepared.probes(direction(slug))) == {V1 + "list_services", LIST}
    for slug in ("py-go", "pyaio-go", "go-go"):  # a grpc-go server has both: every case runs
        assert [c.name for c in prepared.runnable(direction(slug), prepared.cases)] == every
        assert prepared.probes(direction(slug)) == {}
    # without the list (a set with a file Python cannot load has none), another v1 reflection call proves
    # the lack: never the health Check of the v1 name, whose failure is another one (NOT_FOUND)
    unlisted = _prepared()
    unlisted.cases = [c for c in unlisted.cases if c.name != V1 + "list_services"]
    assert set(unlisted.probes(direction("py-py"))) == {V1 + "file_containing_symbol/grpc.health.v1.Health", LIST}
    # the probe is chosen from the whole catalogue, whatever the chunk or selection
    chunk = [c for c in prepared.cases if c.name.startswith(V1)][1:]
    assert prepared.runnable(direction("py-py"), chunk) == []


def _judge(slug: str, diffs: list[Diff], verdict: str = "fail", case: str = V1 + "list_services") -> Result:
    cap = next(c for c in capabilities.load() if c.covers(slug, case))
    return capabilities.judge(cap, Result(case, slug, verdict, list(diffs)), slug, "bidi")


def test_a_probe_that_fails_as_documented_is_a_capability_row() -> None:
    row = _judge("go-py", UNIMPLEMENTED)
    assert row.verdict == "capability" and "grpcio-reflection" in row.diffs[-1].got
    assert _judge("go-py", [Diff(0, "status.code", "OK", 'UNIMPLEMENTED "Method not implemented!"'),
                            Diff(0, "responses.count", "1", "0")], case=LIST).verdict == "capability"
    # a set that vendors the v1 reflection.proto: the generic engine answers the call it has no case for
    engine = f'UNIMPLEMENTED "no case \\"{V1}list_services\\" in the catalogue and no implementation of ' \
             'grpc.reflection.v1.ServerReflection"'
    assert _judge("go-py", [Diff(0, "status.code", "OK", engine), UNIMPLEMENTED[1]]).verdict == "capability"
    # grpc.aio's race (grpc/grpc#36066) is the lack seen through a grpc.aio client only
    race = [Diff(0, "status.code", "OK", 'INTERNAL "Internal error from Core"')]
    assert _judge("pyaio-pyaio", race).verdict == "capability"
    assert _judge("go-py", race).verdict == "fail"


def test_a_probe_that_passes_or_fails_otherwise_is_a_failure() -> None:
    gained = _judge("py-py", [], verdict="pass")
    assert gained.verdict == "unexpected_pass" and "has it now" in gained.diffs[0].got
    other = _judge("py-py", [*UNIMPLEMENTED, Diff(0, "trailers[\"x\"]", "[\"v\"]", "[\"w\"]")])
    assert other.verdict == "fail" and failed([other]) == [other]
    assert _judge("py-py", [Diff(0, "status.code", "OK", "NOT_FOUND")]).verdict == "fail"


def test_a_missing_v1_reflection_service_excuses_no_response_that_arrived() -> None:
    """The lack answers UNIMPLEMENTED and nothing else: responses that arrived anyway (more than
    expected) are no lack. Its signatures had "responses.count: expected", which excused any count;
    fewer responses are a loss (`losses: true`)."""
    engine = f'UNIMPLEMENTED "no case \\"{V1}list_services\\" in the catalogue and no implementation of ' \
             'grpc.reflection.v1.ServerReflection"'
    for status in (UNIMPLEMENTED[0], Diff(0, "status.code", "OK", engine)):
        assert _judge("py-py", [status, Diff(0, "responses.count", "1", "0")]).verdict == "capability"
        assert _judge("py-py", [status, Diff(0, "responses.count", "1", "5")]).verdict == "fail"


def test_capability_rows_are_listed_apart_from_the_case_runs() -> None:
    rows = [Result("a.S/M/x/y", "py→py", "pass"), Result("a.S/M/x/z", "py→py", "divergence"),
            Result(V1 + "list_services", "py→py", "capability", [Diff(0, "capability", "lacking", "no v1")])]
    assert counts(rows) == (1, 1, 0) and excused_share(rows) == pytest.approx(0.5) and failed(rows) == []
    run = {"capabilities": [{"direction": "py→py", "case": V1 + "list_services", "library": "grpcio-reflection",
                             "version": "1.85.1", "measured": "1.85.1", "lacks": "reflection v1", "reason": "r"}]}
    md = export.markdown(rows, ["py→py"], {}, None, run)
    assert "of 2 case runs" in md and "| py→py | grpcio-reflection 1.85.1 | reflection v1 |" in md
    assert "grpc.reflection.v1.ServerReflection" not in md.split("### Capabilities")[0]  # not a matrix row
    page = export.html_page(rows, ["py→py"], {}, "t", None, run)
    assert "Capabilities one side" in page and "of 2 case runs" in page


def test_every_builtin_capability_is_well_formed() -> None:
    caps = capabilities.load()
    assert {c.library for c in caps} == {"grpcio-reflection", "grpcio-health-checking"}
    for c in caps:
        assert c.installed() != "not installed" and all(s.requires for s in c.signatures)


def test_the_version_matrix_counts_capability_rows_apart() -> None:
    from harness.run.version_matrix import Cell

    cell = Cell("1.85.1", "v1.85.0", {"pass": 10, "divergence": 1, "capability": 8})
    assert cell.ok and cell.failed == 0 and cell.text() == "10 pass / 0 fail / 1 div (+8 capability rows)"


def _capability_file(tmp_path, extra: list[Diff] | None = None, record: bool = True):
    """A results file whose go→py probe was judged a capability row (as a run writes it)."""
    import json

    from harness.report import results

    case = V1 + "list_services"
    row = _judge("go-py", [*UNIMPLEMENTED, *(extra or [])])
    row.direction = "go→py"
    cap = next(c for c in capabilities.load() if c.covers("go-py", case))
    other = Result("a.S/M/T/x", "go→py", "pass")
    run = {"versions": {}, "protos": {"label": "p", "digest": "0"}, "directions": ["go→py"], "shard": None,
           "complete": True, "interrupted": None,
           "catalogue": {"digest": "d", "expected": {"go→py": [case, other.case]},
                         "modes": {case: {"streaming": "bidi", "ends_early": False},
                                   other.case: {"streaming": "unary", "ends_early": False}}},
           "not_run": [], "divergences": [],
           "capabilities": [{"direction": "go→py", "case": case, **cap.row()}] if record else []}
    path = tmp_path / "caps.json"
    results.write(path, [row, other], None, run)
    return path, json, results


def test_report_merge_judges_a_capability_row_again(tmp_path) -> None:
    path, json, results = _capability_file(tmp_path)
    merged = results.merge([results.read(path)])
    assert [r.verdict for r in merged.results] == ["capability", "pass"] and merged.run["capabilities"]
    # a row relabelled capability with a difference no signature explains is refused, naming the row
    doc = json.loads(path.read_text())
    doc["results"][0]["diffs"].insert(0, {"call": 0, "path": "trailers[\"x\"]", "expected": "[\"v\"]", "got": "[]x"})
    path.write_text(json.dumps(doc, ensure_ascii=False))
    with pytest.raises(results.MergeError, match=r"caps.json: go→py grpc.reflection.v1.ServerReflection/.*marked "
                                                 r"capability, but no signature of the grpcio-reflection capability"):
        results.merge([results.read(path)])
    # and so is one whose run records no capability for it
    path, json, results = _capability_file(tmp_path, record=False)
    with pytest.raises(results.MergeError, match=r"marked capability, but its run records no capability row"):
        results.merge([results.read(path)])


def test_report_merge_refuses_a_capability_row_the_capability_does_not_prove(tmp_path) -> None:
    """A capability row stands only where the capability covers the case in that direction (a grpc-go
    server has both services), and only for its one probe: another case it covers never runs."""
    path, json, results = _capability_file(tmp_path)
    text = path.read_text()
    path.write_text(text.replace("go→py", "go→go"))  # the same row, as if a Go server lacked v1
    with pytest.raises(results.MergeError, match=r"go→go grpc.reflection.v1.ServerReflection/.*marked capability, "
                                                 r"but the grpcio-reflection capability does not cover go-go"):
        results.merge([results.read(path)])
    # a second case the capability covers, run and marked capability beside the probe
    doc = json.loads(text)
    extra = V1 + "file_by_filename/a.proto"
    doc["results"].append({**doc["results"][0], "case": extra})
    doc["run"]["capabilities"].append({**doc["run"]["capabilities"][0], "case": extra})
    doc["run"]["catalogue"]["expected"]["go→py"].append(extra)
    doc["run"]["catalogue"]["modes"][extra] = {"streaming": "bidi", "ends_early": False}
    path.write_text(json.dumps(doc, ensure_ascii=False))
    with pytest.raises(results.MergeError, match=r"marked capability, but its run expected 2 cases the "
                                                 r"grpcio-reflection capability covers in go-py"):
        results.merge([results.read(path)])


def test_report_merge_refuses_a_capability_record_no_row_proves(tmp_path) -> None:
    """The reports list run.capabilities as facts: each must be the record of a `capability` row of its
    file, or the merged report would list a lack no probe proved."""
    path, json, results = _capability_file(tmp_path)
    doc = json.loads(path.read_text())
    doc["results"][0] = {**doc["results"][0], "verdict": "fail"}  # the probe failed otherwise
    path.write_text(json.dumps(doc, ensure_ascii=False))
    with pytest.raises(results.MergeError, match=r"caps.json: go→py grpc.reflection.v1.ServerReflection/\S+: the run "
                                                 r"records the grpcio-reflection capability, but no capability row"):
        results.merge([results.read(path)])


def test_a_capability_row_says_when_the_installed_version_is_not_the_measured_one() -> None:
    """The row names the installed library; the entry was measured with another version: both show."""
    from harness.report.verdicts import capability_table

    row = {"direction": "go→py", "case": V1 + "list_services", "library": "grpcio-reflection", "version": "1.90.0",
           "measured": "1.85.1", "lacks": "reflection v1", "reason": "r"}
    run = {"capabilities": [row]}
    want = "grpcio-reflection 1.90.0 (measured with 1.85.1)"
    assert want in export.markdown([], ["go→py"], {}, None, run)
    assert want in export.html_page([], ["go→py"], {}, "t", None, run)
    from rich.console import Console

    console = Console(width=300, record=True)
    console.print(capability_table([row]))
    assert want in console.export_text()
    same = {**row, "version": "1.85.1"}
    assert "measured" not in export.markdown([], ["go→py"], {}, None, {"capabilities": [same]})
