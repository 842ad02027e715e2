#!/usr/bin/env bash
# `make bench`: the ratio of a warm full run to raw gRPC speed (ci/bench_ratio.py: the raw grpcio
# unary median and the warm run in one invocation), the Py<->Go bench table, then the wall time of
# `make interop` (every case, every direction), cold and warm, and the number of case runs per second.
# Cold: no peer image, an empty cache folder (generated code, plugins, binaries) and an empty Go build
# cache. Warm: nothing changed. BENCHMARKS.md records the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
echo "ratio: warm full run / (case runs x raw grpcio unary median)"
.venv/bin/python ci/bench_ratio.py --protos "${PROTOS:-protos}"
echo "overlap: a one-message proto set, wall / its slowest case (goal <= 1.3)"
.venv/bin/python ci/bench_overlap.py
echo "bench: Py<->Go performance per direction"
.venv/bin/grpc-interop bench --protos "${PROTOS:-protos}"
run() {
  local t0; t0=$(date +%s%N)
  make -s interop >"$log" 2>&1 || { tail -n 40 "$log"; exit 1; }
  echo "$(( ($(date +%s%N) - t0) / 1000000 )) ms  ($(tail -n 1 "$log"))"
}
echo "cold: removing peer images, the cache folder and the Go build cache"
docker images --format '{{.Repository}}:{{.Tag}}' grpc-interop-peer | xargs -r docker rmi -f >/dev/null || true
.venv/bin/grpc-interop clean --cache
go clean -cache
echo "make interop cold:  $(run)"
echo "make interop warm:  $(run)"
echo "make interop warm:  $(run)"
echo "incremental: a one-field edit to one proto file"
.venv/bin/python ci/bench_incremental.py
