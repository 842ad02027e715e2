"""Sharding: split a run's cases over N CI jobs, balanced by measured cost, the same on every machine.

A case is the unit: all directions of a case run in the same shard. Why by case and not by
(direction, case): every shard then runs every direction, so each shard starts the same peers (the
fixed cost is equal and the balance is only the cases' own cost); a case's rows in the matrix and
its coverage come from one job; and `--direction` or `-k` never changes which shard a case is in.

The split depends only on the case names and the timing table, never on the order the cases were
generated in, on a hash seed, or on the machine: the names are sorted, each cost is an integer, and
the cases are dealt longest first to the least loaded shard (ties: the lower shard). Costs come from
a timing table (`--shard-timings FILE`: a run's `--json` results, a merged result set, or a table
`{"timings": {case: ms}}`); without one, from the table checked in beside this module (measured on
protos/); a case neither names costs what its kind costs (deadline and size-limit cases are heavy).
The table is never a machine-local cache: two jobs reading different tables would split differently
and lose or repeat cases.

`finding/<file>` rows (a file a language cannot compile or load) are not cases of the catalogue; each
goes to one shard by a digest of its name, so it appears exactly once across the shards too.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

TIMINGS_FILE = "shard_timings.json"

# Milliseconds one direction of a case of this kind takes (medians of a run of protos/, BENCHMARKS.md);
# the last part of a case's name decides its kind.
KIND_MS: dict[str, int] = {
    "near_size_limit": 280,      # 4 MiB each way
    "request_over_limit": 240,   # 4 MiB sent, refused
    "deadline_exceeded": 100,    # waits for its deadline
    "response_over_limit": 60,
}
DEFAULT_MS = 3
DIRECTION_COUNT = 7  # a table's cost is summed over the 7 directions; a kind's cost is scaled to match

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(ValueError):
    """A bad --shard value or timing file; the message says what to pass instead."""


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as CI matrices count
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse(spec: str | None) -> Shard | None:
    """`I/N` (1 ≤ I ≤ N) as given to --shard / --interop-shard; None stays None."""
    if spec is None or spec == "":
        return None
    m = _SPEC.match(spec)
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise ShardError(f"--shard {spec!r}: give I/N with 1 ≤ I ≤ N, e.g. --shard 2/3")
    return Shard(int(m[1]), int(m[2]))


def kind_cost(case: str) -> int:
    """The cost of a case no timing table names: its kind's per-direction cost, for all directions."""
    return KIND_MS.get(case.rsplit("/", 1)[-1], DEFAULT_MS) * DIRECTION_COUNT


def builtin_timings() -> Path:
    return Path(str(importlib.resources.files("harness.run") / TIMINGS_FILE))


def load_timings(path: Path | None = None) -> dict[str, int]:
    """Case name -> cost in ms (all directions summed), from a results file or a timing table."""
    path = path or builtin_timings()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ShardError(f"timing file {path}: {e}; pass a `grpc-interop run --json` file or "
                         '{"timings": {"<case>": <ms>}}') from None
    if isinstance(data, dict) and isinstance(data.get("timings"), dict):
        return {str(k): max(1, round(float(v))) for k, v in data["timings"].items()}
    rows = data.get("results") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ShardError(f"timing file {path}: neither results ({{\"results\": [...]}}) nor a table "
                         '({"timings": {...}})')
    return timings_of(rows)


def timings_of(rows: Iterable[Any]) -> dict[str, int]:
    """Sum each case's measured duration over its directions (results or their JSON)."""
    total: dict[str, float] = {}
    for r in rows:
        case, ms = (r["case"], r.get("duration_ms", 0.0)) if isinstance(r, dict) else (r.case, r.duration_ms)
        total[case] = total.get(case, 0.0) + float(ms or 0.0)
    return {case: max(1, round(ms)) for case, ms in sorted(total.items())}


def assign(names: Iterable[str], count: int, timings: dict[str, int]) -> dict[str, int]:
    """Case name -> its shard (1-based): longest first onto the least loaded shard."""
    costs = {n: timings.get(n) or kind_cost(n) for n in set(names)}
    loads = [0] * count
    out: dict[str, int] = {}
    for name in sorted(costs, key=lambda n: (-costs[n], n)):
        i = min(range(count), key=lambda k: (loads[k], k))
        loads[i] += costs[name]
        out[name] = i + 1
    return out


def finding_shard(name: str, count: int) -> int:
    """The shard of a finding row: a digest of its name (no timing, no dependence on other rows)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % count + 1


def in_shard(shard: Shard | None, names: list[str], timings: dict[str, int]) -> set[str]:
    """The names among `names` (the whole catalogue's cases) that this shard runs."""
    if shard is None:
        return set(names)
    where = assign(names, shard.count, timings)
    return {n for n, i in where.items() if i == shard.index}


def loads(names: list[str], count: int, timings: dict[str, int]) -> list[int]:
    """Each shard's estimated cost in ms (for the run's banner and the benchmark notes)."""
    where = assign(names, count, timings)
    out = [0] * count
    for n, i in where.items():
        out[i - 1] += timings.get(n) or kind_cost(n)
    return out


def write_timings(rows: Iterable[Any], path: Path) -> dict[str, int]:
    """A timing table from results, sorted by name (diffs of the checked-in file stay readable)."""
    table = timings_of(rows)
    path.write_text(json.dumps({"timings": table}, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    return table
