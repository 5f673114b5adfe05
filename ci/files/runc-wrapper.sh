#!/usr/bin/env bash
# A runc wrapper for VMs whose capability bounding set lacks CAP_SYS_RESOURCE.
# Docker asks for that capability in every --privileged container (and in `docker exec` into
# one), and runc then fails with "unable to apply caps: operation not permitted". This drops
# CAP_SYS_RESOURCE from the OCI spec runc is handed, then runs the real runc unchanged.
# Installed by ci/docker.sh as dockerd's default runtime, only on hosts that need it.
set -euo pipefail

REAL_RUNC=${REAL_RUNC:-/usr/sbin/runc}
FILTER='walk(if type == "object" and has("bounding") then with_entries(.value |= (if type == "array" then map(select(. != "CAP_SYS_RESOURCE")) else . end)) else . end)'

# usage: strip_caps FILE  (rewrites FILE in place)
strip_caps() {
  local file=$1 tmp
  [[ -f $file ]] || return 0
  tmp=$(mktemp "$file.XXXXXX")
  jq -c "$FILTER" "$file" >"$tmp" && mv "$tmp" "$file"
}

args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --bundle | -b) strip_caps "${args[i + 1]}/config.json" ;;
    --bundle=*) strip_caps "${args[i]#--bundle=}/config.json" ;;
    --process | -p) strip_caps "${args[i + 1]}" ;;
    --process=*) strip_caps "${args[i]#--process=}" ;;
  esac
done
exec "$REAL_RUNC" "$@"
