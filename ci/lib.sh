#!/usr/bin/env bash
# Helpers shared by the air-gapped build scripts: logging, and timed, cached, resumable steps.
# Sourced, never run. Every step writes into its own cache directory and marks it done only
# after success, so a half-built cache entry is never reused.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=versions.env
source "$ROOT/ci/versions.env"
CACHE=${AIRGAP_CACHE:-/var/cache/mysql-chart-airgap}
LOGS=$CACHE/logs
BIN=${AIRGAP_BIN:-$ROOT/bin}
export PATH="$BIN:/usr/local/go/bin:$PATH"
mkdir -p "$CACHE" "$LOGS" "$BIN"

# usage: log MESSAGE...  (timestamped, to stderr)
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# usage: die MESSAGE...
die() { log "ERROR: $*"; exit 1; }

# usage: done_marker DIR  -> true when DIR holds a finished build
is_done() { [[ -f $1/.done ]]; }

# usage: step NAME DIR FUNCTION [ARGS...]
# Runs FUNCTION DIR ARGS... with its output in $LOGS/NAME.log unless DIR is already done.
# FUNCTION must (re)create DIR from scratch. Prints a heartbeat every minute while it runs;
# on failure prints the tail of the log and exits non-zero.
step() {
  local name=$1 dir=$2 fn=$3 lock; shift 3
  # One builder per cache entry: a second run waits for the first, then finds it done.
  exec {lock}>"$dir.lock"
  flock "$lock"
  if is_done "$dir"; then
    log "$name: cached in $dir"
    exec {lock}>&-
    return 0
  fi
  local logf=$LOGS/$name.log start=$SECONDS rc=0 beat
  log "$name: building into $dir (log: $logf)"
  rm -rf "$dir"
  mkdir -p "$dir"
  ( while sleep 60; do log "$name: still running ($(( (SECONDS - start) / 60 )) min): $(tail -n 1 "$logf" | cut -c1-120)"; done ) &
  beat=$!
  # Not `( … ) || rc=$?`: errexit is ignored inside a command whose status is tested.
  set +e
  ( set -euo pipefail; "$fn" "$dir" "$@" ) >"$logf" 2>&1
  rc=$?
  set -e
  kill "$beat" 2>/dev/null || true
  wait "$beat" 2>/dev/null || true
  if (( rc != 0 )); then
    log "$name: FAILED after $(( SECONDS - start ))s (exit $rc). Last lines of $logf:"
    tail -n 40 "$logf" >&2
    exit "$rc"
  fi
  touch "$dir/.done"
  exec {lock}>&-
  log "$name: done in $(( SECONDS - start ))s"
}

# usage: module_dir MODULE@VERSION -> its source directory, downloaded into Go's module cache
module_dir() {
  local dir
  dir=$(go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p') || true
  [[ -f $dir/go.mod ]] || die "the Go module proxy gave no source for $1"
  printf '%s\n' "$dir"
}

# usage: docker_build TAG CONTEXT_DIR  -- quiet unless it fails
docker_build() {
  local out
  out=$(docker build -t "$1" "$2" 2>&1) || { printf '%s\n' "$out" | tail -n 30 >&2; die "docker build $1 failed"; }
}
