"""The run record a results file carries beside its results (harness/report/results.py): what was
tested, the catalogue and this shard's part of it, what did not run, the known divergences with what
they matched, and the failures' explanations (a merge has no peers to ask)."""

from __future__ import annotations

from harness.report import results as results_doc
from harness.run.runner import DIRECTIONS, Plan, Prepared, direction
from python_impl.contract import Result


def brief(r: Result) -> str:
    """A failure's explanation without peers to ask (they are gone): its differences."""
    lines = [f"{r.verdict.upper()}: {r.direction} {r.case}"]
    lines += [f"  call {d.call}: {d.path}: expected {d.expected}, got {d.got}" for d in r.diffs]
    return "\n".join(lines)


def run_record(prepared: Prepared, the_plan: Plan, names: list[str], results: list[Result], tested: dict,
               explanations: dict, wall_s: float, interrupted: str | None, profile: str | None = None) -> dict:
    """What the JSON report says about the run beside its results (harness/report/results.py)."""
    wanted = {c for v in the_plan.expected.values() for c in v}
    cases_json = [c.to_json() for c in prepared.cases if c.name in wanted]
    not_run = results_doc.not_run(the_plan.mine, results)
    return {"versions": tested, "protos": {"label": prepared.protoset.label, "digest": prepared.protoset.digest,
                                           "not_tested": not_tested(prepared)},
            "directions": names, "shard": str(the_plan.shard) if the_plan.shard else None,
            "complete": not not_run, "interrupted": interrupted,
            "catalogue": {"digest": results_doc.catalogue_digest(the_plan.expected, cases_json),
                          "expected": the_plan.expected,
                          # what the known divergences match on besides the name: a merge judges rows again
                          "modes": {c.name: {"streaming": c.calls[0].streaming, "ends_early": c.ends_early}
                                    for c in prepared.cases if c.name in wanted}},
            "not_run": not_run, "divergences": divergence_matches(prepared, results),
            "capabilities": capability_rows(prepared, results),
            "explanations": [{"direction": d, "case": c, "text": t} for (d, c), t in explanations.items()],
            "wall_s": round(wall_s, 1), "profile": profile}


def not_tested(prepared: Prepared) -> list[str]:
    """What of the user's set the run does not test, one line each: copies that stand aside for the
    registered file (and how they differ), googleapis copies replaced, methods and cases that could not
    be generated. The console says it once at the start; the reports must say it too, or a green
    report hides that a vendored copy's own content never went on the wire."""
    notice = prepared.protoset.notice()
    return [*(notice.splitlines() if notice else []), *(f"not generated: {g}" for g in prepared.gaps)]


def divergence_matches(prepared: Prepared, results: list[Result]) -> list[dict]:
    """Each known divergence with the verdicts of the results it applies to, so a merge can judge
    staleness over every shard's results together. (Each result's slug and case facts are looked up
    once, not once per entry: a full run has thousands of results and a hundred entries.)"""
    by_name = {c.name: c for c in prepared.cases}
    slugs = {d.name: d.slug for d in DIRECTIONS}
    facts = [(slugs.get(r.direction) or direction(r.direction).slug, r.case, case.calls[0].streaming,
              case.ends_early, r.verdict)
             for r in results if (case := by_name.get(r.case)) is not None]
    out = []
    for e in prepared.known:
        matched: dict[str, int] = {}
        for slug, name, mode, early, verdict in facts:
            if e.applies(slug, name, mode, early):
                matched[verdict] = matched.get(verdict, 0) + 1
        out.append({**e.to_json(), "matched": matched})
    return out


def capability_rows(prepared: Prepared, results: list[Result]) -> list[dict]:
    """One row per direction and capability its probe proved (harness/run/capabilities.py): the
    library, its installed and measured versions, what it lacks, and the probe case."""
    out = []
    for r in results:
        if r.verdict != "capability":
            continue
        cap = prepared.probes(direction(r.direction)).get(r.case)
        if cap is not None:
            out.append({"direction": r.direction, "case": r.case, **cap.row()})
    return out
