#!/usr/bin/env bash
# Runs shell commands side by side ("lanes"), each line of output prefixed with its lane's name;
# waits for all of them and fails when any failed. `make test` runs the two flavors' suites this
# way: on 2 cores they mostly wait on the cluster, not on each other.
# Each lane's output is also kept in $LANE_LOGS/NAME.log (default artifacts/lanes). When a lane
# fails, its failure lines and its last lines are printed again at the very end, where a CI log's
# tail shows them, instead of being buried among the other lane's lines.
#   usage: ci/lanes.sh NAME=COMMAND [NAME=COMMAND...]
set -euo pipefail

LANE_LOGS=${LANE_LOGS:-artifacts/lanes}
TAIL_LINES=${TAIL_LINES:-60}

# usage: lane NAME COMMAND -- runs COMMAND, output prefixed "[NAME] " and kept, and reports its time
lane() {
  local name=$1 command=$2 start=$SECONDS rc=0
  bash -c "$command" 2>&1 | tee "$LANE_LOGS/$name.log" | sed -u "s/^/[$name] /" || rc=$?
  printf '[%s] lane finished: exit %s after %s s\n' "$name" "$rc" $((SECONDS - start))
  return "$rc"
}

# usage: replay NAME -- the failed lane's pytest failure lines and its last lines, again
replay() {
  local log=$LANE_LOGS/$1.log
  printf '\n===== lane %s failed; its failures (whole log: %s) =====\n' "$1" "$log"
  grep -E '^(FAILED|ERROR) |^E  |Error [0-9]+$|^make.*\*\*\*' "$log" | head -40 || true
  printf -- '----- last %s lines of lane %s -----\n' "$TAIL_LINES" "$1"
  tail -n "$TAIL_LINES" "$log"
}

main() {
  local spec pids=() names=() failed=() i
  (($# > 0)) || { printf 'usage: ci/lanes.sh NAME=COMMAND...\n' >&2; exit 2; }
  mkdir -p "$LANE_LOGS"
  for spec in "$@"; do
    [[ $spec == *=* ]] || { printf 'not NAME=COMMAND: %s\n' "$spec" >&2; exit 2; }
    lane "${spec%%=*}" "${spec#*=}" &
    pids+=($!)
    names+=("${spec%%=*}")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[i]}" || failed+=("${names[i]}")
  done
  for i in "${failed[@]}"; do replay "$i"; done
  for i in "${failed[@]}"; do printf 'lane %s failed\n' "$i" >&2; done
  ((${#failed[@]} == 0))
}

main "$@"
