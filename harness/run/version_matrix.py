"""The grpcio × grpc-go version matrix: run one combination, and aggregate all of them.

One combination = one grpcio release (with grpcio-tools, grpcio-health-checking, grpcio-reflection,
grpcio-status of the same version and the protobuf runtime they accept) × one grpc-go release that
the Go peer is built against ($INTEROP_GRPC_GO, see harness/protoset/codegen.py). Locally every combination is
a nox session (noxfile.py); CI runs the same session per matrix job (ci/github/interop-matrix.yml).

    python -m harness.run.version_matrix run --grpcio 1.76.0 --grpc-go v1.80.0 [-- <grpc-interop run options>]
    python -m harness.run.version_matrix summary [--dir reports/matrix] [--markdown FILE]
    python -m harness.run.matrix_docs [--dir reports/matrix] [--out docs/matrix.md]
    python -m harness.run.version_matrix oldest     # the oldest combination's nox session (.ci/run)

`run` checks that the installed Python packages and the built Go peer really have the requested
versions, then runs `grpc-interop run --protos protos --json reports/matrix/<combo>.json` and writes
`<combo>.meta.json` beside it (versions, exit code, wall times, or the error that stopped it).
`summary` reads every `<combo>.json` (and its meta) and prints the matrix: rows grpcio, columns
grpc-go, cells pass/fail/divergence counts; it also writes the same as Markdown (and appends it to
$GITHUB_STEP_SUMMARY when that is set) and exits 1 when any combination failed. harness/run/matrix_docs.py writes
docs/matrix.md from the same files: that page is never edited by hand.

This module imports neither grpc nor protobuf at import time: noxfile.py reads the version lists.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import cache

REPO = Path(__file__).resolve().parents[2]

# grpcio release -> the protobuf runtime installed with it (the newest that its grpcio-tools accepts).
# Chosen spread out: current, about 1 year and about 2 years old (PyPI, cp311 wheels for all).
GRPCIO: dict[str, str] = {
    "1.85.1": "7.36.2",   # grpcio-tools requires protobuf>=7.35.1,<8  (repo's own pin)
    "1.76.0": "6.33.6",   # grpcio-tools requires protobuf>=6.31.1,<7  (Oct 2025)
    "1.72.2": "6.33.6",   # grpcio-tools requires protobuf>=6.30,<7; NOT 6.31.1: docs/matrix-notes.md (May 2025)
}
# grpc-go releases the Go peer is built against: latest, about 7 months and 1 year old.
GRPC_GO: list[str] = ["v1.85.0", "v1.80.0", "v1.77.0"]
# Axes beside the grpcio × grpc-go grid, each on the repository's own pins (the grid's first row and
# column), written into the combination's name after a "+":
# - the Python protobuf backend: upb is the default; "+python" runs with
#   PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python (recursion limits, UTF-8 checks and unknown fields
#   differ between the two);
# - protobuf-go independent of grpc-go: "+protobuf-go-<v>" builds the Go peer against that runtime
#   ($INTEROP_PROTOBUF_GO) with the grid's oldest grpc-go, which accepts an older protobuf-go than the
#   pin (grpc-go v1.85.0 needs protobuf-go v1.36.12, go.mod's own pin; v1.77.0 needs v1.36.10).
BACKENDS: list[str] = ["python"]
PROTOBUF_GO: list[str] = ["v1.36.10"]  # grpc-go v1.77.0's own minimum, two releases before the pin
AXIS = "+"
GRPC_PACKAGES = ("grpcio", "grpcio-tools", "grpcio-health-checking", "grpcio-reflection", "grpcio-status")
# relative to the working directory, like every report: the repository's root under `make matrix` and
# nox; never beside the installed package
REPORTS = Path("reports") / "matrix"
_COMBO = re.compile(r"^grpcio-(?P<grpcio>[^_]+)_grpc-go-(?P<grpcgo>[^_]+)$")


def combo_name(grpcio: str, grpcgo: str) -> str:
    """The report file stem of a combination: `grpcio-1.76.0_grpc-go-v1.80.0`."""
    return f"grpcio-{grpcio}_grpc-go-{grpcgo}"


def parse_combo(stem: str) -> tuple[str, str] | None:
    m = _COMBO.match(stem)
    return (m["grpcio"], m["grpcgo"]) if m else None


def python_requirements(grpcio: str) -> list[str]:
    """What a combination's venv needs besides the repo (installed --no-deps): the grpcio set and its
    protobuf, plus the repo's other dependencies (pyproject.toml pins grpcio==1.85.1 and protobuf>=6.31,
    so the repo itself cannot pull an older set)."""
    import tomllib

    grpcio = split_grpcio(grpcio)[0]  # the backend axis installs the same packages
    pyproject = REPO / "pyproject.toml"
    if not pyproject.exists():  # an installed wheel: the matrix is a tool of the repository
        raise SystemExit(f"the version matrix runs from a clone of grpc-interop-harness (make matrix); "
                         f"{pyproject} does not exist")
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    name = re.compile(r"^\s*([A-Za-z0-9_.-]+)")
    others = [d for d in deps if name.match(d)[1].lower() not in (*GRPC_PACKAGES, "protobuf")]
    return [*(f"{p}=={grpcio}" for p in GRPC_PACKAGES), f"protobuf=={GRPCIO[grpcio]}", *others]


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v.split("-")[0]))


# ---------------------------------------------------------------- run one combination

def run(grpcio: str, grpcgo: str, protos: str, out_dir: Path, extra: list[str]) -> int:
    combo = combo_name(grpcio, grpcgo)
    (grpcio, backend), (grpcgo, protobuf_go) = split_grpcio(grpcio), split_grpcgo(grpcgo)
    out_dir.mkdir(parents=True, exist_ok=True)
    report, meta_path = out_dir / f"{combo}.json", out_dir / f"{combo}.meta.json"
    report.unlink(missing_ok=True)  # a crash must not leave an older run's results behind
    meta: dict[str, Any] = {"grpcio": grpcio, "grpc_go": grpcgo, "exit_code": None, "error": None}

    def finish(code: int, error: str | None = None) -> int:
        meta.update(exit_code=code, error=error, finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    commit=_commit())
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        if error:
            print(f"matrix {combo}: error: {error}", file=sys.stderr)
        return code

    installed = {p: _installed(p) for p in (*GRPC_PACKAGES, "protobuf")}
    meta["python"] = installed
    wrong = {p: v for p, v in installed.items() if p in GRPC_PACKAGES and v != grpcio}
    if wrong:
        return finish(2, f"this environment has {wrong}, not grpcio {grpcio}; run it in its nox session")

    os.environ["INTEROP_GRPC_GO"] = grpcgo
    if backend:  # read by protobuf when it is first imported: the run is a subprocess, so it applies there
        os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = backend
        meta["protobuf_backend"] = backend
    if protobuf_go:
        os.environ["INTEROP_PROTOBUF_GO"] = protobuf_go
    # One build folder per grpcio version, so the combinations cannot see each other's generated code
    # (grpcio-tools' output refuses older runtimes). Since bab03d6 the Python output path is keyed by
    # the grpcio-tools/protobuf versions, so this is isolation only; the Go images are shared by digest.
    meta["cache_dir"] = str(cache.use(cache.root() / "matrix" / f"grpcio-{grpcio}"))

    t0 = time.monotonic()
    try:  # build (or reuse) the Go peer first, to check the grpc-go version it really links
        from harness.protoset.codegen import build_go, load

        binary = build_go(load(protos)).binary
        version = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=True).stdout
    except Exception as e:  # noqa: BLE001  CodegenError, ProtoSetError, a broken binary: all end the combination
        meta["build_s"] = round(time.monotonic() - t0, 1)
        return finish(2, f"building the Go peer against grpc-go {grpcgo} failed: {e}")
    meta["build_s"] = round(time.monotonic() - t0, 1)
    meta["go_peer"] = dict(line.split(" ", 1) for line in version.splitlines() if " " in line)
    if meta["go_peer"].get("grpc-go") != grpcgo:
        return finish(2, f"the Go peer links grpc-go {meta['go_peer'].get('grpc-go')}, not {grpcgo}")
    if protobuf_go and meta["go_peer"].get("protobuf-go") != protobuf_go:
        return finish(2, f"the Go peer links protobuf-go {meta['go_peer'].get('protobuf-go')}, not {protobuf_go}")

    cmd = [sys.executable, "-m", "harness.cli", "run", "--protos", protos, "--json", str(report), *extra]
    meta["command"] = ["grpc-interop", *cmd[3:]]
    print(f"matrix {combo}: grpcio {grpcio} (protobuf {installed['protobuf']}) × grpc-go {grpcgo}: "
          f"{' '.join(meta['command'])}", flush=True)
    t1 = time.monotonic()
    code = subprocess.run(cmd).returncode
    meta["run_s"] = round(time.monotonic() - t1, 1)
    if not report.exists():
        return finish(code or 2, f"grpc-interop run exited with {code} and wrote no results")
    tested = (json.loads(report.read_text()).get("run") or {}).get("versions") or {}
    meta["versions"] = tested
    if backend and tested.get("protobuf_backend") != backend:
        return finish(2, f"the run used the protobuf backend {tested.get('protobuf_backend')}, not {backend}")
    return finish(code)


def _commit() -> str | None:
    """The repository's commit (`-dirty` with local changes), so docs/matrix.md says what it measured."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=REPO,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------- aggregate

