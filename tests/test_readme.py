"""The README is a quickstart for the first ten minutes, and the rest lives in docs/: the quickstart
stays short, its commands are real, its links and picture exist, and its test command is the one CI
runs. Pure file reading and argument parsing: no peer, no run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from harness import cli

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
QUICKSTART_LINES = 100  # issue 19: "a quickstart of at most 100 lines comes first"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _quickstart() -> list[str]:
    """The README up to its list of links to docs/ (other pages add their one-line links there)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    return lines[:lines.index("## More")] if "## More" in lines else lines


def _sh_lines(lines: list[str]) -> list[str]:
    """The commands of the ```sh blocks, comments removed."""
    out, inside = [], False
    for line in lines:
        if line.startswith("```"):
            inside = line == "```sh"
        elif inside and line.split("#")[0].strip():
            out.append(line.split("  #")[0].strip())
    return out


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_the_readme_opens_with_a_short_quickstart() -> None:
    quick = _quickstart()
    assert len(quick) <= QUICKSTART_LINES, f"the quickstart has {len(quick)} lines; move detail into docs/"
    headings = [line for line in quick if line.startswith("## ")]
    # install, run on your protos, read the matrix, a failing case and its reproduce command, CI
    for word in ("Install", "Run", "matrix", "failing", "CI"):
        assert any(word in h for h in headings), (word, headings)
    text = "\n".join(quick)
    assert "reproduce this case alone:" in text and "grpc-interop run" in text


def test_the_readme_test_command_is_what_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    ci_commands = [line.strip() for line in ci.splitlines() if line.strip().startswith("make ")]
    readme = _sh_lines(_quickstart())
    # setup, then the README's test command; what follows it (the oldest matrix cell) is CI's own extra
    assert ci_commands[:2] == ["make setup", "make test"], ci_commands
    assert all(c in readme for c in ci_commands[:2]), readme


def test_the_quickstarts_commands_parse() -> None:
    """Every `grpc-interop …` line of the quickstart's shell blocks, through the real CLI parser."""
    commands = [c for c in _sh_lines(_quickstart()) if c.startswith("grpc-interop ")]
    assert len(commands) >= 2
    for command in commands:
        cli.parser().parse_args(shlex.split(command)[1:])  # exits (SystemExit) on an unknown option


def test_links_and_the_picture_exist() -> None:
    """Relative links of the README and docs/*.md point at files that exist, and an #anchor at one of
    the target's headings; the README's picture is the PNG the render test writes (test_export.py)."""
    pages = [README, *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
            elif anchor and file.suffix == ".md":
                heads = [_anchor(h) for h in re.findall(r"^#+ (.*)$", file.read_text(encoding="utf-8"), re.M)]
                if anchor not in heads:
                    broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, broken
    picture = re.search(r"!\[[^\]]*\]\(([^)]+)\)", "\n".join(_quickstart()))
    assert picture and picture[1] == "docs/img/report.png"
    assert (REPO / picture[1]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
