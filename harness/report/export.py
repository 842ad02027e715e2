"""Reports made for CI, all from the same results: JUnit XML, a Markdown summary (for
GITHUB_STEP_SUMMARY) and a self-contained HTML page with every failure's diff and reproduce command."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from harness.report import coverage_view
from harness.run import versions
from harness.report.results import not_exercised
from harness.report.coverage import Coverage
from harness.report.verdicts import OK_VERDICTS, capability_library, case_runs, cells, counts, failed, method_of
from python_impl.contract import Result

# A failure's full explanation (diffs, logs, reproduce commands), by (direction, case).
Explanations = dict[tuple[str, str], str]


def junit(results: list[Result], explanations: Explanations, path: Path, run: dict | None = None) -> None:
    """One <testsuite> per direction, one <testcase> per case; known divergences are skipped. Each
    suite's <properties> carry the versions tested; an interrupted run's cases that did not run are
    skipped test cases ("did not run"), and the properties say complete=false."""
    run = run or {}
    root = ET.Element("testsuites", name="grpc-interop")
    by_direction: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_direction[r.direction].append(r)
    not_run: dict[str, list[str]] = defaultdict(list)
    for d, c in run.get("not_run") or []:
        not_run[d].append(c)
        by_direction.setdefault(d, [])
    for direction, rs in by_direction.items():
        ok, known, bad = counts(rs)
        missing = not_run.get(direction, [])
        suite = ET.SubElement(root, "testsuite", name=direction, tests=str(len(rs) + len(missing)),
                              failures=str(bad), skipped=str(known + len(missing)),
                              time=f"{sum(r.duration_ms for r in rs) / 1000:.3f}")
        props = ET.SubElement(suite, "properties")
        for key, value in _properties(run):
            ET.SubElement(props, "property", name=key, value=value)
        for case in missing:
            node = ET.SubElement(suite, "testcase", classname=f"{direction}.{method_of(case)}", name=case, time="0")
            ET.SubElement(node, "skipped", message=f"did not run: the run was interrupted ({run.get('interrupted')})")
        for r in rs:
            case = ET.SubElement(suite, "testcase", classname=f"{direction}.{method_of(r.case)}", name=r.case,
                                 time=f"{r.duration_ms / 1000:.3f}")
            if r.verdict == "divergence":
                ET.SubElement(case, "skipped", message=f"known divergence: {r.diffs[-1].got}")
            elif r.verdict == "capability":
                ET.SubElement(case, "skipped", message=f"capability one side lacks: {r.diffs[-1].got}")
            elif r.verdict != "pass":
                first = r.diffs[0] if r.diffs else None
                message = f"{r.verdict}: {first.path}: expected {first.expected}, got {first.got}" if first else r.verdict
                node = ET.SubElement(case, "failure", message=message[:500], type=r.verdict)
                node.text = explanations.get((r.direction, r.case), message)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")  # renamed into place: a CI step never reads half a file
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)


def _properties(run: dict) -> list[tuple[str, str]]:
    """What was tested, as JUnit properties: every version, the shard, and whether the run is complete."""
    props = [(f"version.{k}", str(v)) for k, v in (run.get("versions") or {}).items()]
    for label, vs in (run.get("variants") or {}).items():
        props += [(f"version[{label}].{k}", str(v)) for k, v in vs.items()]
    if run.get("versions") or run.get("variants"):
        props.append(("versions", " | ".join(_version_lines(run))))
    if run.get("profile"):
        props.append(("profile", str(run["profile"])))
    if run.get("shard"):
        props.append(("shard", str(run["shard"])))
    if run:
        props.append(("complete", "true" if run.get("complete", True) else "false"))
    if run.get("interrupted"):
        props.append(("interrupted", str(run["interrupted"])))
    props += [(f"not_tested.{i}", line) for i, line in enumerate(_not_tested(run))]
    return props


def _version_lines(run: dict) -> list[str]:
    """What was tested: the profile (issue 19 item 4), then the versions (of each variant)."""
    profile = [f"profile: {run['profile']}"] if run.get("profile") else []
    if run.get("variants"):
        return [*profile, *(f"{label}: {versions.line(v)}" for label, v in run["variants"].items())]
    return [*profile, versions.line(run.get("versions") or {})]


def _incomplete(run: dict) -> str:
    """One sentence for an incomplete result set, or ''."""
    if run.get("complete", True):
        return ""
    n = len(run.get("not_run") or [])
    why = f"interrupted ({run['interrupted']})" if run.get("interrupted") else "some inputs were incomplete"
    return f"INCOMPLETE: {why}; {n} case runs did not run."


def _not_tested(run: dict) -> list[str]:
    """The run record's lines on what of the set was not tested (record.not_tested)."""
    return list((run.get("protos") or {}).get("not_tested") or [])


