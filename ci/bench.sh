#!/usr/bin/env bash
# `make bench`: wall time of `make interop`, cold (no peer image, no generated code, no Go build
# cache for the peer) and warm (everything cached). Prints the figures; BENCHMARKS.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."
run() { local t0=$(date +%s%N); make -s interop >/dev/null; echo $(( ($(date +%s%N) - t0) / 1000000 )); }
echo "cold: removing peer images, build/ and the Go build cache"
docker images --format '{{.Repository}}:{{.Tag}}' grpc-interop-peer | xargs -r docker rmi -f >/dev/null || true
rm -rf build
go clean -cache
cold=$(run)
warm1=$(run)
warm2=$(run)
echo "make interop  cold: ${cold} ms   warm: ${warm1} ms, ${warm2} ms"
