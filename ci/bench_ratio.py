"""`make bench`, first part: how close a warm full run comes to raw gRPC speed (issue 9).

In ONE invocation, so both figures see the same machine load:
1. the raw grpcio unary median: a bare grpcio echo (sync server and channel, generic handlers, a
   small message) on loopback in this process, after a warm-up;
2. the warm full run: `grpc-interop run --protos PROTOS` (all seven directions), once to warm the
   caches and the peer image, then timed (wall clock of the whole command, as a user waits for it);
3. the ratio wall / (case runs x raw median): 1 would mean every case cost one bare round trip,
   done one after another. The goal is <= 8.

    .venv/bin/python ci/bench_ratio.py [--protos protos] [--runs 1] [-- extra run options]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

import grpc

from python_impl.contract import CHANNEL_OPTIONS

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "harness.cli"]


def raw_unary_median(calls: int = 2000, warmup: int = 200) -> float:
    """Median seconds of one bare grpcio unary round trip (32 bytes each way) on loopback."""
    server = grpc.server(futures.ThreadPoolExecutor(4))
    echo = grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Raw", {"Echo": echo})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as ch:
            rpc, payload, times = ch.unary_unary("/bench.Raw/Echo"), b"x" * 32, []
            for i in range(warmup + calls):
                start = time.perf_counter()
                rpc(payload, timeout=10)
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        server.stop(grace=None)
    return statistics.median(times)


def full_run(protos: str, extra: list[str]) -> tuple[float, int, str]:
    """(wall seconds, case runs, summary line) of one `grpc-interop run` over every direction."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        start = time.perf_counter()
        proc = subprocess.run([*CLI, "run", "--protos", protos, "--json", str(out), *extra], cwd=REPO,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"grpc-interop run failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        runs = len(json.loads(out.read_text())["results"])
    return wall, runs, proc.stdout.strip().splitlines()[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protos", default="protos")
    ap.add_argument("--runs", type=int, default=1, help="timed warm runs (each with its own raw median)")
    ap.add_argument("extra", nargs="*", help="more `grpc-interop run` options, after --")
    args = ap.parse_args()
    print("warm-up run (builds nothing when the cache and the peer image are there) ...", flush=True)
    full_run(args.protos, args.extra)
    for _ in range(args.runs):
        median = raw_unary_median()
        wall, runs, summary = full_run(args.protos, args.extra)
        print(f"raw grpcio unary median: {median * 1000:.3f} ms")
        print(f"warm full run: {wall:.1f} s for {runs} case runs ({summary})")
        print(f"ratio wall / (case runs x raw median) = {wall:.1f} / ({runs} x {median * 1000:.3f} ms) "
              f"= {wall / (runs * median):.1f}  (goal <= 8)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