def markdown(results: list[Result], directions: list[str], explanations: Explanations,
             coverage: Coverage | None = None, run: dict | None = None) -> str:
    """A summary for GITHUB_STEP_SUMMARY: the matrix, then each failure with its reproduce command."""
    run = run or {}
    lines = ["## gRPC interop: service/method × direction", ""]
    if run:
        lines += [f"`{line}`" + "  " for line in _version_lines(run)] + [""]
    if _incomplete(run):
        missing = run.get("not_run") or []
        lines += [f"**⚠️ {_incomplete(run)}**", "", f"<details><summary>{len(missing)} did not run</summary>", "",
                  *(f"- {d} `{c}`" for d, c in missing[:200]),
                  *([f"- … and {len(missing) - 200} more (the JSON's run.not_run)"] if len(missing) > 200 else []),
                  "", "</details>", ""]
    if _not_tested(run):
        lines += [f"**⚠️ Not tested ({len(_not_tested(run))}):**", "", *(f"- {line}" for line in _not_tested(run)), ""]
    lines += ["| service/method | " + " | ".join(directions) + " |", "|---|" + "---|" * len(directions)]
    for method, row in sorted(cells(results).items()):
        marks = []
        for d in directions:
            ok, known, bad = counts(row.get(d, []))
            total = ok + known + bad
            mark = "–" if not total else ("✅" if not bad else "❌")
            marks.append(f"{mark} {ok}/{total}" + (f" ≈{known}" if known else "") if total else mark)
        lines.append(f"| `{method}` | " + " | ".join(marks) + " |")
    ok, known, bad = counts(results)
    lines += ["", f"**{ok} pass, {known} known divergences, {bad} failing** of {len(case_runs(results))} case runs.",
              ""]
    if run.get("capabilities"):
        lines += ["### Capabilities one side's library lacks", "",
                  "One probe per direction, which must fail as documented; not case runs.", "",
                  "| direction | library | lacks | probe |", "|---|---|---|---|",
                  *(f"| {c['direction']} | {capability_library(c)} | {c['lacks']} | `{c['case']}` |"
                    for c in run["capabilities"]), ""]
    if coverage is not None:
        lines += [coverage_view.markdown(coverage), ""]
    idle = not_exercised((run or {}).get("divergences") or [])
    if idle:
        lines += [f"<details><summary>{len(idle)} built-in known divergence(s) not exercised by this proto set"
                  "</summary>", "", *(f"- `{e['match']}`" for e in idle), "", "</details>", ""]
    for r in results:
        if r.verdict in OK_VERDICTS:
            continue
        lines += [f"<details><summary>❌ {r.direction} <code>{html.escape(r.case)}</code></summary>", "",
                  "```", explanations.get((r.direction, r.case), ""), "```", "</details>", ""]
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1f24; }
h1 { font-size: 1.4rem; } table { border-collapse: collapse; margin-bottom: 1.5rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: center; font-size: .9rem;
         overflow-wrap: anywhere; }  /* a long case name or reason wraps: nothing runs off the page */
