#!/usr/bin/env bash
# Runs shell commands side by side ("lanes"), each line of output prefixed with its lane's name;
# waits for all of them and fails when any failed. `make test` runs the two flavors' suites this
# way: on 2 cores they mostly wait on the cluster, not on each other.
#   usage: ci/lanes.sh NAME=COMMAND [NAME=COMMAND...]
set -euo pipefail

# usage: lane NAME COMMAND -- runs COMMAND, output prefixed "[NAME] ", and reports its time
lane() {
  local name=$1 command=$2 start=$SECONDS rc=0
  bash -c "$command" 2>&1 | sed -u "s/^/[$name] /" || rc=$?
  printf '[%s] lane finished: exit %s after %s s\n' "$name" "$rc" $((SECONDS - start))
  return "$rc"
}

main() {
  local spec pids=() names=() i rc=0
  (($# > 0)) || { printf 'usage: ci/lanes.sh NAME=COMMAND...\n' >&2; exit 2; }
  for spec in "$@"; do
    [[ $spec == *=* ]] || { printf 'not NAME=COMMAND: %s\n' "$spec" >&2; exit 2; }
    lane "${spec%%=*}" "${spec#*=}" &
    pids+=($!)
    names+=("${spec%%=*}")
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[i]}"; then
      printf 'lane %s failed\n' "${names[i]}" >&2
      rc=1
    fi
  done
  exit "$rc"
}

main "$@"