@dataclass
class Cell:
    grpcio: str
    grpcgo: str
    counts: dict[str, int] = field(default_factory=dict)   # verdict -> number of case runs
    failures: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None                               # no results: why

    @property
    def passed(self) -> int:
        return self.counts.get("pass", 0)

    @property
    def divergences(self) -> int:
        return self.counts.get("divergence", 0)

    @property
    def capabilities(self) -> int:
        """Capability rows (harness/run/capabilities.py): a library's lack proved once per direction."""
        return self.counts.get("capability", 0)

    @property
    def failed(self) -> int:
        """fail, error, unexpected_pass: everything that makes a run fail."""
        return sum(n for v, n in self.counts.items() if v not in ("pass", "divergence", "capability"))

    @property
    def ok(self) -> bool:
        return self.error is None and self.failed == 0 and self.meta.get("exit_code") in (None, 0)

    def text(self) -> str:
        if self.error:
            return f"error: {self.error}"
        parts = [f"{self.passed} pass", f"{self.failed} fail", f"{self.divergences} div"]
        return " / ".join(parts) + (f" (+{self.capabilities} capability rows)" if self.capabilities else "")


@dataclass
class Matrix:
    grpcio: list[str]
    grpcgo: list[str]
    cells: dict[tuple[str, str], Cell]

    @property
    def failing(self) -> list[Cell]:
        return [c for c in self.cells.values() if not c.ok]


