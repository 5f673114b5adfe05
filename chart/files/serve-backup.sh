#!/usr/bin/env bash
# MariaDB: runs once per connection to the sidecar's backup port (socat EXEC, the socket is
# stdin/stdout); MySQL serves clones through its clone plugin instead.
# Protocol: the peer sends the release's backup token on one line; we answer "OK <pod>" followed
# by a physical backup stream, or "ERR <reason>" and close. A donor must itself be ready.
# Inputs (env): FLAVOR, HOSTNAME, BACKUP_TOKEN, MYSQL_BACKUP_PASSWORD, MYSQL_PROBE_PASSWORD,
#   SOCAT_PEERADDR (set by socat).
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"

# usage: stream_backup -- writes a full backup of the local server to stdout
stream_backup() {
  local work
  work=$(mktemp -d /tmp/backup.XXXXXX)
  mkdir "$work/target"
  # shellcheck disable=SC2064 # expand now: the directory is fixed for this run
  trap "rm -rf '$work'" EXIT
  (umask 077 && {
    cat "$MY_CNF"
    client_cnf backup "${MYSQL_BACKUP_PASSWORD:?MYSQL_BACKUP_PASSWORD is required}"
  } >"$work/backup.cnf")
  # Backup tools read their option file more than once, so it is a 0600 file, not a pipe.
  "$BACKUP_BIN" --defaults-file="$work/backup.cnf" --backup --stream=xbstream \
    --target-dir="$work/target"
}

# usage: main -- checks the token and readiness, then streams
main() {
  local token peer=${SOCAT_PEERADDR:-unknown}
  if ! IFS= read -r -t 10 token; then
    warn "backup request from $peer sent no token"
    printf 'ERR no token\n'
    return 1
  fi
  if [[ $token != "${BACKUP_TOKEN:?BACKUP_TOKEN is required}" ]]; then
    warn "backup request from $peer rejected: wrong token"
    printf 'ERR forbidden\n'
    return 1
  fi
  if ! bash "$SCRIPTS/probe.sh" readiness >/dev/null 2>&1; then
    log "backup request from $peer declined: $HOSTNAME is not ready"
    printf 'ERR %s is not ready\n' "$HOSTNAME"
    return 1
  fi
  log "streaming a backup to $peer"
  printf 'OK %s\n' "$HOSTNAME"
  if stream_backup 2>"/tmp/backup-$$.log"; then
    log "backup to $peer complete"
  else
    warn "backup to $peer failed: $(tail -n 3 "/tmp/backup-$$.log")"
  fi
  rm -f "/tmp/backup-$$.log"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
