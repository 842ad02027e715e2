#!/usr/bin/env bash
# `make ci-local SHARDS=3`: the jobs of ci/github/interop-shards.yml on this machine, one after the
# other: every (backend, shard) job runs ci/shard-job.sh, as the workflow's matrix does, then the
# merge job's command merges their JSON into one result set with the Markdown and HTML reports.
# The same scripts and commands as the workflow, so its logic is tested here.
#
#   ci/ci-local.sh SHARDS [OUT] [-- extra grpc-interop run options]
#   BACKENDS="upb python" (default, the workflow's backend axis); PROTOS=protos
#
# Exit: the merge's (0 green, 1 a failure or a stale known divergence, 2 the results do not merge,
# 3 incomplete). Each job's exit code and wall time are in OUT/walls.txt.
set -uo pipefail
SHARDS=${1:?usage: ci/ci-local.sh SHARDS [OUT] [-- run options]}
OUT=${2:-reports/ci}
shift $(( $# >= 2 ? 2 : 1 ))
[[ ${1:-} == "--" ]] && shift
BIN=${INTEROP_BIN:-.venv/bin/grpc-interop}
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$OUT"
mkdir -p "$OUT/shards"
for backend in ${BACKENDS:-upb python}; do
  for ((i = 1; i <= SHARDS; i++)); do
    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=$backend "$HERE/shard-job.sh" "$i" "$SHARDS" "$OUT/shards" "$@" \
      | tee -a "$OUT/walls.txt"
  done
done
echo "ci-local: merging $(ls "$OUT"/shards/*.json | wc -l) results"
"$BIN" report merge "$OUT"/shards/*.json --json "$OUT/merged.json" --junit "$OUT/merged.xml" \
  --markdown "$OUT/merged.md" --html "$OUT/merged.html" --title "gRPC interop: ${PROTOS:-protos}, $SHARDS shards" \
  > "$OUT/merge.log" 2>&1
code=$?
tail -n 3 "$OUT/merge.log"
echo "ci-local: merge exit $code; reports: $OUT/merged.md, $OUT/merged.html (and merged.json, merged.xml)"
exit $code
