"""Capabilities one side's library lacks entirely: a fact about the library, stated once per direction.

A known divergence excuses one case's outcome; a missing capability would excuse every case that
needs it (every v1 reflection call to a grpcio server, on every file of the set), which tests nothing
and fills the report with "≈". So a capability entry (harness/run/capabilities.yaml) turns those
cases into ONE row per direction:

- the cases it `match`es do not run in those directions, except one, the `probe` (the first case of
  the catalogue matching `probe`, else `match`): the call must still fail as the entry documents;
- a probe that fails as documented becomes a `capability` row (listed apart from the matrix, with the
  library and its version); one that passes is an `unexpected_pass` (the library gained the
  capability: the entry must go) and one that fails otherwise stays a failure.

The signature is judged as a known divergence's (harness/run/divergences.py: requires, contains,
losses), with one or more `signatures` (a grpc.aio client may see a race's status instead).
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.run import divergences
from python_impl.contract import Diff, Result

KEYS = {"library", "version", "lacks", "match", "probe", "reason", "signatures"}
VERDICT = "capability"


class CapabilityError(Exception):
    """The capability file is malformed; the message names the entry."""


@dataclass(frozen=True)
class Capability:
    library: str       # the distribution or module that lacks it (grpcio-reflection)
    version: str       # the version it was measured with
    lacks: str         # what it lacks, in a few words
    match: tuple[str, ...]  # globs over "<direction slug>:<case name>": the cases that need it
    probe: str         # glob over case names: the case that proves it in each direction
    reason: str
    signatures: tuple[divergences.Divergence, ...]

    def covers(self, slug: str, case: str) -> bool:
        return any(fnmatch.fnmatchcase(f"{slug}:{case}", m) for m in self.match)

    def installed(self) -> str:
        """The library's version in this environment (the report names it beside the measured one)."""
        try:
            return importlib.metadata.version(self.library)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    def row(self) -> dict:
        """The capability as the run record carries it beside its probe's row, signatures included, so
        `report merge` can judge a `capability` row again without the file (label_problem)."""
        return {"library": self.library, "version": self.installed(), "measured": self.version,
                "lacks": self.lacks, "reason": self.reason, "match": list(self.match), "probe": self.probe,
                "signatures": [s.to_json() for s in self.signatures]}


def builtin_file() -> Path:
    return Path(str(importlib.resources.files("harness.run") / "capabilities.yaml"))


def load(path: Path | None = None) -> list[Capability]:
    path = path or builtin_file()
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    entries = doc.get("capabilities") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or set(doc) != {"capabilities"}:
        raise CapabilityError(f"{path}: a capability file is a mapping with one key, 'capabilities' (a list)")
    return [_entry(e, f"{path}: capabilities[{i}]", str(path)) for i, e in enumerate(entries)]


def _entry(e: object, where: str, source: str) -> Capability:
    if not isinstance(e, dict) or set(e) != KEYS:
        raise CapabilityError(f"{where} needs exactly the keys {sorted(KEYS)}")
    match = divergences.texts(e["match"])
    sigs = e["signatures"]
    if not match or not isinstance(sigs, list) or not sigs:
        raise CapabilityError(f"{where}: match is a glob or a list of globs; signatures a list")
    # each signature is a divergence entry of its own (its match narrows the directions, default: all)
    parsed = tuple(divergences.parse_entry({"match": "*", **s, "reason": str(e["reason"])} if isinstance(s, dict) else s,
                                      f"{where}.signatures[{j}]", source, True) for j, s in enumerate(sigs))
    if any(not s.requires for s in parsed):
        raise CapabilityError(f"{where}: every signature needs 'requires' (the text that proves the lack)")
    return Capability(str(e["library"]), str(e["version"]), str(e["lacks"]), tuple(match), str(e["probe"]),
                      str(e["reason"]), parsed)


def probes(caps: list[Capability], slug: str, names: list[str]) -> dict[str, Capability]:
    """case name -> the capability it proves in direction `slug`: for each capability that covers some
    of `names` (the whole catalogue, in order), its probe, else the first case it covers."""
    out: dict[str, Capability] = {}
    for cap in caps:
        covered = [n for n in names if cap.covers(slug, n)]
        if covered:
            out[next((n for n in covered if fnmatch.fnmatchcase(n, cap.probe)), covered[0])] = cap
    return out


def judge(cap: Capability, result: Result, slug: str, mode: str | None,
          versions: dict[str, str] | None = None) -> Result:
    """The probe's result as the capability row: `capability` when it fails as documented (a
    signature with `versions` only for a run with those library versions). An older library that
    lacks the method's very messages cannot make the call at all: its error is documented the same way."""
    lacks = f"{cap.library} {cap.installed()} has no {cap.lacks}"
    if result.verdict == "pass":
        result.verdict = "unexpected_pass"
        result.diffs = [Diff(0, "capability", f"to fail: {lacks} ({cap.reason})",
                             f"passed: the library has it now; remove its entry from {builtin_file().name}")]
        return result
    if result.verdict in ("fail", "error") and any(
            s.applies(slug, result.case, mode) and s.in_versions(versions) and divergences.covered(s, result)
            for s in cap.signatures):
        result.verdict = VERDICT
        result.diffs.append(Diff(0, "capability", "lacking", f"{lacks} (measured with {cap.version}): {cap.reason}"))
    return result


def label_problem(row: dict | None, result: Result, slug: str, mode: str | None,
                  expected: list[str]) -> str | None:
    """Why a row read back from a file (`report merge`) is not the capability row it says it is (None:
    it is): its run must record the capability for that direction and case, the capability must cover
    the case in that direction (its `match`) and the case must be the only one it covers that the run
    expected there (`expected`: the direction's names, catalogue.expected; only the probe runs), and
    one of the recorded signatures must explain every difference but the capability's own line."""
    if row is None:
        return "marked capability, but its run records no capability row for that direction and case"
    library, match = row.get("library"), row.get("match") or []
    if not any(fnmatch.fnmatchcase(f"{slug}:{result.case}", m) for m in match):
        return (f"marked capability, but the {library} capability does not cover {slug}:{result.case} "
                f"(its match: {match})")
    covered = [n for n in expected if any(fnmatch.fnmatchcase(f"{slug}:{n}", m) for m in match)]
    if covered != [result.case]:
        return (f"marked capability, but its run expected {len(covered)} cases the {library} capability covers "
                f"in {slug}; only its probe runs there")
    *rest, last = result.diffs or [Diff(0, "", "", "")]
    if (last.path, last.expected) != ("capability", "lacking"):
        return "marked capability, but it does not name the capability it proves"
    failed = Result(result.case, result.direction, "fail", rest)
    try:
        signatures = [divergences.Divergence.from_json(s, f"the {row.get('library')} capability's signature[{i}]")
                      for i, s in enumerate(row.get("signatures") or [])]
    except divergences.DivergenceError as e:
        return f"its run recorded a signature a capability file could not hold: {e}"
    if not any(s.applies(slug, result.case, mode) and divergences.covered(s, failed) for s in signatures):
        first = f", first: {rest[0].path}: expected {rest[0].expected}, got {rest[0].got}" if rest else " (it has none)"
        return f"marked capability, but no signature of the {library} capability explains its differences{first}"
    return None
