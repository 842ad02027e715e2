"""Known divergences: where grpcio and grpc-go legitimately differ, the expected outcome per
direction and case, with the reason. Applied to results after a run:

- a matching result that fails as described becomes `divergence` (listed, not a failure);
- a matching result that passes becomes `unexpected_pass`: the entry is stale, the run fails,
  unless the entry is `intermittent` (a race inside a library: some runs pass, and that is no news);
- an entry of a user's file that matches no (direction, case) of the proto set is an error
  (a dead pattern). The built-in entries describe library behaviour and may not apply to every set;
- an entry with `versions` applies only to a run whose libraries have those versions (the run's
  `versions`, as its reports record them): outside them it is as if it were not there, inside them
  it must still diverge (stale otherwise). A version the run does not know (a side not used) never
  matches, so such an entry excuses nothing there.
"""

from __future__ import annotations

import fnmatch
import re
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from harness.cases.model import SAFE_LOADER

from python_impl.contract import Diff, Result

KEYS = {"match", "contains", "reason"}
OPTIONAL = {
    "streaming",     # only cases whose (first) call has one of these streaming modes
    "requires",      # texts that must each appear in some diff: the divergence's signature
    "intermittent",  # true: a race; a passing result is not stale
    "losses",        # true: also excuse what went missing (fewer responses, no headers/trailers/details)
    "early_end",     # true: only cases whose call may end before the client half-closes (Call.ends_early)
    "versions",      # {library: specifier}: only runs with those library versions (VERSIONED, BACKEND)
}
MODES = {"unary", "server_stream", "client_stream", "bidi"}
# The libraries an entry can be conditioned on: keys of a run's `versions` (harness/run/versions.py),
# each a PEP 440 specifier such as ">=1.72,<1.85" (Go's leading "v" is optional on both sides) ...
VERSIONED = {"grpcio", "protobuf", "grpc_go", "protobuf_go"}
# ... and the Python protobuf backend, a name or a list of names (upb, python, cpp)
BACKEND = "protobuf_backend"


class DivergenceError(Exception):
    """A divergence file is malformed or has a dead pattern; the message names file and entry."""


@dataclass(frozen=True)
class Divergence:
    match: str        # glob over "<direction slug>:<case name>", e.g. "go-py:*/deep_recursion"
    contains: tuple[str, ...]  # texts; the result's diffs must contain one (what the divergence looks like)
    reason: str
    source: str
    builtin: bool
    streaming: tuple[str, ...] = ()  # empty: any mode
    requires: tuple[str, ...] = ()
    intermittent: bool = False
    losses: bool = False
    early_end: bool = False
    versions: tuple[tuple[str, str], ...] = ()  # (library, specifier or backend names joined by ","), sorted

    def in_versions(self, tested: Mapping[str, str] | None) -> bool:
        """Whether a run with these library versions is one the entry is about (always, without
        `versions`). A library the run does not know, or did not use, matches no condition."""
        for key, want in self.versions:
            got = str((tested or {}).get(key) or "")
            if key == BACKEND:
                if got not in want.split(","):
                    return False
                continue
            try:
                if Version(got.removeprefix("v")) not in SpecifierSet(want, prereleases=True):
                    return False
            except InvalidVersion:  # "not used", "unknown": nothing to compare
                return False
        return True

    def to_json(self) -> dict:
        """The entry as a run record carries it, so `report merge` can judge rows again without the file."""
        return {"match": self.match, "contains": list(self.contains), "reason": self.reason, "source": self.source,
                "builtin": self.builtin, "streaming": list(self.streaming), "requires": list(self.requires),
                "intermittent": self.intermittent, "losses": self.losses, "early_end": self.early_end,
                **({"versions": {k: v.split(",") if k == BACKEND else v for k, v in self.versions}}
                   if self.versions else {})}

    @classmethod
    def from_json(cls, raw: dict, where: str) -> Divergence:
        """An entry a run record carries, held to the rules of a divergence file's entries (an empty
        `contains` text is in every diff: read back unchecked, it would excuse any row)."""
        if (not isinstance(raw, dict) or not isinstance(raw.get("source"), str)
                or not isinstance(raw.get("builtin"), bool)):
            raise DivergenceError(f"{where} needs the keys 'source' (a text) and 'builtin' (true or false)")
        # to_json writes every key; a divergence file leaves out the empty and false ones
        written = {k: v for k, v in raw.items() if k in KEYS or k in OPTIONAL and v not in ([], False)}
        return _entry(written, where, raw["source"], raw["builtin"])

    def applies(self, slug: str, case: str, mode: str | None = None, ends_early: bool = False) -> bool:
        if self.streaming and mode not in self.streaming:
            return False
        if self.early_end and not ends_early:
            return False
        return fnmatch.fnmatchcase(f"{slug}:{case}", self.match)


