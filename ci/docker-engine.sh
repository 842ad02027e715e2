#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine; install and start one if not.
# Used by `make setup` and .ci/run. Needs root (apt-get, dockerd). Says what it does.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  echo "docker-engine: an engine is already running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-engine: no dockerd on this machine; installing Debian's docker.io (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

log=${DOCKERD_LOG:-/tmp/dockerd.log}
echo "docker-engine: starting dockerd in the background (log: $log)"
# No registry is reachable here: images are built FROM scratch, nothing is pulled.
nohup dockerd >"$log" 2>&1 &

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker-engine: ready ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
echo "docker-engine: dockerd did not answer within 60 s; last lines of $log:" >&2
tail -n 30 "$log" >&2
exit 1