td.method, td.name { text-align: left; font-family: ui-monospace, monospace; }
.note { color: #555; font-size: 85%; white-space: pre-wrap; }
td.ok { background: #dafbe1; } td.bad { background: #ffebe9; font-weight: bold; } td.none { color: #8c959f; }
td a { color: inherit; }
table.divergences { width: 100%; table-layout: fixed; } td.reason { text-align: left; font-size: .85rem; }
section.cell h3 { overflow-wrap: anywhere; }
.failure { border: 1px solid #ff8182; border-radius: 6px; margin: 1rem 0; }
.failure h2 { font-size: 1rem; margin: 0; padding: .5rem .8rem; background: #ffebe9; }
.failure pre { margin: 0; padding: .8rem; overflow-x: auto; font-size: .8rem; white-space: pre-wrap; }
.summary { font-size: 1.05rem; margin-bottom: 1rem; }
.versions { font-family: ui-monospace, monospace; font-size: .85rem; color: #57606a; }
.incomplete { background: #fff1c2; border: 1px solid #d4a72c; padding: .5rem .8rem; border-radius: 6px; }
.filters fieldset { display: inline-block; border: 1px solid #d0d7de; border-radius: 6px; margin: 0 .5rem .5rem 0; }
.filters label { margin-right: .6rem; font-size: .85rem; white-space: nowrap; }
section.cell { margin: .6rem 0; padding: .2rem .6rem; border-left: 4px solid #d0d7de; }
section.cell h3 { font-size: .95rem; margin: .3rem 0; font-family: ui-monospace, monospace; }
section.cell:target { background: #fff8c5; border-left-color: #bf8700; }
tr.case td.v-pass { background: #c8f2cf; } tr.case td.v-divergence { background: #ddf4ff; }
tr.case td.v-bad { background: #ffd8d3; }
"""


def _slug_classes(values: list[str], prefix: str) -> dict[str, str]:
    """A CSS class per value (direction, service, verdict), by position: values may hold any character."""
    return {v: f"{prefix}{i}" for i, v in enumerate(values)}


def _filters(dirs: dict[str, str], services: dict[str, str], verdicts: dict[str, str],
             preset: dict[str, str]) -> tuple[str, str]:
    """Radio groups and the CSS that applies them (no script: the page stays inert). Each checked
    radio hides what lacks its class; the groups combine."""
    e = html.escape
    groups, css = [], []
    for title, key, classes, scope in (("direction", "fd", dirs, "section.cell"),
                                       ("service", "fs", services, "section.cell, tr.mrow"),
                                       ("verdict", "fv", verdicts, "tr.case")):
        chosen = preset.get(title)
        opts = [f'<label><input type="radio" name="{key}" id="{key}-all"{"" if chosen else " checked"}> all</label>']
        for value, cls in classes.items():
            checked = " checked" if chosen == value else ""
            opts.append(f'<label><input type="radio" name="{key}" id="{key}-{cls}"{checked}> {e(value)}</label>')
            targets = ", ".join(f"body:has(#{key}-{cls}:checked) {t.strip()}:not(.{cls})" for t in scope.split(","))
            css.append(f"{targets} {{ display: none; }}")
        groups.append(f'<fieldset><legend>{title}</legend>{"".join(opts)}</fieldset>')
    # sections left empty by the verdict filter still show their heading: harmless, and says "none here"
    return f'<form class="filters">{"".join(groups)}</form>', "\n".join(css)


def html_page(results: list[Result], directions: list[str], explanations: Explanations, title: str,
              coverage: Coverage | None = None, run: dict | None = None,
              preset: dict[str, str] | None = None) -> str:
    """One self-contained HTML file (inline CSS, no scripts, no external resources): the versions, the
    matrix (each cell links to its cases), filters by direction, service and verdict, every case with
    its duration, the slowest cases, the known divergences that matched, every failure, coverage.
    preset: filters checked when the page opens ({"verdict": "fail"}), as a reader's click would."""
    e = html.escape
    run = run or {}
    by_cell = cells(results)
    methods = sorted(by_cell)
    services = sorted({m.split("/")[0] if not m.startswith("finding/") else "finding" for m in methods})
    dcls = _slug_classes(directions, "d")
    scls = _slug_classes(services, "s")
    vcls = _slug_classes(sorted({r.verdict for r in results}), "v")
    mrow = {m: f"m{i}" for i, m in enumerate(methods)}
    fail_id = {(r.direction, r.case): f"f{i}" for i, r in enumerate(failed(results))}

    def service_of(m: str) -> str:
        return "finding" if m.startswith("finding/") else m.split("/")[0]

    head = "".join(f"<th>{e(d)}</th>" for d in directions)
    rows = []
    for method in methods:
        row = by_cell[method]
        tds = [f'<td class="method">{e(method)}</td>']
        for d in directions:
            ok, known, bad = counts(row.get(d, []))
            total = ok + known + bad
            if not total:
                tds.append('<td class="none">–</td>')
            else:
                note = f" ≈{known}" if known else ""
                tds.append(f'<td class="{"bad" if bad else "ok"}"><a href="#c-{mrow[method]}-{dcls[d]}">'
                           f'{"✗" if bad else "✓"} {ok}/{total}{note}</a></td>')
        rows.append(f'<tr class="mrow {scls[service_of(method)]}">' + "".join(tds) + "</tr>")
    ok, known, bad = counts(results)
    sections = []
    for method in methods:
        for d in directions:
            rs = by_cell[method].get(d, [])
            if not rs:
                continue
            trs = []
            for r in rs:
                css = "v-pass" if r.verdict == "pass" else ("v-divergence" if r.verdict == "divergence" else "v-bad")
                verdict = e(r.verdict)
                if (r.direction, r.case) in fail_id:
                    verdict = f'<a href="#{fail_id[(r.direction, r.case)]}">{verdict}</a>'
                # what the client reported on a channel case (a refused connection's message): recorded, not compared
                notes = "".join(f'<div class="note">{e(k)}: {e(v)}</div>' for k, v in sorted(r.notes.items()))
                trs.append(f'<tr class="case {vcls[r.verdict]}"><td class="name">{e(r.case)}{notes}</td>'
                           f'<td class="{css}">{verdict}</td><td>{r.duration_ms:.1f} ms</td></tr>')
            sections.append(f'<section class="cell {dcls[d]} {scls[service_of(method)]}" id="c-{mrow[method]}-{dcls[d]}">'
                            f"<h3>{e(method)} · {e(d)}</h3><table><tbody>{''.join(trs)}</tbody></table></section>")
    form, filter_css = _filters(dcls, scls, vcls, preset or {})
    slowest = sorted(results, key=lambda r: -r.duration_ms)[:15]
    slow_rows = "".join(f'<tr><td class="name">{e(r.case)}</td><td>{e(r.direction)}</td><td>{r.duration_ms:.1f} ms</td></tr>'
                        for r in slowest)
    failures = [f'<div class="failure {dcls.get(r.direction, "")}" id="{fail_id[(r.direction, r.case)]}">'
                f"<h2>{e(r.verdict.upper())}: {e(r.direction)} {e(r.case)}</h2>"
                f'<pre>{e(explanations.get((r.direction, r.case), ""))}</pre></div>'
                for r in failed(results)]
    incomplete = ""
    if _incomplete(run):
        missing = run.get("not_run") or []
        items = "".join(f"<li>{e(d)} <code>{e(c)}</code></li>" for d, c in missing[:500])
        incomplete = (f'<p class="incomplete"><strong>{e(_incomplete(run))}</strong></p>'
                      f"<details><summary>{len(missing)} did not run</summary><ul>{items}</ul></details>")
    if _not_tested(run):
        incomplete += (f'<div class="incomplete"><strong>Not tested ({len(_not_tested(run))}):</strong><ul>'
                       + "".join(f"<li>{e(line)}</li>" for line in _not_tested(run)) + "</ul></div>")
    versions_html = "".join(f'<p class="versions">{e(line)}</p>' for line in _version_lines(run)) if run else ""
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
            f"<style>{_CSS}\n{filter_css}</style></head><body><h1>{e(title)}</h1>{versions_html}{incomplete}"
            f'<p class="summary">{ok} pass, {known} known divergences, <strong>{bad} failing</strong> '
            f"of {len(case_runs(results))} case runs.</p>{form}"
            f"<table><thead><tr><th>service/method</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<h1>Failures</h1>{''.join(failures) or '<p>None.</p>'}"
            f"{_capabilities_html(run)}{_divergences_html(run)}"
            f"<h1>Slowest cases</h1><table><thead><tr><th>case</th><th>direction</th><th>duration</th></tr></thead>"
            f"<tbody>{slow_rows}</tbody></table>"
            f"<h1>Cases</h1>{''.join(sections)}"
            f"{coverage_view.html_section(coverage) if coverage is not None else ''}</body></html>")


def _divergences_html(run: dict) -> str:
    """The known divergences that matched a result, with their reasons (and stale ones)."""
    e = html.escape
    rows = []
    for entry in run.get("divergences") or []:
        matched = entry.get("matched") or {}
        if not matched.get("divergence") and not matched.get("unexpected_pass"):
            continue
        stale = f' <strong>stale: passed {matched["unexpected_pass"]}×</strong>' if matched.get("unexpected_pass") else ""
        rows.append(f'<tr><td class="name">{e(entry["match"])}</td><td>{matched.get("divergence", 0)}{stale}</td>'
                    f'<td class="reason">{e(entry["reason"])} ({e(str(entry.get("source", "")))})</td></tr>')
    idle = not_exercised(run.get("divergences") or [])
    # fixed columns: the reasons are paragraphs, and an automatic layout gave the patterns the width
    out = ('<h1>Known divergences that matched</h1><table class="divergences"><colgroup><col style="width: 36%">'
           '<col style="width: 7rem"><col></colgroup><thead><tr><th>match</th><th>results</th><th>reason</th>'
           f"</tr></thead><tbody>{''.join(rows)}</tbody></table>") if rows else ""
    if idle:
        out += ("<h1>Built-in known divergences not exercised by this proto set</h1><ul>"
                + "".join(f'<li class="name">{e(x["match"])}</li>' for x in idle) + "</ul>")
    return out


def _capabilities_html(run: dict) -> str:
    """The capability rows (harness/run/capabilities.py), apart from the matrix and the case runs."""
    e = html.escape
    rows = "".join(f'<tr><td>{e(c["direction"])}</td><td>{e(capability_library(c))}</td>'
                   f'<td class="name">{e(c["lacks"])}</td><td class="name">{e(c["case"])}</td>'
                   f'<td class="name">{e(c["reason"])}</td></tr>' for c in run.get("capabilities") or [])
    if not rows:
        return ""
    return ("<h1>Capabilities one side's library lacks</h1><p>One probe per direction, which must fail as "
            "documented; not case runs.</p><table><thead><tr><th>direction</th><th>library</th><th>lacks</th>"
            f"<th>probe</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>")