def load(paths: list[Path], builtin: bool) -> list[Divergence]:
    out = []
    for path in paths:
        doc = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
        entries = doc.get("divergences") if isinstance(doc, dict) else None
        if not isinstance(entries, list) or set(doc) != {"divergences"}:
            raise DivergenceError(f"{path}: a divergence file is a mapping with one key, 'divergences' (a list)")
        out += [_entry(e, f"{path}: divergences[{i}]", str(path), builtin) for i, e in enumerate(entries)]
    return out


def _texts(value: object) -> list[str] | None:
    """A text or a list of texts, as a list; None when it is anything else (or an empty text)."""
    items = value if isinstance(value, list) else [value]
    return items if all(isinstance(c, str) and c for c in items) else None


def _entry(e: object, where: str, source: str, builtin: bool) -> Divergence:
    if not isinstance(e, dict) or not KEYS <= set(e) or set(e) - KEYS - OPTIONAL:
        raise DivergenceError(f"{where} needs the keys {sorted(KEYS)} (and optionally {sorted(OPTIONAL)})")
    where = f"{where} ({e['match']})"
    if not str(e["reason"]).strip():
        raise DivergenceError(f"{where} gives no reason")
    contains, requires = _texts(e["contains"]), _texts(e.get("requires", []))
    if not contains:
        raise DivergenceError(f"{where}: contains is a text or a list of texts")
    if requires is None or "requires" in e and not requires:
        raise DivergenceError(f"{where}: requires is a text or a list of texts")
    streaming = e.get("streaming", [])
    if not isinstance(streaming, list) or not streaming and "streaming" in e or set(streaming) - MODES:
        raise DivergenceError(f"{where}: streaming is a list of modes from {sorted(MODES)}")
    for flag in ("intermittent", "losses", "early_end"):
        if not isinstance(e.get(flag, False), bool):
            raise DivergenceError(f"{where}: {flag} is true or false")
    versions = _versions(e.get("versions"), where) if "versions" in e else ()
    if (e.get("intermittent") or e.get("losses")) and not requires:
        # a race excuses a result only by its own signature, never by its side effects alone
        raise DivergenceError(f"{where}: an intermittent entry or one that excuses losses needs "
                              "'requires' (the text that identifies it)")
    return Divergence(str(e["match"]), tuple(contains), str(e["reason"]), source, builtin, tuple(streaming),
                      tuple(requires), bool(e.get("intermittent")), bool(e.get("losses")),
                      bool(e.get("early_end")), versions)


def _versions(value: object, where: str) -> tuple[tuple[str, str], ...]:
    """An entry's `versions`: a non-empty mapping of VERSIONED libraries to specifiers (a Go "v" is
    dropped) and of BACKEND to a name or a list of names; refused when malformed, naming the entry."""
    keys = sorted(VERSIONED | {BACKEND})
    if not isinstance(value, dict) or not value or set(value) - set(keys):
        raise DivergenceError(f"{where}: versions is a mapping of {keys} to version specifiers "
                              "(\">=1.72,<1.85\"; protobuf_backend: a name or a list of names)")
    out = []
    for key, want in value.items():
        if key == BACKEND:
            names = _texts(want)
            if names is None:
                raise DivergenceError(f"{where}: versions.{key} is a backend name or a list of them (upb, python)")
            out.append((key, ",".join(names)))
            continue
        text = re.sub(r"(?<=[<>=!~])\s*v(?=[0-9])", "", str(want)) if isinstance(want, str) else ""
        try:
            spec = SpecifierSet(text)
        except InvalidSpecifier:
            spec = None
        if not text or spec is None or not len(spec):
            raise DivergenceError(f"{where}: versions.{key} {want!r} is not a version specifier "
                                  "(\">=1.72,<1.85\", \"==1.76.*\")")
        out.append((key, str(spec)))
    return tuple(sorted(out))


def builtin_files() -> list[Path]:
    return [Path(str(importlib.resources.files("harness.run") / "known_divergences.yaml"))]


def check_dead(entries: list[Divergence], pairs: list[tuple[str, str, str, bool]]) -> None:
    """A user's entry that matches nothing the proto set can produce is an error, not silence."""
    for e in entries:
        if not e.builtin and not any(e.applies(*pair) for pair in pairs):
            raise DivergenceError(f"{e.source}: divergence {e.match!r} matches no direction:case of this proto set "
                                  "(a dead pattern); fix or remove it")