def configured() -> list[tuple[str, str]]:
    """The combinations noxfile.py and the CI workflow run: GRPCIO × GRPC_GO, then the other axes."""
    return [(py, go) for py in GRPCIO for go in GRPC_GO] + extra_axes()


def oldest() -> tuple[str, str]:
    """The oldest supported combination: the oldest grpcio set × the oldest grpc-go (.ci/run runs it)."""
    return min(GRPCIO, key=_version_key), min(GRPC_GO, key=_version_key)


def session_name(grpcio: str, grpcgo: str) -> str:
    """The nox session of a combination (noxfile.py), as `nox -s` takes it."""
    return f"interop(grpcio='{grpcio}', grpcgo='{grpcgo}')"


def extra_axes() -> list[tuple[str, str]]:
    """One combination per Python protobuf backend and per protobuf-go version, on the repo's pins."""
    py, go, oldest = next(iter(GRPCIO)), GRPC_GO[0], GRPC_GO[-1]
    return ([(f"{py}{AXIS}{b}", go) for b in BACKENDS]
            + [(py, f"{oldest}{AXIS}protobuf-go-{v}") for v in PROTOBUF_GO])


def split_grpcio(value: str) -> tuple[str, str | None]:
    """`1.85.1+python` -> ("1.85.1", "python"): the grpcio set and the protobuf backend (None: upb)."""
    base, _, backend = value.partition(AXIS)
    return base, backend or None


def split_grpcgo(value: str) -> tuple[str, str | None]:
    """`v1.85.0+protobuf-go-v1.36.6` -> ("v1.85.0", "v1.36.6"): grpc-go and protobuf-go (None: go.mod's)."""
    base, _, extra = value.partition(AXIS)
    return base, extra.removeprefix("protobuf-go-") or None


