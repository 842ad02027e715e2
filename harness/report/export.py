"""Reports made for CI, all from the same results: JUnit XML, a Markdown summary (for
GITHUB_STEP_SUMMARY) and a self-contained HTML page with every failure's diff and reproduce command."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from harness.report import coverage_view
from harness.report.coverage import Coverage
from harness.report.verdicts import OK_VERDICTS, cells, counts, failed, method_of
from python_impl.contract import Result

# A failure's full explanation (diffs, logs, reproduce commands), by (direction, case).
Explanations = dict[tuple[str, str], str]


def junit(results: list[Result], explanations: Explanations, path: Path) -> None:
    """One <testsuite> per direction, one <testcase> per case; known divergences are skipped."""
    root = ET.Element("testsuites", name="grpc-interop")
    by_direction: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_direction[r.direction].append(r)
    for direction, rs in by_direction.items():
        ok, known, bad = counts(rs)
        suite = ET.SubElement(root, "testsuite", name=direction, tests=str(len(rs)), failures=str(bad),
                              skipped=str(known), time=f"{sum(r.duration_ms for r in rs) / 1000:.3f}")
        for r in rs:
            case = ET.SubElement(suite, "testcase", classname=f"{direction}.{method_of(r.case)}", name=r.case,
                                 time=f"{r.duration_ms / 1000:.3f}")
            if r.verdict == "divergence":
                ET.SubElement(case, "skipped", message=f"known divergence: {r.diffs[-1].got}")
            elif r.verdict != "pass":
                first = r.diffs[0] if r.diffs else None
                message = f"{r.verdict}: {first.path}: expected {first.expected}, got {first.got}" if first else r.verdict
                node = ET.SubElement(case, "failure", message=message[:500], type=r.verdict)
                node.text = explanations.get((r.direction, r.case), message)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def markdown(results: list[Result], directions: list[str], explanations: Explanations,
             coverage: Coverage | None = None) -> str:
    """A summary for GITHUB_STEP_SUMMARY: the matrix, then each failure with its reproduce command."""
    lines = ["## gRPC interop: service/method × direction", "",
             "| service/method | " + " | ".join(directions) + " |", "|---|" + "---|" * len(directions)]
    for method, row in sorted(cells(results).items()):
        marks = []
        for d in directions:
            ok, known, bad = counts(row.get(d, []))
            total = ok + known + bad
            mark = "–" if not total else ("✅" if not bad else "❌")
            marks.append(f"{mark} {ok}/{total}" + (f" ≈{known}" if known else "") if total else mark)
        lines.append(f"| `{method}` | " + " | ".join(marks) + " |")
    ok, known, bad = counts(results)
    lines += ["", f"**{ok} pass, {known} known divergences, {bad} failing** of {len(results)} case runs.", ""]
    if coverage is not None:
        lines += [coverage_view.markdown(coverage), ""]
    for r in results:
        if r.verdict in OK_VERDICTS:
            continue
        lines += [f"<details><summary>❌ {r.direction} <code>{html.escape(r.case)}</code></summary>", "",
                  "```", explanations.get((r.direction, r.case), ""), "```", "</details>", ""]
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1f24; }
h1 { font-size: 1.4rem; } table { border-collapse: collapse; margin-bottom: 1.5rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: center; font-size: .9rem; }
td.method { text-align: left; font-family: ui-monospace, monospace; }
td.ok { background: #dafbe1; } td.bad { background: #ffebe9; font-weight: bold; } td.none { color: #8c959f; }
.failure { border: 1px solid #ff8182; border-radius: 6px; margin: 1rem 0; }
.failure h2 { font-size: 1rem; margin: 0; padding: .5rem .8rem; background: #ffebe9; }
.failure pre { margin: 0; padding: .8rem; overflow-x: auto; font-size: .8rem; white-space: pre-wrap; }
.summary { font-size: 1.05rem; margin-bottom: 1rem; }
"""


def html_page(results: list[Result], directions: list[str], explanations: Explanations, title: str,
              coverage: Coverage | None = None) -> str:
    """One self-contained HTML file (inline CSS, no scripts, no external resources)."""
    e = html.escape
    head = "".join(f"<th>{e(d)}</th>" for d in directions)
    rows = []
    for method, row in sorted(cells(results).items()):
        tds = [f'<td class="method">{e(method)}</td>']
        for d in directions:
            ok, known, bad = counts(row.get(d, []))
            total = ok + known + bad
            if not total:
                tds.append('<td class="none">–</td>')
            else:
                note = f" ≈{known}" if known else ""
                tds.append(f'<td class="{"bad" if bad else "ok"}">{"✗" if bad else "✓"} {ok}/{total}{note}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    ok, known, bad = counts(results)
    failures = [f'<div class="failure" id="f{i}"><h2>{e(r.verdict.upper())}: {e(r.direction)} {e(r.case)}</h2>'
                f'<pre>{e(explanations.get((r.direction, r.case), ""))}</pre></div>'
                for i, r in enumerate(failed(results))]
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>"
            f'<p class="summary">{ok} pass, {known} known divergences, <strong>{bad} failing</strong> '
            f"of {len(results)} case runs.</p>"
            f"<table><thead><tr><th>service/method</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<h1>Failures</h1>{''.join(failures) or '<p>None.</p>'}"
            f"{coverage_view.html_section(coverage) if coverage is not None else ''}</body></html>")
