"""`grpc-interop report merge` (harness/report/results.py) and the versions every report carries."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import cli
from harness.report import export, results
from harness.run import versions
from harness.report.coverage import KINDS, Coverage, Item, from_json
from python_impl.contract import Diff, Result

VERSIONS = {"harness": "0.1.0", "python": "3.11.7", "grpcio": "1.85.1", "protobuf": "7.36.2",
            "protobuf_backend": "upb", "grpc_go": "v1.85.0", "protobuf_go": "v1.36.12", "go": "go1.26.8",
            "protos_digest": "0123456789abcdef"}
LINE = ("versions: harness 0.1.0, Python 3.11.7, grpcio 1.85.1, protobuf 7.36.2 (upb), grpc-go v1.85.0, "
        "protobuf-go v1.36.12, Go go1.26.8, protos 0123456789ab")
DIRS = ["py→go", "go→py"]
CASES = [f"a.Svc/M{i % 2}/T/c{i}" for i in range(6)]
EXPECTED = {d: list(CASES) for d in DIRS}
DIGEST = results.catalogue_digest(EXPECTED, [{"name": c} for c in CASES])


def _items() -> dict[str, list[Item]]:
    items = {k: [] for k in KINDS}
    items["fields"] = [Item("fields", "a.T", f"f{i} ({i})") for i in range(4)]
    return items


def _cov(covered: dict[str, set[int]]) -> Coverage:
    items = _items()
    # an item no case can carry: `report merge` must keep it listed (it dropped the list)
    return Coverage(items, {d: {items["fields"][i] for i in s} for d, s in covered.items()}, DIRS,
                    {Item("fields", "a.T", "loop (9)"): "its type cannot be built"})


def _shard(tmp: Path, name: str, cases: list[str], covered: dict[str, set[int]], shard: str = "1/3",
           complete: bool = True, versions_: dict | None = None, digest: str = DIGEST) -> Path:
    rs = [Result(c, d, "fail" if c.endswith("c3") and d == "go→py" else "pass",
                 [Diff(0, "responses[0].x", "1", "2")] if c.endswith("c3") and d == "go→py" else [], 1.5)
          for d in DIRS for c in cases]
    mine = {d: cases for d in DIRS}
    run = {"versions": versions_ or VERSIONS, "protos": {"label": "protos", "digest": "0123"}, "directions": DIRS,
           "shard": shard, "complete": complete, "interrupted": None if complete else "SIGTERM",
           "catalogue": {"digest": digest, "expected": EXPECTED},
           "not_run": results.not_run(mine, rs[:-1] if not complete else rs), "divergences": [],
           "explanations": [{"direction": "go→py", "case": c, "text": f"FAIL: go→py {c}\n  grpc-interop run -k {c}"}
                            for c in cases if c.endswith("c3")]}
    if not complete:
        rs = rs[:-1]
    path = tmp / name
    results.write(path, rs, _cov(covered).to_json(), run)
    return path


def _three(tmp: Path) -> list[Path]:
    return [_shard(tmp, "s1.json", CASES[0:2], {"py→go": {0}, "go→py": {0, 1}}, "1/3"),
            _shard(tmp, "s2.json", CASES[2:4], {"py→go": {1}, "go→py": {1}}, "2/3"),
            _shard(tmp, "s3.json", CASES[4:6], {"py→go": set(), "go→py": {2}}, "3/3")]


def test_shards_merge_into_the_whole_set_with_exact_coverage(tmp_path: Path) -> None:
    merged = results.merge([results.read(p) for p in _three(tmp_path)])
    assert sorted((r.direction, r.case) for r in merged.results) == sorted((d, c) for d in DIRS for c in CASES)
    assert merged.run["complete"] and not merged.missing and merged.run["versions"] == VERSIONS
    # an item is uncovered only where every shard left it uncovered: the union's coverage, exactly
    assert merged.coverage == _cov({"py→go": {0, 1}, "go→py": {0, 1, 2}}).to_json()
    assert from_json(merged.coverage).to_json() == merged.coverage
    assert merged.explanations[("go→py", "a.Svc/M1/T/c3")].startswith("FAIL: go→py a.Svc/M1/T/c3")


def test_a_case_present_twice_or_missing_everywhere_is_an_error(tmp_path: Path) -> None:
    s1, s2, s3 = _three(tmp_path)
    with pytest.raises(results.MergeError, match=r"py→go a.Svc/M0/T/c0 is in .*s1.json and in .*s1.json"):
        results.merge([results.read(p) for p in (s1, s1, s2, s3)])
    with pytest.raises(results.MergeError, match=r"4 \(direction, case\) are in no input.*py→go a.Svc/M0/T/c4"):
        results.merge([results.read(p) for p in (s1, s2)])
    other = _shard(tmp_path, "o.json", CASES[4:6], {"py→go": set(), "go→py": set()}, "3/3", digest="ffff")
    with pytest.raises(results.MergeError, match="different catalogues"):
        results.merge([results.read(p) for p in (s1, s2, other)])
    (tmp_path / "old.json").write_text(json.dumps({"results": [], "coverage": None}))
    with pytest.raises(results.MergeError, match="no run record"):
        results.read(tmp_path / "old.json")


def test_an_incomplete_shard_needs_the_flag_and_is_named(tmp_path: Path) -> None:
    s1, s2, _ = _three(tmp_path)
    cut = _shard(tmp_path, "s3cut.json", CASES[4:6], {"py→go": set(), "go→py": set()}, "3/3", complete=False)
    with pytest.raises(results.MergeError, match=r"s3cut.json is incomplete \(SIGTERM\).*go→py a.Svc/M1/T/c5.*"
                                                 r"--allow-incomplete"):
        results.merge([results.read(p) for p in (s1, s2, cut)])
    merged = results.merge([results.read(p) for p in (s1, s2, cut)], allow_incomplete=True)
    assert merged.missing == [("go→py", "a.Svc/M1/T/c5")] and not merged.run["complete"]
    code = cli.main(["report", "merge", str(s1), str(s2), str(cut), "--allow-incomplete",
                     "--junit", str(tmp_path / "m.xml"), "--markdown", str(tmp_path / "m.md")])
    assert code == 1  # c3 fails in go→py; without a failure an incomplete merge exits EXIT_INCOMPLETE
    skipped = ET.parse(tmp_path / "m.xml").getroot().find(".//testcase[@name='a.Svc/M1/T/c5']/skipped")
    assert skipped is not None and "did not run" in skipped.get("message")
    assert "INCOMPLETE" in (tmp_path / "m.md").read_text() and "`a.Svc/M1/T/c5`" in (tmp_path / "m.md").read_text()


def test_merge_command_writes_every_report_and_fails_on_a_failure(tmp_path: Path, capsys) -> None:
    out = {k: tmp_path / f"m.{k}" for k in ("json", "junit", "markdown", "html")}
    code = cli.main(["report", "merge", *map(str, _three(tmp_path)),
                     *(arg for k, p in out.items() for arg in (f"--{k}", str(p)))])
    assert code == 1
    printed = capsys.readouterr().out
    assert LINE in printed and "FAIL: go→py a.Svc/M1/T/c3" in printed
    again = results.merge([results.read(out["json"])])  # the merged JSON is itself mergeable
    assert len(again.results) == 12 and again.run["versions"] == VERSIONS
    assert "grpc-interop run -k a.Svc/M1/T/c3" in out["html"].read_text()


def test_matrix_jobs_stay_apart_as_their_own_columns(tmp_path: Path) -> None:
    old = {**VERSIONS, "grpcio": "1.76.0"}
    a = _three(tmp_path)
    sub = tmp_path / "old"
    sub.mkdir()
    b = [_shard(sub, f"s{i}.json", CASES[2 * i - 2:2 * i], {"py→go": set(), "go→py": set()}, f"{i}/3", versions_=old)
         for i in (1, 2, 3)]
    merged = results.merge([results.read(p) for p in a + b])
    assert merged.directions == ["py→go · grpcio=1.85.1", "go→py · grpcio=1.85.1",
                                 "py→go · grpcio=1.76.0", "go→py · grpcio=1.76.0"]
    assert len(merged.results) == 24 and set(merged.variants) == {"grpcio=1.85.1", "grpcio=1.76.0"}
    assert merged.coverage["unreachable"]["fields"] == [
        {"owner": "a.T", "item": "loop (9)", "why": "its type cannot be built"}]


def test_versions_line_is_in_every_report_format(tmp_path: Path) -> None:
    rs = [Result("a.Svc/M0/T/c0", "py→go", "pass", [], 1.0)]
    run = {"versions": VERSIONS, "complete": True, "not_run": [], "catalogue": {"digest": "", "expected": {}}}
    assert versions.line(VERSIONS) == LINE  # the terminal prints this line
    export.junit(rs, {}, tmp_path / "j.xml", run)
    props = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "j.xml").getroot().iter("property")}
    assert props["versions"] == LINE and props["version.protobuf_backend"] == "upb"
    assert props["version.grpc_go"] == "v1.85.0" and props["complete"] == "true"
    assert LINE in export.markdown(rs, ["py→go"], {}, None, run)
    assert LINE in export.html_page(rs, ["py→go"], {}, "t", None, run)
    results.write(tmp_path / "r.json", rs, None, run)
    assert json.loads((tmp_path / "r.json").read_text())["run"]["versions"] == VERSIONS


def test_versions_are_read_from_the_running_libraries() -> None:
    import grpc
    from google.protobuf.internal import api_implementation

    found = versions.collect("d" * 64, None)
    assert found["grpcio"] == grpc.__version__ and found["protobuf_backend"] == api_implementation.Type()
    assert found["protobuf_backend"] in ("upb", "python", "cpp") and found["grpc_go"] == versions.NOT_USED
    assert set(found) == set(versions.LABELS)


# ---------------------------------------------------------------- labels judged again

def _judged_shard(tmp: Path, rows: list[Result]) -> Path:
    """One shard whose run recorded a known divergence (its full definition) and each case's mode,
    as `grpc-interop run --json` writes them; rows are labelled by divergences.apply, as a run does."""
    from harness.run import divergences

    entry = divergences.Divergence("go-py:*/c1", ("status.code: expected OK, got INTERNAL",), "a documented reason",
                                   "known.yaml", False, requires=("got INTERNAL",))
    judged = [divergences.apply([entry], r, r.direction.replace("→", "-"), "unary") for r in rows]
    expected = {d: sorted({r.case for r in rows if r.direction == d}) for d in DIRS}
    run = {"versions": VERSIONS, "protos": {"label": "protos", "digest": "0123"}, "directions": DIRS, "shard": None,
           "complete": True, "interrupted": None,
           "catalogue": {"digest": "d", "expected": expected,
                         "modes": {r.case: {"streaming": "unary", "ends_early": False} for r in rows}},
           "not_run": [], "divergences": [{**entry.to_json(), "matched": {}}]}
    path = tmp / "judged.json"
    results.write(path, judged, None, run)
    return path


def _rows() -> list[Result]:
    return [Result("a.Svc/M0/T/c0", "py→go", "pass"), Result("a.Svc/M0/T/c0", "go→py", "pass"),
            Result("a.Svc/M1/T/c1", "py→go", "pass"),
            Result("a.Svc/M1/T/c1", "go→py", "fail", [Diff(0, "status.code", "OK", 'INTERNAL "boom"')])]


def _forge(path: Path, direction: str, case: str, **changes) -> None:
    doc = json.loads(path.read_text())
    row = next(r for r in doc["results"] if r["direction"] == direction and r["case"] == case)
    row.update(changes)
    path.write_text(json.dumps(doc, ensure_ascii=False))


def test_honest_labels_merge_and_a_merged_file_merges_again(tmp_path: Path) -> None:
    path = _judged_shard(tmp_path, _rows())
    merged = results.merge([results.read(path)])
    assert [r.verdict for r in merged.results] == ["pass", "pass", "pass", "divergence"]
    assert cli.main(["report", "merge", str(path), "--json", str(tmp_path / "m.json")]) == 0
    assert len(results.merge([results.read(tmp_path / "m.json")]).results) == 4


def test_a_pass_carrying_a_status_diff_is_refused_naming_row_and_file(tmp_path: Path, capsys) -> None:
    path = _judged_shard(tmp_path, _rows())
    _forge(path, "py→go", "a.Svc/M0/T/c0", diffs=[{"call": 0, "path": "status.code", "expected": "OK", "got": "INTERNAL"}])
    with pytest.raises(results.MergeError, match=r"judged.json: py→go a.Svc/M0/T/c0: marked pass, but it carries 1 "
                                                 r"difference\(s\), first: status.code: expected OK, got INTERNAL"):
        results.merge([results.read(path)])
    assert cli.main(["report", "merge", str(path)]) != 0
    assert "py→go a.Svc/M0/T/c0: marked pass" in capsys.readouterr().err


def test_a_divergence_no_entry_explains_is_refused(tmp_path: Path) -> None:
    path = _judged_shard(tmp_path, _rows())
    marker = {"call": 0, "path": "divergence", "expected": "known", "got": "a documented reason (known.yaml)"}
    # the entry matches go-py:*/c1 only: the same label on py→go has no entry behind it
    _forge(path, "py→go", "a.Svc/M1/T/c1", verdict="divergence",
           diffs=[{"call": 0, "path": "status.code", "expected": "OK", "got": "INTERNAL"}, marker])
    with pytest.raises(results.MergeError, match=r"judged.json: py→go a.Svc/M1/T/c1: marked divergence, but no known "
                                                 r"divergence of its run explains its differences"):
        results.merge([results.read(path)])
    path = _judged_shard(tmp_path, _rows())  # a diff beside the excused one: the entry does not cover it
    _forge(path, "go→py", "a.Svc/M1/T/c1", diffs=[{"call": 0, "path": "status.code", "expected": "OK",
                                                   "got": 'INTERNAL "boom"'},
                                                  {"call": 0, "path": "responses.count", "expected": "1", "got": "0"},
                                                  marker])
    with pytest.raises(results.MergeError, match=r"go→py a.Svc/M1/T/c1: marked divergence, but no known divergence"):
        results.merge([results.read(path)])
    path = _judged_shard(tmp_path, _rows())  # a pass where the entry applies is a stale entry
    _forge(path, "go→py", "a.Svc/M1/T/c1", verdict="pass", diffs=[])
    with pytest.raises(results.MergeError, match=r"go→py a.Svc/M1/T/c1: marked pass, but the known divergence "
                                                 r"'go-py:\*/c1' \(known.yaml\) applies"):
        results.merge([results.read(path)])


def test_built_in_entries_that_matched_nothing_are_listed_as_not_exercised(tmp_path: Path, capsys) -> None:
    from harness.run import divergences

    path = _judged_shard(tmp_path, _rows())
    doc = json.loads(path.read_text())
    builtin = divergences.Divergence("*-pyaio:*/idle_pattern", ("x",), "r", "builtin.yaml", True)
    # applies to a row of the run (its matches are counted from the rows, whatever the file says)
    used = divergences.Divergence("go-py:*/M1/T/c1", ("x",), "r", "builtin.yaml", True)
    doc["run"]["divergences"] += [{**builtin.to_json(), "matched": {}},
                                  {**used.to_json(), "matched": {"divergence": 2}}]
    path.write_text(json.dumps(doc, ensure_ascii=False))
    out = {k: tmp_path / f"m.{k}" for k in ("markdown", "html")}
    assert cli.main(["report", "merge", str(path), *(a for k, p in out.items() for a in (f"--{k}", str(p)))]) == 0
    printed = capsys.readouterr().out
    assert "1 built-in known divergence(s) not exercised by this proto set" in printed
    assert "*-pyaio:*/idle_pattern" in printed and "go-py:*/M1/T/c1" not in printed
    for report in out.values():  # the user's own entry (known.yaml) matched nothing either: that is an error
        text = report.read_text()  # before a run (a dead pattern), never listed here
        assert "not exercised by this proto set" in text and "idle_pattern" in text
        idle_part = text.split("not exercised")[1]
        assert "go-py:*/M1/T/c1" not in idle_part and "go-py:*/c1" not in idle_part


@pytest.mark.parametrize("forged", [{"contains": [""]}, {"contains": ["x", ""]}, {"reason": " "},
                                    {"intermittent": True, "requires": []}, {"streaming": ["unary", "stream"]}])
def test_a_recorded_entry_a_divergence_file_could_not_hold_is_refused(tmp_path: Path, forged: dict) -> None:
    """The entries a merge judges rows by are read from the input, so they pass the checks a
    divergence file's entries pass: an empty `contains` text is in every diff, and excused any row."""
    path = _judged_shard(tmp_path, _rows())
    doc = json.loads(path.read_text())
    doc["run"]["divergences"][0].update(forged)
    path.write_text(json.dumps(doc, ensure_ascii=False))
    with pytest.raises(results.MergeError, match=r"judged.json: the known divergence 'go-py:\*/c1' its run recorded"):
        results.merge([results.read(path)])


