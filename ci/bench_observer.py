"""The wire observer's cost (harness/engines/wire.py): one direction's cases, direct and through the
observer, alternately, in the same process and session. Prints seconds per pass.

    .venv/bin/python ci/bench_observer.py [--protos protos] [--direction go-py] [--rounds 2]

Size-limit cases are left out: they measure the payload, not the relay.
"""

from __future__ import annotations

import argparse
import time

from harness.engines.peer import select_runner
from harness.run import observed
from harness.run.runner import Session, direction, prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protos", default="protos")
    ap.add_argument("--direction", default="go-py")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    d = direction(args.direction)
    prepared = prepare(args.protos)
    cases = [c for c in prepared.cases if not c.name.endswith(("size_limit", "over_limit"))]
    always, never = (lambda *a: True), (lambda *a: False)
    original = observed.needs_observer
    with Session(prepared, select_runner("auto")) as session:
        session.server(d.server)
        try:
            for i in range(args.rounds):
                for label, choice in (("direct", never), ("observed", always)):
                    observed.needs_observer = choice  # the runner's own switch, forced for the measurement
                    session.run_id = f"r-bench-{i}-{label}"  # the seed services keep state per session id
                    t0 = time.perf_counter()
                    results = session.run(d, cases)
                    ok = sum(r.verdict in ("pass", "divergence") for r in results)
                    print(f"{label:9} {d.name} {len(cases)} cases: {time.perf_counter() - t0:.2f} s ({ok} ok)")
        finally:
            observed.needs_observer = original


if __name__ == "__main__":
    main()
