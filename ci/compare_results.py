"""Do two result sets say the same? (direction, case) -> verdict, and the coverage numbers.

    python ci/compare_results.py unsharded.json reports/ci/merged.json

The check behind "3 shards merged = one unsharded run" (BENCHMARKS.md). Exit 1 on any difference,
each one printed. Accepts any `grpc-interop run --json` or `report merge --json` file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(path: str) -> tuple[dict[tuple[str, str], str], dict | None]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    rows = data["results"] if isinstance(data, dict) else data
    verdicts: dict[tuple[str, str], str] = {}
    for r in rows:
        key = (r["direction"], r["case"])
        if key in verdicts:
            raise SystemExit(f"{path}: {key} appears twice")
        verdicts[key] = r["verdict"]
    cov = (data.get("coverage") if isinstance(data, dict) else None) or {}
    # gaps as a set: files written before Coverage.to_json sorted them list them in another order
    gaps = {k: sorted(json.dumps(u, sort_keys=True) for u in v) for k, v in (cov.get("uncovered") or {}).items()}
    return verdicts, {"directions": cov.get("directions"), "uncovered": gaps}


def main(a: str, b: str) -> int:
    (va, ca), (vb, cb) = _load(a), _load(b)
    problems = [f"only in {a}: {k}" for k in sorted(va.keys() - vb.keys())]
    problems += [f"only in {b}: {k}" for k in sorted(vb.keys() - va.keys())]
    problems += [f"{k}: {va[k]} in {a}, {vb[k]} in {b}" for k in sorted(va.keys() & vb.keys()) if va[k] != vb[k]]
    if ca != cb:
        problems.append(f"coverage differs: {a}: {json.dumps(ca)[:300]} … {b}: {json.dumps(cb)[:300]}")
    for p in problems[:50]:
        print(p)
    print(f"{len(va)} and {len(vb)} (direction, case); {len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