def test_the_matches_of_each_entry_are_counted_from_the_rows_not_read(tmp_path: Path) -> None:
    """A recorded entry's `matched` counts were summed as written: an input whose entry excused a
    row but recorded no match left that entry out of the HTML table of the entries that excused rows
    (and its source with it). The merge counts them from the rows it judged."""
    path = _judged_shard(tmp_path, _rows())
    doc = json.loads(path.read_text())
    doc["run"]["divergences"][0]["matched"] = {}
    path.write_text(json.dumps(doc, ensure_ascii=False))
    merged = results.merge([results.read(path)])
    assert [e["matched"] for e in merged.run["divergences"]] == [{"divergence": 1}]
    out = tmp_path / "m.html"
    assert cli.main(["report", "merge", str(path), "--html", str(out)]) == 0
    table = out.read_text().split("Known divergences that matched")[1]
    assert "go-py:*/c1" in table and "a documented reason" in table and "known.yaml" in table


def test_a_row_whose_case_has_no_recorded_mode_is_refused(tmp_path: Path) -> None:
    """Entries limited to a streaming mode (or to calls that end early) apply to a row only through
    the mode its run recorded: with the case left out of `catalogue.modes`, no such entry applied,
    so a pass it makes stale, or a divergence, went unjudged by it."""
    path = _judged_shard(tmp_path, _rows())
    doc = json.loads(path.read_text())
    del doc["run"]["catalogue"]["modes"]["a.Svc/M0/T/c0"]
    path.write_text(json.dumps(doc, ensure_ascii=False))
    with pytest.raises(results.MergeError, match=r"judged.json: py→go a.Svc/M0/T/c0: marked pass, and the run record "
                                                 r"gives no streaming mode for its case"):
        results.merge([results.read(path)])
