#!/usr/bin/env bash
# Exec probe for the server container (and the sidecar's donor check).
#   startup, liveness: the server answers (nothing more, so a busy server is not killed);
#   readiness: the primary (ordinal 0) is writable; a replica applies replication and its data
#              (the primary's heartbeat) is at most MAX_LAG_SECONDS old.
# It connects through the admin port (lib.sh local_sql): an application holding every connection
# does not make it fail.
# Inputs (env): FLAVOR, HOSTNAME, MYSQL_PROBE_PASSWORD, MAX_LAG_SECONDS (readiness).
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"

PROBE_USER=probe
# Each client call ends within this many seconds (lib.sh bounded): the probe exits even when the
# server is frozen, so the kubelet sees the failure instead of waiting on it.
LOCAL_TIMEOUT=${PROBE_CLIENT_SECONDS:-2}

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
  ro=$(local_sql "$PROBE_USER" "${MYSQL_PROBE_PASSWORD:?MYSQL_PROBE_PASSWORD is required}" \
    <<<"SELECT @@global.read_only;") || die "server does not answer"
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
  status=$(replica_status "$PROBE_USER" "${MYSQL_PROBE_PASSWORD:?MYSQL_PROBE_PASSWORD is required}") ||
    die "server does not answer"
  [[ -n $status ]] || die "replication is not configured yet"
  read -r io sqlt lag _errno error <<<"$status"
  [[ $sqlt == Yes ]] || die "replication SQL thread is not running ($sqlt)"
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
  ((age <= max)) || die "data is ${age}s old (max ${max}s); I/O thread $io${error:+: ${error:0:200}}"
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
