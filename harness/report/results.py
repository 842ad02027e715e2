"""The results document (`run --json`, `report merge --json`) and the merge of several of them.

    {"results": [<Result>…], "coverage": {…}, "run": {
        "format": 2, "versions": {…}, "protos": {"label", "digest"}, "directions": […],
        "shard": "2/3" | null, "complete": true, "interrupted": null | "SIGINT" | "SIGTERM",
        "catalogue": {"digest": "…", "expected": {<direction>: [<case or finding row>…]},
                      "modes": {<case>: {"streaming": <mode>, "ends_early": bool}}},
        "not_run": [[<direction>, <case>]…], "divergences": [{<the entry: match, contains, reason,
        source, builtin, streaming, requires, intermittent, losses, early_end>, matched: {<verdict>: n}}…],
        "capabilities": [{direction, case, library, version, measured, lacks, reason}…],
        "wall_s": 12.3, "timeline": [{direction, case, start_s, end_s}…] (run only: when each case
        ran, seconds since the run's start), "merged_from": […]}}

A merge judges every row again (_judge): a `pass` must carry no difference and no entry may apply
to it, a `divergence` must be explained by a recorded entry; a label that does not follow is refused.

`catalogue.expected` is the whole selection of every shard, so a merge knows which (direction, case)
no shard ran. Its digest covers the expected rows and every case's content (JSON with sorted keys:
the map order of a case's JSON varies between processes with upb), so shards built from different
catalogues are refused instead of merged into nonsense.

Results of different versions (matrix jobs) are kept apart: a merge groups its inputs by their
versions, checks each group like shards of one run, and reports each group's directions as their
own columns (`py→go · grpcio=1.76.0`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.report.verdicts import OK_VERDICTS
from harness.run import capabilities
from harness.run.divergences import Divergence, DivergenceError, label_problem
from python_impl.contract import Result

FORMAT = 2


class MergeError(ValueError):
    """Results that cannot be merged; the message names the files and the cases."""


def catalogue_digest(expected: dict[str, list[str]], cases: list[dict[str, Any]]) -> str:
    doc = {"expected": {d: sorted(v) for d, v in expected.items()},
           "cases": sorted(cases, key=lambda c: c.get("name", ""))}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def not_run(mine: dict[str, list[str]], results: list[Result]) -> list[list[str]]:
    """The (direction, case) of this run's part that have no result (an interrupted run)."""
    got = {(r.direction, r.case) for r in results}
    return [[d, c] for d, names in mine.items() for c in names if (d, c) not in got]


def write(path: Path, results: list[Result], coverage: dict | None, run: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"results": [r.to_json() for r in results], "coverage": coverage, "run": {"format": FORMAT, **run}}
    tmp = path.with_name(path.name + ".tmp")  # renamed into place: a reader never sees half a file
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


@dataclass
class Loaded:
    path: Path
    results: list[Result]
    coverage: dict | None
    run: dict[str, Any]

    @property
    def variant(self) -> str:
        return json.dumps(self.run.get("versions") or {}, sort_keys=True)


