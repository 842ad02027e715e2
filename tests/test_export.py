"""CI reports from the same results: JUnit XML, Markdown, and an HTML page checked in headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from harness.report import export
from harness.report import results as results_doc
from python_impl.contract import Diff, Result

REPO = Path(__file__).resolve().parent.parent
RESULTS = [
    Result("a.Svc/M/T/ok", "py→go", "pass", [], 1.0),
    Result("a.Svc/M/T/bad", "py→go", "fail", [Diff(0, "responses[0].x", "1", "2")], 2.0),
    Result("a.Svc/M/T/known", "go→py", "divergence", [Diff(0, "divergence", "known", "limits differ")], 3.0),
    Result("a.Svc/N/stream/zero", "go→py", "error", [Diff(0, "error", "", "boom <&>")], 4.0),
]
EXPLAIN = {("py→go", "a.Svc/M/T/bad"): "FAIL: py→go a.Svc/M/T/bad\n  call 0: responses[0].x: expected 1, got 2\n"
                                        "reproduce this case alone:\n  grpc-interop run --protos p -k a.Svc/M/T/bad",
           ("go→py", "a.Svc/N/stream/zero"): "ERROR: go→py a.Svc/N/stream/zero <&>"}
DIRECTIONS = ["py→go", "go→py"]


def test_junit_counts_failures_and_skips_known_divergences(tmp_path: Path) -> None:
    export.junit(RESULTS, EXPLAIN, tmp_path / "j.xml")
    suites = {s.get("name"): s for s in ET.parse(tmp_path / "j.xml").getroot()}
    assert (suites["py→go"].get("tests"), suites["py→go"].get("failures")) == ("2", "1")
    assert (suites["go→py"].get("failures"), suites["go→py"].get("skipped")) == ("1", "1")
    bad = suites["py→go"].find("testcase[@name='a.Svc/M/T/bad']/failure")
    assert "responses[0].x: expected 1, got 2" in bad.get("message") and "grpc-interop run" in bad.text


def test_markdown_summary_names_failures_with_reproduce_command() -> None:
    md = export.markdown(RESULTS, DIRECTIONS, EXPLAIN)
    assert "| `a.Svc/M` | ❌ 1/2 | ✅ 0/1 ≈1 |" in md
    assert "**1 pass, 1 known divergences, 2 failing** of 4 case runs." in md
    assert "grpc-interop run --protos p -k a.Svc/M/T/bad" in md


def test_html_is_self_contained_and_escaped() -> None:
    page = export.html_page(RESULTS, DIRECTIONS, EXPLAIN, "t")
    assert "<script" not in page and "http" not in page
    assert "boom" not in page.split("Failures")[0]
    assert "ERROR: go→py a.Svc/N/stream/zero &lt;&amp;&gt;" in page


def _png_colours(png: bytes) -> int:
    """The number of distinct colours of a screenshot."""
    return len(_png_colour_set(png))


def _png_colour_set(png: bytes) -> set[bytes]:
    """Distinct colours of an 8-bit RGB/RGBA non-interlaced PNG (as Chromium writes screenshots). Each
    filter type has its own loop: computing every predictor for every byte made a 1200 × 2400
    screenshot take 30 s at load 12."""
    pos, idat = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", data[:10])
            assert depth == 8 and colour in (2, 6), "unexpected PNG format"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    prev, seen = bytearray(stride), set()
    for y in range(height):
        row = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, cur = row[0], bytearray(row[1:])
        if kind == 1:  # Sub
            for i in range(channels, stride):
                cur[i] = (cur[i] + cur[i - channels]) & 255
        elif kind == 2:  # Up
            cur = bytearray((a + b) & 255 for a, b in zip(cur, prev))
        elif kind == 3:  # Average
            for i in range(stride):
                cur[i] = (cur[i] + ((cur[i - channels] if i >= channels else 0) + prev[i]) // 2) & 255
        elif kind == 4:  # Paeth
            for i in range(stride):
                left, up_left = (cur[i - channels], prev[i - channels]) if i >= channels else (0, 0)
                cur[i] = (cur[i] + _paeth(left, prev[i], up_left)) & 255
        seen.update(zip(cur[0::channels], cur[1::channels], cur[2::channels]))
        prev = cur
    return {bytes(c) for c in seen}


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _chromium(what: str) -> str:
    """The chromium command, or a loud skip (a failure where CI requires it)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("INTEROP_REQUIRE_CHROMIUM"):
            pytest.fail("INTEROP_REQUIRE_CHROMIUM is set but chromium is not installed (run ci/chromium.sh)")
        pytest.skip(f"NO CHROMIUM on this machine: {what} NOT render-tested (run ci/chromium.sh)")
    return chromium


