#!/usr/bin/env bash
# Exec probe for the server container (and the sidecar's donor check).
#   startup, liveness: the server answers (nothing more, so a busy server is not killed);
#   readiness: the primary (ordinal 0) is writable; a replica applies replication and its data
#              (the primary's heartbeat) is at most MAX_LAG_SECONDS old.
# It connects through the admin port (lib.sh local_sql): an application holding every connection
# does not make it fail.
# Inputs (env): FLAVOR, HOSTNAME, SERVICE_NAME, MYSQL_PROBE_PASSWORD, MAX_LAG_SECONDS and
#   MYSQL_REPLICATION_PASSWORD (readiness).
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"

PROBE_USER=probe
# Each client call ends within this many seconds (lib.sh bounded): the probe exits even when the
# server is frozen, so the kubelet sees the failure instead of waiting on it.
LOCAL_TIMEOUT=${PROBE_CLIENT_SECONDS:-2}
# Each other member asked for its heartbeat gets this long (a member on a lost node never answers).
PEER_TIMEOUT=${PROBE_PEER_SECONDS:-2}

# usage: probe_sql [CLIENT_ARGS...] <<<"SQL" -- local_sql as the probe account; dies naming the
# Secret's key when the server refuses its password (the kubelet puts a failed probe's output into
# the pod's events). One connection attempt: a frozen server costs one LOCAL_TIMEOUT, not two.
# shellcheck disable=SC2120 # replica_status passes CLIENT_ARGS (replica_fields' --column-names)
probe_sql() {
  local errors rc=0 why
  errors=$(mktemp /tmp/probe-errors.XXXXXX)
  local_sql "$PROBE_USER" "${MYSQL_PROBE_PASSWORD:?MYSQL_PROBE_PASSWORD is required}" "$@" 2>"$errors" || rc=$?
  if ((rc != 0)) && why=$(password_drift "$PROBE_USER" mysql-probe-password "$(<"$errors")"); then
    rm -f "$errors"
    die "$why"
  fi
  cat "$errors" >&2
  rm -f "$errors"
  return "$rc"
}

# usage: check_alive -- the server answers a ping
check_alive() {
  if [[ -e $RECLONE_MARK ]]; then
    # The server is down on purpose while the sidecar rebuilds the datadir.
    log "re-clone in progress"
    return 0
  fi
  local_ping "$PROBE_USER" "${MYSQL_PROBE_PASSWORD:?MYSQL_PROBE_PASSWORD is required}" ||
    die "server does not answer"
}

# usage: check_writable -- the primary accepts writes
check_writable() {
  local ro
  # shellcheck disable=SC2119 # probe_sql's arguments are client options, not this script's
  ro=$(probe_sql <<<"SELECT @@global.read_only;") || die "server does not answer"
  [[ $ro == 0 ]] || die "primary is read-only"
}

# usage: check_replica -- the replica applies what it receives, and its data is fresh: the
# primary's heartbeat row it holds is at most MAX_LAG_SECONDS old. Freshness, not the I/O thread's
# state: a replica keeps serving reads while the primary restarts, and a link that dropped
# silently (the I/O thread still says Yes) takes it out once its data is too old.
check_replica() {
  local max=${MAX_LAG_SECONDS:?MAX_LAG_SECONDS is required} status io sqlt lag _errno error age
  [[ ! -e $RECLONE_MARK ]] || die "re-clone in progress"
  [[ ! -e $ERRANT_MARK ]] || die "errant transactions, which the primary lacks: $(<"$ERRANT_MARK")"
  status=$(replica_status probe_sql) || die "server does not answer"
  [[ -n $status ]] || die "replication is not configured yet"
  read -r io sqlt lag _errno error <<<"$status"
  # The primary refusing the replication account's password: say what that means.
  if why=$(password_drift replication mysql-replication-password "$error"); then error="$error; $why"; fi
  [[ $sqlt == Yes ]] || die "replication SQL thread is not running ($sqlt)${error:+: ${error:0:200}}"
  age=$(local_sql "$PROBE_USER" "$MYSQL_PROBE_PASSWORD" \
    <<<"SELECT TIMESTAMPDIFF(SECOND, ts, UTC_TIMESTAMP(6)) FROM $HEARTBEAT_TABLE WHERE id = 1;" 2>/dev/null) ||
    age=''
  if [[ -z $age ]]; then
    # No heartbeat yet (a primary of an older chart version, or the first seconds of a release):
    # the replication threads' own view.
    [[ $io == Yes ]] || die "replication I/O thread is not running ($io): ${error:0:200}"
    [[ $lag =~ ^[0-9]+$ ]] || die "replication lag is unknown"
    ((lag <= max)) || die "replication lags ${lag}s (max ${max}s)"
    return 0
  fi
  [[ $age =~ ^-?[0-9]+$ ]] || die "unreadable heartbeat age '$age'"
  ((age <= max)) || check_nobody_fresher "$age" "I/O thread $io${error:+: ${error:0:200}}"
}

