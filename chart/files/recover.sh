#!/usr/bin/env bash
# The primary without a datadir (sourced by clone.sh, ordinal 0): a first install, or a primary
# that lost its volume (claim deleted, node-bound volume gone, no persistence). Replicas may hold
# every acknowledged write, so the primary never starts empty while a peer exists: it waits until
# the peers answer, lets each apply what it received, picks the one whose GTID set contains every
# other's, and clones it. With no peer pod at all it is a first install: server.sh initialises.
# To give up the peers' data and start a new, empty datadir anyway:
#   kubectl exec <release>-0 -c clone -- touch /var/lib/mysql/force-bootstrap
# Inputs (env): MYSQL_REPLICATION_PASSWORD, RECOVERY_WAIT_SECONDS (how long to wait for every
#   peer before cloning from those that answer; default 300).
set -euo pipefail

FORCE_BOOTSTRAP=$DATA_ROOT/force-bootstrap
RECOVERY_WAIT_SECONDS=${RECOVERY_WAIT_SECONDS:-300}
# Seconds a peer gets to apply the transactions it received before it is asked for its GTID set.
APPLY_WAIT_SECONDS=${APPLY_WAIT_SECONDS:-60}

# usage: peer_sql HOST [CLIENT_ARGS...] <<<"SQL" -- SQL on HOST as the replication account
peer_sql() {
  sql_remote "$1" replication "${MYSQL_REPLICATION_PASSWORD:?MYSQL_REPLICATION_PASSWORD is required}" "${@:2}"
}

# usage: applied_gtid HOST -> HOST's GTID set, once it has applied every transaction it received
applied_gtid() {
  local host=$1 why executed=$GTID_EXECUTED_SQL
  [[ $FLAVOR == mariadb ]] && executed='SELECT @@global.gtid_current_pos;'
  if ! why=$(wait_applied "$APPLY_WAIT_SECONDS" peer_sql "$host"); then
    warn "$host: $why"
    return 1
  fi
  peer_sql "$host" <<<"$executed"
}

# usage: gtid_contains HOST A B -- succeeds when GTID set A contains B (MySQL: GTID_SUBSET, asked of
# HOST; MariaDB: per replication domain, A's sequence number is at least B's)
gtid_contains() {
  local host=$1 a=$2 b=$3
  if [[ $FLAVOR == mysql ]]; then
    [[ $(peer_sql "$host" <<<"SELECT GTID_SUBSET('$b', '$a');") == 1 ]]
  else
    [[ -z $(position_ahead "$b" "$a") ]]
  fi
}

# usage: most_advanced "HOST GTID"... -> the HOST whose GTID set contains every other's; fails
# when the peers diverge (each has transactions the other lacks: a human must choose)
most_advanced() {
  local best='' best_gtid='' host gtid entry
  for entry in "$@"; do
    read -r host gtid <<<"$entry"
    if [[ -z $best ]] || gtid_contains "$host" "$gtid" "$best_gtid"; then
      best=$host best_gtid=$gtid
    elif ! gtid_contains "$host" "$best_gtid" "$gtid"; then
      warn "peers diverge: $best has '$best_gtid', $host has '$gtid'; neither contains the other"
      return 1
    fi
  done
  printf '%s\n' "$best"
}

# usage: recover_primary -- clones the most advanced peer into DATADIR; returns without a datadir
# on a first install (no peer exists) or when forced
recover_primary() {
  local -a peers answered missing
  local i host gtid best deadline next_report=0
  mapfile -t peers < <(existing_peers)
  if ((${#peers[@]} == 0)); then
    log "no peer exists: a first install; server.sh initialises a new datadir"
    return 0
  fi
  warn "the primary has no datadir but ${#peers[@]} peer(s) exist: recovering from the most advanced one"
  deadline=$((SECONDS + RECOVERY_WAIT_SECONDS))
  while true; do
    if [[ -e $FORCE_BOOTSTRAP ]]; then
      warn "$FORCE_BOOTSTRAP exists: starting a new, empty datadir; the peers' data is given up"
      rm -f "$FORCE_BOOTSTRAP"
      return 0
    fi
    answered=() missing=()
    for i in "${peers[@]}"; do
      host=$(peer_host "$i")
      if gtid=$(applied_gtid "$host" 2>/dev/null); then answered+=("$host $gtid"); else missing+=("$host"); fi
    done
    if ((${#answered[@]} > 0 && (${#missing[@]} == 0 || SECONDS >= deadline))); then
      if ((${#missing[@]} > 0)); then
        warn "${missing[*]} did not answer within ${RECOVERY_WAIT_SECONDS}s; choosing among the others"
      fi
      log "peers: ${answered[*]}"
      if best=$(most_advanced "${answered[@]}") && try_clone "$best"; then return 0; fi
    fi
    if ((SECONDS >= next_report)); then
      warn "waiting for peers (${missing[*]:-none missing}; ${#answered[@]} answered). To give up their data and start empty: kubectl exec $HOSTNAME -c clone -- touch $FORCE_BOOTSTRAP"
      next_report=$((SECONDS + 60))
    fi
    sleep "$CLONE_RETRY_SECONDS"
  done
}
