#!/usr/bin/env bash
# One job of ci/github/interop-shards.yml: shard I of N of `grpc-interop run` on PROTOS, with the
# Python protobuf backend of $PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION (upb when unset), writing
# OUT/shard-<backend>-<I>.json (+ .xml, .log). `make ci-local` runs the same script job after job.
#
#   ci/shard-job.sh I N OUT [extra grpc-interop run options]
#
# Exit: grpc-interop run's (0 green, 1 a failure, 2 could not run, 3 interrupted: the JSON is kept,
# marked incomplete). The merge job judges the whole set, so a failing shard still uploads its JSON.
set -uo pipefail
I=${1:?usage: ci/shard-job.sh I N OUT [run options]}
N=${2:?usage: ci/shard-job.sh I N OUT [run options]}
OUT=${3:?usage: ci/shard-job.sh I N OUT [run options]}
shift 3
BIN=${INTEROP_BIN:-.venv/bin/grpc-interop}
BACKEND=${PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION:-upb}
NAME="$OUT/shard-$BACKEND-$I"
mkdir -p "$OUT"
start=$(date +%s.%N)
"$BIN" run --protos "${PROTOS:-protos}" --shard "$I/$N" --json "$NAME.json" --junit "$NAME.xml" "$@" > "$NAME.log" 2>&1
code=$?
wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "shard $I/$N backend $BACKEND: exit $code, wall $wall s: $(tail -n 1 "$NAME.log")"
grep -m1 '^versions:' "$NAME.log"
exit $code