# usage: member_heartbeats -> "AGE TS HOST" for every other member of the release that answers
# within PEER_TIMEOUT (the primary's own row included): AGE in seconds by that member's clock, TS
# as the primary stamped it. Asked in parallel, as the replication account.
member_heartbeats() {
  local host
  for host in "$(peer_host 0)" $(existing_peers | while read -r i; do peer_host "$i"; done); do
    [[ $host == "$HOSTNAME".* ]] && continue
    LOCAL_TIMEOUT=$PEER_TIMEOUT sql_remote "$host" replication \
      "${MYSQL_REPLICATION_PASSWORD:?MYSQL_REPLICATION_PASSWORD is required}" --connect-timeout=1 \
      <<<"SELECT TIMESTAMPDIFF(SECOND, ts, UTC_TIMESTAMP(6)), ts, '${host%%.*}' FROM $HEARTBEAT_TABLE WHERE id = 1;" \
      2>/dev/null &
  done
  wait
}

# usage: check_nobody_fresher AGE DETAIL -- this replica's data is AGE seconds old (over the bound).
# It stays in mysql-read only while no member holds fresh data (the primary is gone for everyone, so
# reads serve the last state) and its copy is within MAX_LAG_SECONDS of the freshest one. Fails
# when a member has fresh data (this replica is cut off or behind) and when no member answers (a
# lone replica cannot tell a lost primary from its own isolation).
check_nobody_fresher() {
  local age=$1 detail=$2 max=$MAX_LAG_SECONDS peer_age ts host freshest='' from='' behind
  while IFS=$'\t' read -r peer_age ts host; do
    [[ $peer_age =~ ^-?[0-9]+$ && $ts =~ ^[0-9-]+\ [0-9:.]+$ ]] || continue
    ((peer_age > max)) || die "data is ${age}s old (max ${max}s) while $host's is ${peer_age}s old; $detail"
    if [[ $ts > $freshest ]]; then freshest=$ts from=$host; fi
  done < <(member_heartbeats)
  [[ -n $freshest ]] || die "data is ${age}s old (max ${max}s) and no other member answers; $detail"
  behind=$(local_sql "$PROBE_USER" "$MYSQL_PROBE_PASSWORD" \
    <<<"SELECT TIMESTAMPDIFF(SECOND, ts, '$freshest') FROM $HEARTBEAT_TABLE WHERE id = 1;") ||
    die "server does not answer"
  ((behind <= max)) || die "data is ${behind}s behind $from's (max ${max}s), and the primary's heartbeat is lost everywhere"
  log "data is ${age}s old, but no member holds fresher data (the primary is lost): serving it"
}

# usage: main MODE
main() {
  case ${1:-} in
    startup | liveness) check_alive ;;
    readiness)
      if (($(ordinal) == 0)); then check_writable; else check_replica; fi
      ;;
    *) die "usage: probe.sh startup|liveness|readiness" ;;
  esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
