#!/usr/bin/env bash
# Exec probe for the server container (and the sidecar's donor check).
#   startup, liveness: the server answers (nothing more, so a busy server is not killed);
#   readiness: the primary (ordinal 0) is writable; a replica runs both replication threads
#              and lags at most MAX_LAG_SECONDS.
# Inputs (env): FLAVOR, HOSTNAME, MYSQL_PROBE_PASSWORD, MAX_LAG_SECONDS (readiness).
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"

PROBE_USER=probe

# usage: check_alive -- the server answers a ping
check_alive() {
  if [[ -e $RECLONE_MARK ]]; then
    # The server is down on purpose while the sidecar rebuilds the datadir.
    log "re-clone in progress"
    return 0
  fi
  ping_server "$PROBE_USER" "${MYSQL_PROBE_PASSWORD:?MYSQL_PROBE_PASSWORD is required}" ||
    die "server does not answer"
}

# usage: check_writable -- the primary accepts writes
check_writable() {
  local ro
  ro=$(sql "$PROBE_USER" "${MYSQL_PROBE_PASSWORD:?MYSQL_PROBE_PASSWORD is required}" --connect-timeout=5 \
    <<<"SELECT @@global.read_only;") || die "server does not answer"
  [[ $ro == 0 ]] || die "primary is read-only"
}

# usage: check_replica -- replication threads run and lag is within the bound
check_replica() {
  local max=${MAX_LAG_SECONDS:?MAX_LAG_SECONDS is required} status io sqlt lag _rest
  [[ ! -e $RECLONE_MARK ]] || die "re-clone in progress"
  status=$(replica_status "$PROBE_USER" "${MYSQL_PROBE_PASSWORD:?MYSQL_PROBE_PASSWORD is required}") ||
    die "server does not answer"
  [[ -n $status ]] || die "replication is not configured yet, or the server does not answer"
  read -r io sqlt lag _rest <<<"$status"
  [[ $io == Yes ]] || die "replication I/O thread is not running ($io)"
  [[ $sqlt == Yes ]] || die "replication SQL thread is not running ($sqlt)"
  [[ $lag =~ ^[0-9]+$ ]] || die "replication lag is unknown"
  ((lag <= max)) || die "replication lags ${lag}s (max ${max}s)"
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
