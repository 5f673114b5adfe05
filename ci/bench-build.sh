#!/usr/bin/env bash
# Benchmark of the air-gapped build: runs everything `make cluster images` builds (tools,
# Kubernetes, node image, database images beside them) twice in one invocation, first with empty caches
# (its own Go module and build caches, step cache and a private dockerd with an empty image
# store, all under one scratch directory), then again warm, and prints both times and the
# warm/cold ratio. Creating the cluster itself is not part of it (`make cluster` prints that).
# usage: ci/bench-build.sh [SCRATCH_DIR]   (KEEP=1 keeps the scratch directory)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRATCH=${1:-$(mktemp -d /var/tmp/mysql-chart-bench.XXXXXX)}
mkdir -p "$SCRATCH"/{cache,gomod,gocache,bin,docker,exec}

log() { printf '[%s] bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
  if [[ -f $SCRATCH/dockerd.pid ]]; then kill "$(cat "$SCRATCH/dockerd.pid")" 2>/dev/null || true; fi
  while [[ -f $SCRATCH/dockerd.pid ]] && kill -0 "$(cat "$SCRATCH/dockerd.pid")" 2>/dev/null; do sleep 1; done
  if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$SCRATCH"; fi
}
trap cleanup EXIT

bash "$ROOT/ci/docker.sh"   # the host's engine: installs dockerd and the runtime configuration
export AIRGAP_CACHE=$SCRATCH/cache AIRGAP_BIN=$SCRATCH/bin GOMODCACHE=$SCRATCH/gomod GOCACHE=$SCRATCH/gocache
export DOCKER_HOST=unix://$SCRATCH/docker.sock GOFLAGS="-modcacherw -buildvcs=false"
log "starting a private dockerd with an empty image store in $SCRATCH"
dockerd --config-file /etc/docker/daemon.json --data-root "$SCRATCH/docker" --exec-root "$SCRATCH/exec" \
  --pidfile "$SCRATCH/dockerd.pid" --host "$DOCKER_HOST" --bridge none --iptables=false \
  >"$SCRATCH/dockerd.log" 2>&1 &
until docker info >/dev/null 2>&1; do sleep 1; done

# usage: build -> everything the air-gapped cluster and the e2e need, built (or found cached), in
# the order `make cluster images` builds it: the database images in the background beside the
# tools and the node image
build() {
  local db
  bash "$ROOT/ci/db-images.sh" build 2>"$SCRATCH/db-images.log" &
  db=$!
  bash "$ROOT/ci/tools.sh" && bash "$ROOT/ci/node-image.sh" >/dev/null
  wait "$db" || { tail -n 30 "$SCRATCH/db-images.log" >&2; return 1; }
  log "database images: done ($(grep -c 'built' "$SCRATCH/db-images.log") built)"
}

start=$SECONDS; log "cold build (empty caches)"; build; cold=$(( SECONDS - start ))
start=$SECONDS; log "warm build (same caches)"; build; warm=$(( SECONDS - start ))
log "disk used by the caches: $(du -sh "$SCRATCH/cache" "$SCRATCH/gomod" "$SCRATCH/gocache" "$SCRATCH/docker" | awk '{printf "%s %s; ", $2, $1}')"
awk -v c="$cold" -v w="$warm" 'BEGIN {printf "cold build: %d s (%.1f min)\nwarm build: %d s\nwarm/cold: %.3f\n", c, c / 60, w, w / c}'