def _text(d: Diff) -> str:
    return f"{d.path}: expected {d.expected}, got {d.got}"


_RESPONSE = re.compile(r"responses\[[0-9]+\]")


def _lost(d: Diff) -> bool:
    """The diff says that something of the call never arrived, not that something arrived wrong:
    fewer responses or details than expected, a header or trailer key with no values, no server
    confirmation."""
    if d.path in ("responses.count", "details.count"):
        return d.expected.isdigit() and d.got.isdigit() and int(d.got) < int(d.expected)
    if _RESPONSE.fullmatch(d.path):  # a response that never came, named by its index
        return d.got == "<missing>"
    if d.path.startswith(('headers["', 'trailers["')) and d.path.endswith('"]'):
        return d.got == "[]"
    return d.path == "server.checked" and d.got == "missing"


def _covered(entry: Divergence, result: Result) -> bool:
    """Every diff of the result is one the entry describes, and the entry's signature is there:
    a divergence never hides another failure."""
    texts = [_text(d) for d in result.diffs]
    return (bool(texts)
            and all(any(c in _text(d) for c in entry.contains) or (entry.losses and _lost(d)) for d in result.diffs)
            and all(any(r in t for t in texts) for r in entry.requires))


def _marker(entry: Divergence) -> Diff:
    return Diff(0, "divergence", "known", f"{entry.reason} ({entry.source})")


def label_problem(entries: list[Divergence], result: Result, slug: str, mode: str | None = None,
                  ends_early: bool = False, versions: Mapping[str, str] | None = None) -> str | None:
    """Why a result's verdict does not follow from its diffs and these entries (None: it does), for a
    result read back from a file (`report merge`). A label that fails the run (fail, error, finding,
    unexpected_pass) cannot hide anything; `pass` and `divergence` must be what apply() gives, for
    the versions the row was run with (an entry of another version range does not apply)."""
    matching = [e for e in entries if e.applies(slug, result.case, mode, ends_early) and e.in_versions(versions)]
    if result.verdict == "pass":
        if result.diffs:
            return f"marked pass, but it carries {len(result.diffs)} difference(s), first: {_text(result.diffs[0])}"
        stale = next((e for e in matching if not e.intermittent), None)
        if stale is not None:
            return (f"marked pass, but the known divergence {stale.match!r} ({stale.source}) applies to it: "
                    "its verdict is unexpected_pass (a stale entry)")
        return None
    if result.verdict == "divergence":
        *rest, last = result.diffs or [Diff(0, "", "", "")]
        if (last.path, last.expected) != ("divergence", "known"):
            return "marked divergence, but it does not name the known divergence that excuses it"
        entry = next((e for e in matching if _covered(e, Result(result.case, result.direction, "fail", rest))), None)
        if entry is None:
            first = f", first: {_text(rest[0])}" if rest else " (it has none)"
            return f"marked divergence, but no known divergence of its run explains its differences{first}"
        if last != _marker(entry):
            return (f"marked divergence by {last.got!r}, but the entry that explains it is {entry.match!r} "
                    f"({entry.source})")
        return None
    if result.verdict not in ("fail", "error", "finding", "unexpected_pass"):
        return (f"marked {result.verdict!r}, which is no verdict (pass, fail, error, divergence, unexpected_pass, "
                "finding)")
    return None


def apply(entries: list[Divergence], result: Result, slug: str, mode: str | None = None,
          ends_early: bool = False, versions: Mapping[str, str] | None = None) -> Result:
    """The result's verdict in the light of the known divergences, for a run with these library
    versions (None: unknown, so only entries without `versions` count).

    A failing result is a known divergence only when an entry matches it and covers every one of its
    diffs; a passing result that an entry matches is an unexpected pass (the entry is stale)."""
    matching = [e for e in entries if e.applies(slug, result.case, mode, ends_early) and e.in_versions(versions)]
    if not matching:
        return result
    if result.verdict == "pass":
        entry = next((e for e in matching if not e.intermittent), None)
        if entry is None:
            return result
        result.verdict = "unexpected_pass"
        result.diffs = [Diff(0, "divergence", f"to diverge ({entry.reason})",
                             f"passed: the entry in {entry.source} ({entry.match}) is stale")]
        return result
    entry = next((e for e in matching if _covered(e, result)), None)
    if entry is not None:
        result.verdict = "divergence"
        result.diffs.append(_marker(entry))
    return result


# The same rules judge a capability's probe (harness/run/capabilities.py): one parser, one judge.
parse_entry, covered, texts = _entry, _covered, _texts
