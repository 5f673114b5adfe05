#!/usr/bin/env bash
# helm test: writes a row on the primary through the write Service, then reads it back on every
# replica by its stable DNS name, polling each within a bound and reporting what it last saw.
# The replicas checked are the pods that exist (their DNS names resolve), so that a StatefulSet
# scaled outside helm (`kubectl scale`) is tested as it runs; REPLICA_COUNT (the release's
# replicaCount) is only compared with it.
# Inputs (env): FLAVOR, PRIMARY_SERVICE, SERVICE_NAME, STATEFULSET_NAME, REPLICA_COUNT,
#   MYSQL_ROOT_PASSWORD, TIMEOUT_SECONDS.
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"

# usage: on HOST <<<"SQL" -- runs SQL as root on HOST
on() {
  sql_remote "$1" root "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}"
}

# usage: wait_for_connection HOST -- polls HOST until it accepts a connection, or fails. A network
# policy engine may admit a pod a moment after it starts (kube-router adds its address to the
# allowed sources on its next sync): until then the primary refuses this pod.
wait_for_connection() {
  local host=$1 out='' deadline
  deadline=$((SECONDS + ${TIMEOUT_SECONDS:?TIMEOUT_SECONDS is required}))
  until out=$(on "$host" <<<"SELECT 1;" 2>&1); do
    ((SECONDS < deadline)) || die "$host refused every connection for ${TIMEOUT_SECONDS}s; last: ${out:0:300}"
    sleep 2
  done
}

# usage: wait_for_row HOST TABLE VALUE -- polls HOST until TABLE holds VALUE, or fails
wait_for_row() {
  local host=$1 table=$2 value=$3 seen='' deadline
  deadline=$((SECONDS + ${TIMEOUT_SECONDS:?TIMEOUT_SECONDS is required}))
  while ((SECONDS < deadline)); do
    seen=$(on "$host" <<<"SELECT v FROM $table;" 2>&1) || true
    if [[ $seen == "$value" ]]; then
      log "$host has the row"
      return 0
    fi
    sleep 2
  done
  die "$host did not show the row within ${TIMEOUT_SECONDS}s; last seen: '${seen:0:300}'"
}

# usage: main -- the test
main() {
  local table value i
  local -a peers
  table=chart_test.t_$(date +%s)_$RANDOM
  value=v$RANDOM$RANDOM
  wait_for_connection "${PRIMARY_SERVICE:?PRIMARY_SERVICE is required}"
  log "writing $value into $table through $PRIMARY_SERVICE"
  on "$PRIMARY_SERVICE" <<EOSQL
CREATE DATABASE IF NOT EXISTS chart_test;
CREATE TABLE $table (id INT PRIMARY KEY, v VARCHAR(64));
INSERT INTO $table VALUES (1, '$value');
EOSQL
  : "${STATEFULSET_NAME:?STATEFULSET_NAME is required}"
  mapfile -t peers < <(existing_peers)
  if ((${#peers[@]} + 1 != ${REPLICA_COUNT:?REPLICA_COUNT is required})); then
    warn "the StatefulSet runs $((${#peers[@]} + 1)) pod(s), the release says replicaCount=$REPLICA_COUNT" \
      "(scaled outside helm?): testing the pods that run; the next helm upgrade sets $REPLICA_COUNT again"
  fi
  for i in "${peers[@]}"; do
    wait_for_row "$(peer_host "$i")" "$table" "$value"
  done
  on "$PRIMARY_SERVICE" <<<"DROP TABLE $table;"
  log "replication verified on ${#peers[@]} replica(s)"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