def _flags(tmp_path: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--force-color-profile=srgb"]


def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = _chromium("the HTML report is")
    page = tmp_path / "report.html"
    page.write_text(export.html_page(RESULTS, DIRECTIONS, EXPLAIN, "interop report", _coverage()), encoding="utf-8")
    flags = _flags(tmp_path)
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "FAIL: py→go a.Svc/M/T/bad" in dom.stdout and "1 pass, 1 known divergences" in dom.stdout, dom.stderr[-2000:]
    assert "<h1>Coverage</h1>" in dom.stdout and "fields: 50.0%" in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # white page, black text, the green and red matrix cells, anti-aliasing: a blank page has one or two
    assert _png_colours(png) >= 20, "the screenshot is (almost) blank: the page did not render"


TARGET = bytes((0xff, 0xf8, 0xc5))     # section.cell:target: the cell a matrix link opened
PASS_ROW = bytes((0xc8, 0xf2, 0xcf))   # a passing case's verdict in the case lists


def test_html_filter_and_linked_cell_render_in_headless_chromium(tmp_path: Path) -> None:
    """The page has no script: a matrix cell is a link to its cases (highlighted as :target) and the
    filters are radio buttons whose CSS hides what does not match. Seen in screenshots."""
    chromium = _chromium("the HTML filters are")
    run = {"versions": {"grpcio": "1.85.1", "protobuf": "7.36.2", "protobuf_backend": "upb"}, "complete": True}
    flags = [*_flags(tmp_path), "--window-size=1200,2400"]

    def shot(name: str, preset: dict | None, fragment: str = "") -> set[bytes]:
        page = tmp_path / f"{name}.html"
        page.write_text(export.html_page(RESULTS, DIRECTIONS, EXPLAIN, "t", _coverage(), run, preset=preset))
        png = tmp_path / f"{name}.png"
        subprocess.run([chromium, *flags, f"--screenshot={png}", page.as_uri() + fragment],
                       capture_output=True, timeout=120, check=True)
        return _png_colour_set(png.read_bytes())

    page = export.html_page(RESULTS, DIRECTIONS, EXPLAIN, "t", None, run)
    cell = '<td class="bad"><a href="#c-m0-d0">✗ 1/2</a></td>'   # a.Svc/M in py→go links to its cases
    assert cell in page and '<section class="cell d0 s0" id="c-m0-d0">' in page
    plain = shot("plain", None)
    assert PASS_ROW in plain and TARGET not in plain
    assert TARGET in shot("linked", None, "#c-m0-d0"), "the linked cell's cases are not highlighted"
    failing = shot("failing", {"verdict": "fail"})
    assert PASS_ROW not in failing, "the verdict filter still shows passing cases"
    assert PASS_ROW in shot("passing", {"verdict": "pass"})


# A real report: `grpc-interop run --protos protos --files hello.proto --json` (all seven directions,
# Go peer in containers), joined with one py→go run of a case file whose expectation is wrong
# (`tutorial.HelloService/SayHello/wrong_expectation`), so that one cell is red and one failure shows.
# Trimmed to what the page shows: absolute paths made relative, diff values over 160 characters cut,
# the divergences' diffs and the failure's peer log tail dropped, only the known divergences that matched.
REPORT_RUN = REPO / "tests" / "data" / "report" / "run.json"
SCREENSHOT = REPO / "docs" / "img" / "report.png"  # the README shows it: this test keeps it current
WIDTH = 1400
# Added to the test's copy of the page only (the report itself has no script): every table cell whose
# right edge lies past the viewport, and how wide the document scrolls.
FIT_PROBE = """<script>
const limit = document.documentElement.clientWidth;
const over = [...document.querySelectorAll("td, th")].filter(c => c.getBoundingClientRect().right > limit + 0.5);
document.body.dataset.fit = JSON.stringify({limit, scroll: document.documentElement.scrollWidth, cells: over.length,
                                            first: over.slice(0, 3).map(c => c.textContent.slice(0, 80))});
</script>"""


def _report_page() -> str:
    loaded = results_doc.read(REPORT_RUN)
    explanations = {(x["direction"], x["case"]): x["text"] for x in loaded.run["explanations"]}
    return export.html_page(loaded.results, loaded.run["directions"], explanations, "grpc-interop: protos", None,
                            loaded.run)


def test_report_fits_1400_px_and_is_the_readmes_screenshot(tmp_path: Path) -> None:
    """At 1 400 px no table cell runs off the page and nothing scrolls sideways: the known divergences'
    reasons (paragraphs) and long patterns wrap. Measured in Chromium's layout by a probe script,
    then the page is photographed into docs/img/report.png, the README's picture of the report."""
    chromium = _chromium("the HTML report's width is")
    page = _report_page()
    assert "Known divergences that matched" in page and "wrong_expectation" in page  # the table and the failure
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", FIT_PROBE + "</body>"), encoding="utf-8")
    dom = subprocess.run([chromium, *_flags(tmp_path), f"--window-size={WIDTH},1000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)
    found = re.search(r'data-fit="([^"]*)"', dom.stdout)
    assert found, dom.stdout[-2000:] + dom.stderr[-2000:]
    fit = json.loads(html.unescape(found[1]))
    assert WIDTH - 30 <= fit["limit"] <= WIDTH, fit  # the viewport (less a scrollbar) is the width asked for
    assert fit["cells"] == 0 and fit["scroll"] <= fit["limit"], f"cells run past {WIDTH} px: {fit}"
    shown = tmp_path / "report.html"
    shown.write_text(page, encoding="utf-8")
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *_flags(tmp_path), f"--window-size={WIDTH},1250", f"--screenshot={shot}",
                    shown.as_uri()], capture_output=True, timeout=120, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and _png_colours(png) >= 20, "the screenshot is (almost) blank"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    if not SCREENSHOT.exists() or SCREENSHOT.read_bytes() != png:
        SCREENSHOT.write_bytes(png)


def _coverage():
    from harness.report.coverage import KINDS, Coverage, Item

    items = {k: [] for k in KINDS}
    items["fields"] = [Item("fields", "a.T", "x (1)"), Item("fields", "google.protobuf.Timestamp", "seconds (1)")]
    return Coverage(items, {"py→go": {items["fields"][0]}, "go→py": set(items["fields"])}, DIRECTIONS)


def test_reports_carry_the_coverage_and_its_gaps(tmp_path: Path) -> None:
    import json

    from harness.report.verdicts import write_json

    cov = _coverage()
    md = export.markdown(RESULTS, DIRECTIONS, EXPLAIN, cov)
    assert "## Interop coverage" in md and "| fields | 50.0% (1/2) | 100.0% (2/2) |" in md
    assert "- fields: 50.0%" in md and "- fields: `google.protobuf.Timestamp`: seconds (1) [py→go]" in md
    page = export.html_page(RESULTS, DIRECTIONS, EXPLAIN, "t", cov)
    assert "<h1>Coverage</h1>" in page and "fields: 50.0%" in page and "seconds (1) [py→go]" in page
    write_json(RESULTS, tmp_path / "r.json", cov.to_json())
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["results"]) == 4
    assert data["coverage"]["directions"]["py→go"]["fields"] == {"covered": 1, "total": 2, "percent": 50.0}
    assert data["coverage"]["uncovered"]["fields"] == [
        {"owner": "google.protobuf.Timestamp", "item": "seconds (1)", "directions": ["py→go"]}]


def test_html_shows_a_channel_case_notes_escaped() -> None:
    refused = Result("a.Svc/M/tls/wrong_ca", "py→go", "pass", [], 1.0, {"call 0": "UNAVAILABLE: handshake <failed>"})
    page = export.html_page([*RESULTS, refused], DIRECTIONS, EXPLAIN, "t")
    assert '<div class="note">call 0: UNAVAILABLE: handshake &lt;failed&gt;</div>' in page
    assert Result.from_json(refused.to_json()).notes == refused.notes
    assert "notes" not in RESULTS[0].to_json()  # absent when there is nothing to record


def test_reports_say_what_of_the_set_was_not_tested(tmp_path: Path) -> None:
    """A vendored copy that stands aside for the registered file, and a method no case can call, were
    said only on the console: a green report hid that the copy's own content never went on the wire."""
    from types import SimpleNamespace

    from harness.protoset.model import ProtoSet
    from harness.report import record
    from harness.run.runner import Plan

    ps = ProtoSet(roots=(Path("p"),), files=("app/a.proto",), stood_in=(
        "grpc/health/v1/health.proto: your copy p/grpc/health/v1/health.proto differs from grpc_health/v1/"
        "health.proto, which is served and tested in its place: field HealthCheckRequest.zone only in your copy",))
    gap = "real.Svc/Spin (real/shapes.proto): no case: its request type real.Loop cannot be built"
    prepared = SimpleNamespace(protoset=ps, gaps=[gap], cases=[], known=[])
    run = record.run_record(prepared, Plan([], {}, {}), DIRECTIONS, RESULTS, {}, {}, 1.0, None)
    assert run["protos"]["not_tested"] == [ps.stood_in[0], f"not generated: {gap}"]
    export.junit(RESULTS, EXPLAIN, tmp_path / "j.xml", run)
    for text in (export.markdown(RESULTS, DIRECTIONS, EXPLAIN, None, run),
                 export.html_page(RESULTS, DIRECTIONS, EXPLAIN, "t", None, run), (tmp_path / "j.xml").read_text()):
        assert "field HealthCheckRequest.zone only in your copy" in text and "real.Loop cannot be built" in text