def read(path: Path) -> Loaded:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MergeError(f"{path}: cannot read results: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("run"), dict) or "catalogue" not in data["run"]:
        raise MergeError(f"{path}: no run record (catalogue, versions): written by an older grpc-interop or not a "
                         "`grpc-interop run --json` file; run it again with this version")
    return Loaded(Path(path), [Result.from_json(r) for r in data["results"]], data.get("coverage"), data["run"])


@dataclass
class Merged:
    results: list[Result]
    coverage: dict | None
    run: dict[str, Any]
    directions: list[str]
    missing: list[tuple[str, str]] = field(default_factory=list)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # column suffix -> versions
    explanations: dict[tuple[str, str], str] = field(default_factory=dict)  # the inputs' failure explanations


def merge(inputs: list[Loaded], allow_incomplete: bool = False) -> Merged:
    """One result set from shards (and matrix jobs). Errors: a (direction, case) two inputs both ran,
    one no input ran, inputs of one version set built from different catalogues, and (unless
    allow_incomplete) an interrupted input."""
    if not inputs:
        raise MergeError("no results to merge")
    for item in inputs:
        _judge(item)
    groups: dict[str, list[Loaded]] = {}
    for item in inputs:
        groups.setdefault(item.variant, []).append(item)
    labels = _labels([json.loads(k) for k in groups]) if len(groups) > 1 else {next(iter(groups)): ""}
    results: list[Result] = []
    directions: list[str] = []
    missing: list[tuple[str, str]] = []
    coverages: list[dict] = []
    variants: dict[str, dict[str, Any]] = {}
    explanations: dict[tuple[str, str], str] = {}
    capabilities: list[dict] = []
    for key, group in groups.items():
        label = labels[key]
        merged, gap = _merge_group(group, allow_incomplete)
        suffix = f" · {label}" if label else ""
        variants[label] = json.loads(key)
        for r in merged:
            r.direction += suffix
        for g in group:
            for e in g.run.get("explanations") or []:
                explanations[(e["direction"] + suffix, e["case"])] = e["text"]
            capabilities += [{**c, "direction": c["direction"] + suffix} for c in g.run.get("capabilities") or []]
        results += merged
        missing += [(d + suffix, c) for d, c in gap]
        names = [d for d in group[0].run.get("directions", [])]
        directions += [d + suffix for d in names]
        cov = _merge_coverage([g.coverage for g in group if g.coverage])
        if cov is not None:
            coverages.append(_rename_coverage(cov, suffix))
    first = inputs[0].run
    run = {"versions": first.get("versions") if len(groups) == 1 else {},
           "variants": variants if len(groups) > 1 else {},
           "protos": first.get("protos"), "directions": directions, "shard": None,
           "complete": not missing, "interrupted": None,
           "catalogue": {"digest": first["catalogue"]["digest"] if len(groups) == 1 else "",
                         "expected": _expected_all(groups, labels),
                         # none when an input has none (an older file): {} would read as "no case has a mode"
                         "modes": ({k: v for i in inputs for k, v in i.run["catalogue"]["modes"].items()}
                                   if all(i.run["catalogue"].get("modes") is not None for i in inputs) else None)},
           "not_run": [list(p) for p in missing],
           "divergences": _merge_divergences([i.run.get("divergences") or [] for i in inputs]),
           "capabilities": capabilities,
           "wall_s": {str(i.path): i.run.get("wall_s") for i in inputs},
           "merged_from": [str(i.path) for i in inputs],
           # the inputs' profiles (issue 19): one name when they agree, else each
           "profile": " + ".join(sorted({str(i.run.get("profile") or "full") for i in inputs}))}
    coverage = _join_coverages(coverages)
    run["explanations"] = [{"direction": d, "case": c, "text": t} for (d, c), t in explanations.items()]
    return Merged(results, coverage, run, directions, missing, variants, explanations)


def _judge(item: Loaded) -> None:
    """Each row's verdict again, from its diffs and the known divergences its run recorded: a label
    that does not follow (a `pass` carrying a status diff, a `divergence` no entry explains) is
    refused, naming the row and the file, instead of being merged as it reads."""
    recorded = item.run.get("divergences") or []
    try:
        entries = ([Divergence.from_json(e, f"{item.path}: the known divergence {e.get('match')!r} its run recorded")
                    for e in recorded] if all("contains" in e for e in recorded) else None)
    except DivergenceError as e:
        raise MergeError(f"{e}. The file was edited, or written by a broken run: run that shard again") from None
    modes = item.run["catalogue"].get("modes")
    caps = {(c["direction"].split(" · ")[0], c["case"]): c for c in item.run.get("capabilities") or []}
    expected = {d.split(" · ")[0]: names for d, names in (item.run["catalogue"].get("expected") or {}).items()}
    rows = {(r.direction.split(" · ")[0], r.case) for r in item.results if r.verdict == "capability"}
    for (direction, case), c in caps.items():  # the reports list these as facts: each needs its proving row
        if (direction, case) not in rows:
            raise MergeError(f"{item.path}: {c['direction']} {case}: the run records the {c.get('library')} "
                             "capability, but no capability row of the file proves it. The file was edited, or "
                             "written by a broken run: run that shard again")
    for r in item.results:
        direction = r.direction.split(" · ")[0]  # a merged file's columns carry their version label
        mode = (modes or {}).get(r.case) or {}
        if r.verdict == "capability":  # a library's lack, proved by this probe (harness/run/capabilities.py)
            problem = capabilities.label_problem(caps.get((direction, r.case)), r, direction.replace("→", "-"),
                                                 mode.get("streaming"), expected.get(direction) or [])
            if problem is not None:
                raise MergeError(f"{item.path}: {r.direction} {r.case}: {problem}. The file was edited, or written "
                                 "by a broken run: run that shard again")
            continue
        if entries is None or modes is None:
            if r.verdict == "divergence" or r.verdict == "pass" and r.diffs:
                raise MergeError(f"{item.path}: {r.direction} {r.case}: marked {r.verdict}, and the file's run record "
                                 "does not carry the known divergences to judge it by (written by an older "
                                 "grpc-interop): run it again with this version")
            continue
        if r.verdict in OK_VERDICTS and r.case not in modes:
            raise MergeError(f"{item.path}: {r.direction} {r.case}: marked {r.verdict}, and the run record gives no "
                             "streaming mode for its case (catalogue.modes), which the known divergences match on. "
                             "The file was edited, or written by a broken run: run that shard again")
        problem = label_problem(entries, r, direction.replace("→", "-"), mode.get("streaming"),
                                bool(mode.get("ends_early")), _row_versions(item.run, r.direction))
        if problem is not None:
            raise MergeError(f"{item.path}: {r.direction} {r.case}: {problem}. The file was edited, or written by "
                             "a broken run: run that shard again")
    if entries is not None and modes is not None:
        _count_matches(item, entries, modes)


def _row_versions(run: dict[str, Any], direction: str) -> dict[str, Any] | None:
    """The library versions a row ran with: its column's variant in a merged file of several
    versions (`py→go · grpcio 1.72.2`), else the run's."""
    if " · " in direction:
        return (run.get("variants") or {}).get(direction.split(" · ", 1)[1])
    return run.get("versions") or None


def _count_matches(item: Loaded, entries: list[Divergence], modes: dict) -> None:
    """Each recorded entry's matches counted from the rows just judged (as the run counts them:
    every row of a case the entry applies to, by verdict), never read from the file: a count left
    out would leave the entry that excused a row out of the reports' list of them."""
    for raw, entry in zip(item.run.get("divergences") or [], entries):
        matched: dict[str, int] = {}
        for r in item.results:
            mode = modes.get(r.case)
            if mode is not None and entry.applies(r.direction.split(" · ")[0].replace("→", "-"), r.case,
                                                  mode.get("streaming"), bool(mode.get("ends_early"))) \
                    and entry.in_versions(_row_versions(item.run, r.direction)):
                matched[r.verdict] = matched.get(r.verdict, 0) + 1
        raw["matched"] = matched


def _merge_group(group: list[Loaded], allow_incomplete: bool) -> tuple[list[Result], list[tuple[str, str]]]:
    digests = {g.run["catalogue"]["digest"] for g in group}
    if len(digests) > 1:
        raise MergeError("these results were run on different catalogues (other protos, cases or options), so "
                         "they are not shards of one run: " + ", ".join(f"{g.path} ({g.run['catalogue']['digest'][:12]})"
                                                                      for g in group))
    seen: dict[tuple[str, str], Path] = {}
    out: list[Result] = []
    for g in group:
        for r in g.results:
            key = (r.direction, r.case)
            if key in seen:
                raise MergeError(f"{r.direction} {r.case} is in {seen[key]} and in {g.path}: a case present twice "
                                 "(the same shard given twice, or shards of different --shard counts or timing files)")
            seen[key] = g.path
            out.append(r)
    expected = group[0].run["catalogue"]["expected"]
    missing = [(d, c) for d, names in expected.items() for c in names if (d, c) not in seen]
    extra = [k for k in seen if k[1] not in set(expected.get(k[0], []))]
    if extra:
        raise MergeError(f"{seen[extra[0]]}: {extra[0][0]} {extra[0][1]} is not in the catalogue it records")
    incomplete = [g for g in group if not g.run.get("complete", True)]
    if missing:
        named = ", ".join(f"{d} {c}" for d, c in missing[:10]) + (" …" if len(missing) > 10 else "")
        if incomplete and allow_incomplete:
            return out, missing
        if incomplete:
            raise MergeError(f"{len(missing)} (direction, case) did not run, because "
                             + ", ".join(f"{g.path} is incomplete ({g.run.get('interrupted') or 'interrupted'})"
                                         for g in incomplete)
                             + f": {named}; pass --allow-incomplete to merge what ran, marked incomplete")
        shards = sorted({str(g.run.get("shard")) for g in group})
        raise MergeError(f"{len(missing)} (direction, case) are in no input (a shard missing? given: shards "
                         f"{', '.join(shards)}): {named}")
    return out, []


def _labels(versions: list[dict[str, Any]]) -> dict[str, str]:
    """A short column suffix per version set: the keys whose values differ between the sets."""
    keys = sorted({k for v in versions for k in v})
    differ = [k for k in keys if len({str(v.get(k)) for v in versions}) > 1]
    return {json.dumps(v, sort_keys=True): " ".join(f"{k.replace('_', '-')}={v.get(k)}" for k in differ)
            for v in versions}


def _expected_all(groups: dict[str, list[Loaded]], labels: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, group in groups.items():
        suffix = f" · {labels[key]}" if labels[key] else ""
        for d, names in group[0].run["catalogue"]["expected"].items():
            out[d + suffix] = list(names)
    return out


def _merge_divergences(lists: list[list[dict]]) -> list[dict]:
    """The entries with their matches summed over every input: staleness is judged on the merged set."""
    merged: dict[tuple[str, str], dict] = {}
    for entries in lists:
        for e in entries:
            key = (e["source"], e["match"])
            into = merged.setdefault(key, {**e, "matched": {}})
            for verdict, n in (e.get("matched") or {}).items():
                into["matched"][verdict] = into["matched"].get(verdict, 0) + n
    return list(merged.values())


def stale(divergences: list[dict]) -> list[str]:
    """Entries a passing result showed to be stale (in any input of the merged set), as sentences."""
    return [f"{e['source']}: {e['match']} passed {e['matched']['unexpected_pass']} time(s): the entry is stale"
            for e in divergences if (e.get("matched") or {}).get("unexpected_pass")]


def not_exercised(divergences: list[dict]) -> list[dict]:
    """Built-in entries that applied to no result of the run (of the merged set): the proto set (or
    the selection) has no case they are about, so the run says nothing of them. A user's entry that
    applies to nothing is an error before the run (divergences.check_dead)."""
    return [e for e in divergences if e.get("builtin") and not any((e.get("matched") or {}).values())]


def not_exercised_lines(divergences: list[dict]) -> list[str]:
    """The report's lines about them (terminal and Markdown): a heading, then one line per entry."""
    idle = not_exercised(divergences)
    if not idle:
        return []
    modes = [f" [{', '.join(e['streaming'])}]" if e.get("streaming") else "" for e in idle]
    return [f"{len(idle)} built-in known divergence(s) not exercised by this proto set (or selection: no case "
            "of the run is theirs):", *(f"  {e['match']}{mode}" for e, mode in zip(idle, modes))]


# ---------------------------------------------------------------- coverage from JSON

def _merge_coverage(covs: list[dict]) -> dict | None:
    """Shards of one run share the universe; an item is uncovered in a direction only when every
    shard left it uncovered there. Counts follow exactly: covered = total - uncovered."""
    if not covs:
        return None
    directions = list(covs[0]["directions"])
    out: dict[str, Any] = {"directions": {}, "uncovered": {}}
    kinds = list(covs[0]["uncovered"])
    for kind in kinds:
        per_dir: dict[str, set[tuple[str, str]]] = {}
        for d in directions:
            sets = [{(u["owner"], u["item"]) for u in c["uncovered"].get(kind, []) if d in u["directions"]}
                    for c in covs if d in c["directions"]]
            per_dir[d] = set.intersection(*sets) if sets else set()
        items = sorted(set().union(*per_dir.values()))  # sorted, as Coverage.to_json lists them
        out["uncovered"][kind] = [{"owner": o, "item": i, "directions": [d for d in directions if (o, i) in per_dir[d]]}
                                  for o, i in items]
        for d in directions:
            total = covs[0]["directions"][d][kind]["total"]
            covered = total - len(per_dir[d])
            out["directions"].setdefault(d, {})[kind] = {
                "covered": covered, "total": total, "percent": round(100.0 * covered / total if total else 100.0, 2)}
    if "unreachable" in covs[0]:  # a property of the universe, which the shards share
        out["unreachable"] = covs[0]["unreachable"]
    return out


def _rename_coverage(cov: dict, suffix: str) -> dict:
    if not suffix:
        return cov
    out = {"directions": {d + suffix: v for d, v in cov["directions"].items()},
           "uncovered": {k: [{**u, "directions": [d + suffix for d in u["directions"]]} for u in v]
                         for k, v in cov["uncovered"].items()}}
    if "unreachable" in cov:
        out["unreachable"] = cov["unreachable"]
    return out


def _join_coverages(covs: list[dict]) -> dict | None:
    if not covs:
        return None
    if len(covs) == 1:
        return covs[0]
    out: dict[str, Any] = {"directions": {}, "uncovered": {}}
    for c in covs:
        out["directions"].update(c["directions"])
        for k, v in c["uncovered"].items():
            out["uncovered"].setdefault(k, []).extend(v)
        for k, v in c.get("unreachable", {}).items():  # the same items under every backend: listed once
            listed = out.setdefault("unreachable", {}).setdefault(k, [])
            listed += [u for u in v if u not in listed]
    return out