def load(report_dir: Path, expected: list[tuple[str, str]] | None = None) -> Matrix:
    """Every `<combo>.json` (results) and `<combo>.meta.json` in a folder, as a matrix. Combinations
    in `expected` with no file at all (a session that died installing, say) become `no report` cells."""
    cells: dict[tuple[str, str], Cell] = {key: Cell(*key) for key in expected or []}
    for path in sorted(report_dir.glob("*.json")):
        is_meta = path.name.endswith(".meta.json")
        key = parse_combo(path.name.removesuffix(".meta.json") if is_meta else path.stem)
        if key is None:
            continue
        cell = cells.setdefault(key, Cell(*key))
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            cell.error = f"{path.name} unreadable: {e}"
            continue
        if is_meta:
            cell.meta = data
            continue
        for r in data["results"] if isinstance(data, dict) else data:  # `run --json` adds coverage beside them
            cell.counts[r["verdict"]] = cell.counts.get(r["verdict"], 0) + 1
            if r["verdict"] not in ("pass", "divergence", "capability"):
                cell.failures.append(r)
    for (grpcio, grpcgo), cell in cells.items():
        has_results = (report_dir / f"{combo_name(grpcio, grpcgo)}.json").exists()
        if cell.error is None and not has_results:
            cell.error = cell.meta.get("error") or ("no results" if cell.meta else "no report")
        elif cell.error is None and cell.meta.get("error"):
            cell.error = cell.meta["error"]
    grpcio = sorted({k[0] for k in cells}, key=_version_key, reverse=True)
    grpcgo = sorted({k[1] for k in cells}, key=_version_key, reverse=True)
    return Matrix(grpcio, grpcgo, cells)


def _wall(cell: Cell) -> str:
    m = cell.meta
    return f"{m['run_s']:.0f} s" if isinstance(m.get("run_s"), (int, float)) else ""


def _protobuf(m: Matrix, grpcio: str) -> str:
    """The protobuf runtime the grpcio row ran with (from the meta files), else the configured one."""
    found = (c.meta.get("python", {}).get("protobuf") for c in m.cells.values() if c.grpcio == grpcio)
    return next((v for v in found if v), None) or GRPCIO.get(split_grpcio(grpcio)[0], "?")


def rich_table(m: Matrix) -> Any:
    from rich.table import Table

    table = Table(title="grpcio × grpc-go: case runs pass / fail / known divergence (wall time of the run)")
    table.add_column("grpcio (protobuf)")
    for go in m.grpcgo:
        table.add_column(f"grpc-go {go}", justify="center")
    for py in m.grpcio:
        row = [f"{py} ({_protobuf(m, py)})"]
        for go in m.grpcgo:
            c = m.cells.get((py, go))
            if c is None:
                row.append("[dim]–[/dim]")
                continue
            style = "green" if c.ok else "bold red"
            mark = "✓" if c.ok else "✗"
            wall = f"\n[dim]{_wall(c)}[/dim]" if _wall(c) else ""
            row.append(f"[{style}]{mark} {c.text()}[/{style}]{wall}")
        table.add_row(*row)
    return table


def failure_groups(cell: Cell) -> list[tuple[str, list[str], list[str]]]:
    """A cell's failures grouped by what went wrong (verdict and first difference), the group with the
    most case runs first: (reason, directions, cases)."""
    groups: dict[str, tuple[list[str], list[str], list[int]]] = {}
    for r in cell.failures:
        first = (r.get("diffs") or [{}])[0]
        path, got = first.get("path") or "", str(first.get("got") or "").strip()
        got = got.splitlines()[0][:160] if got else ""
        if first.get("expected") not in (None, ""):
            reason = f"{r['verdict']}: {path}: expected {str(first['expected'])[:60]}, got {got}"
        else:
            reason = ": ".join(x for x in (r["verdict"], "" if path == r["verdict"] else path, got) if x)
        dirs, cases, n = groups.setdefault(reason, ([], [], [0]))
        n[0] += 1
        if r["direction"] not in dirs:
            dirs.append(r["direction"])
        if r["case"] not in cases:
            cases.append(r["case"])
    ordered = sorted(groups.items(), key=lambda kv: -kv[1][2][0])
    return [(reason, dirs, cases) for reason, (dirs, cases, _) in ordered]


def markdown(m: Matrix, max_groups: int = 8, max_cases: int = 3) -> str:
    lines = ["## grpcio × grpc-go interop matrix", "",
             "Cells: case runs that passed / failed / are known divergences (`harness/run/known_divergences.yaml`), and the "
             "capability rows apart (a library lacking a capability: `harness/run/capabilities.yaml`).", "",
             "| grpcio (protobuf) \\ grpc-go | " + " | ".join(m.grpcgo) + " |",
             "|---|" + "---|" * len(m.grpcgo)]
    for py in m.grpcio:
        row = []
        for go in m.grpcgo:
            c = m.cells.get((py, go))
            if c is None:
                row.append("–")
            else:
                wall = f" ({_wall(c)})" if _wall(c) else ""
                row.append(f"{'✅' if c.ok else '❌'} {_md(c.text())}{wall}")
        lines.append(f"| {py} ({_protobuf(m, py)}) | " + " | ".join(row) + " |")
    lines.append("")
    failing = m.failing
    if not m.cells:
        lines.append("**No reports found.**")
    elif not failing:
        lines.append(f"All {len(m.cells)} combinations pass.")
    else:
        lines.append(f"**Failing combinations ({len(failing)} of {len(m.cells)}):**")
        lines.append("")
        for c in sorted(failing, key=lambda c: (_version_key(c.grpcio), _version_key(c.grpcgo)), reverse=True):
            lines.append(f"- grpcio {c.grpcio} × grpc-go {c.grpcgo}: {_md(c.text())}"
                         + (f" (exit code {c.meta['exit_code']})" if c.meta.get("exit_code") else ""))
            groups = failure_groups(c)
            for reason, dirs, cases in groups[:max_groups]:
                more = f" and {len(cases) - max_cases} more" if len(cases) > max_cases else ""
                lines.append(f"  - `{_md(reason)}` in {', '.join(dirs)}: "
                             + ", ".join(f"`{x}`" for x in cases[:max_cases]) + more)
            if len(groups) > max_groups:
                lines.append(f"  - … and {len(groups) - max_groups} more kinds of failure (see the uploaded JSON)")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary(report_dir: Path, md_out: Path | None, found_only: bool = False) -> int:
    from rich.console import Console

    if not found_only and not any(report_dir.glob("*.json")):
        expected = None  # nothing ran at all: say so below instead of nine "no report" cells
    else:
        expected = None if found_only else configured()
    m = load(report_dir, expected)
    console = Console(highlight=False, width=None if Console().is_terminal else 160)
    if not m.cells:
        console.print(f"[red]no matrix reports in {report_dir}[/red] (run `make matrix` or a nox interop session)")
        return 1
    console.print(rich_table(m))
    for c in m.failing:
        console.print(f"[bold red]FAILING: grpcio {c.grpcio} × grpc-go {c.grpcgo}[/bold red]: {c.text()}",
                      markup=True, soft_wrap=True)
        for reason, dirs, cases in failure_groups(c)[:5]:
            console.print(f"    {reason}  [{', '.join(dirs)}; {len(cases)} case(s), e.g. {cases[0]}]",
                          markup=False, soft_wrap=True)
    text = markdown(m)
    md_out = md_out or report_dir / "summary.md"
    md_out.parent.mkdir(parents=True, exist_ok=True)
    md_out.write_text(text)
    console.print(f"markdown: {md_out}")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(text)
    return 1 if m.failing else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.run.version_matrix", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the suite for one combination (inside its nox session)")
    r.add_argument("--grpcio", required=True)
    r.add_argument("--grpc-go", dest="grpcgo", required=True)
    r.add_argument("--protos", default="protos")
    r.add_argument("--out", type=Path, default=REPORTS)
    r.add_argument("extra", nargs="*", help="after --: more `grpc-interop run` options (-k, --direction, …)")
    s = sub.add_parser("summary", help="aggregate reports/matrix/*.json into the version matrix")
    s.add_argument("--dir", type=Path, default=REPORTS)
    s.add_argument("--markdown", type=Path, help="where to write the Markdown (default: <dir>/summary.md)")
    s.add_argument("--found-only", action="store_true",
                   help="only the combinations that have files (default: also the configured ones that have none)")
    sub.add_parser("oldest", help="print the nox session of the oldest supported combination (make matrix-oldest)")
    args = ap.parse_args(argv)
    if args.cmd == "oldest":
        print(session_name(*oldest()))
        return 0
    if args.cmd == "run":
        return run(args.grpcio, args.grpcgo, args.protos, args.out, args.extra)
    return summary(args.dir, args.markdown, args.found_only)


if __name__ == "__main__":
    sys.exit(main())
