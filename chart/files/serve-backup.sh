#!/usr/bin/env bash
# MariaDB: runs once per connection to the sidecar's backup port (socat EXEC, the socket is
# stdin/stdout); MySQL serves clones through its clone plugin instead.
# Protocol: the peer sends the release's backup token on one line; we answer "OK <pod>" followed
# by a physical backup stream, or "ERR <reason>" and close. A donor must answer, not be rebuilding
# and, on a replica, have applied every transaction it received (so that a primary recovering a
# lost datadir from it gets every write a replica acknowledged), even while the primary is down.
# Inputs (env): FLAVOR, HOSTNAME, BACKUP_TOKEN, MYSQL_BACKUP_PASSWORD, MYSQL_PROBE_PASSWORD,
#   CLONE_MAX_BANDWIDTH_MIB (0: no cap), SOCAT_PEERADDR (set by socat).
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

# usage: rate_limit MIB -- copies stdin to stdout, at most MIB MiB per second (0: no cap), in
# 1 MiB blocks. A steady pace: mariadb-backup's own --throttle moves its copy in bursts, long
# enough pauses for the recipient to take the stream for stalled.
rate_limit() {
  local mib=$1 report start=${EPOCHREALTIME/./} blocks=0 wait_us
  if ((mib == 0)); then
    cat
    return
  fi
  # dd reports "N bytes ... copied" on stderr (captured); its data goes to fd 3, the real stdout.
  while report=$(dd bs=1M count=1 iflag=fullblock 2>&1 >&3) &&
    [[ $report =~ (^|$'\n')([0-9]+)\ bytes ]] && ((BASH_REMATCH[2] > 0)); do
    blocks=$((blocks + 1))
    wait_us=$((start + blocks * 1000000 / mib - ${EPOCHREALTIME/./}))
    if ((wait_us > 0)); then sleep "$((wait_us / 1000000)).$(printf '%06d' $((wait_us % 1000000)))"; fi
  done 3>&1
  [[ -n ${report:-} && $report =~ (^|$'\n')0\ bytes ]] || { printf 'rate_limit: %s\n' "$report" >&2; return 1; }
}

# usage: check_donor -> prints why this pod cannot serve a backup now, and fails; succeeds when it can
check_donor() {
  local password=${MYSQL_PROBE_PASSWORD:?MYSQL_PROBE_PASSWORD is required} fields sqlt
  if [[ -e $RECLONE_MARK ]]; then printf 'being rebuilt\n'; return 1; fi
  if [[ -e $ERRANT_MARK ]]; then printf 'it has transactions the primary lacks\n'; return 1; fi
  if ! fields=$(replica_fields local_sql probe "$password"); then
    printf 'the server does not answer\n'
    return 1
  fi
  sqlt=$(field Slave_SQL_Running <<<"$fields") || sqlt=Yes
  if [[ $sqlt != Yes ]]; then printf 'its replication SQL thread is not running\n'; return 1; fi
  wait_applied 60 local_sql probe "$password" || return 1
  printf 'ok\n'
}

# Seconds a peer has to send its token line before the connection is closed.
TOKEN_SECONDS=${TOKEN_SECONDS:-5}

# usage: main -- checks the token and the donor, then streams
main() {
  local token reason peer=${SOCAT_PEERADDR:-unknown}
  if ! IFS= read -r -t "$TOKEN_SECONDS" -n 200 token; then
    warn "backup request from $peer sent no token"
    printf 'ERR no token\n'
    return 1
  fi
  if [[ $token != "${BACKUP_TOKEN:?BACKUP_TOKEN is required}" ]]; then
    warn "backup request from $peer rejected: wrong token"
    printf 'ERR forbidden\n'
    return 1
  fi
  if ! reason=$(check_donor); then
    log "backup request from $peer declined: $reason"
    printf 'ERR %s: %s\n' "$HOSTNAME" "$reason"
    return 1
  fi
  log "streaming a backup to $peer"
  printf 'OK %s\n' "$HOSTNAME"
  if stream_backup 2>"/tmp/backup-$$.log" | rate_limit "${CLONE_MAX_BANDWIDTH_MIB:-0}"; then
    log "backup to $peer complete"
  else
    warn "backup to $peer failed: $(tail -n 3 "/tmp/backup-$$.log")"
  fi
  rm -f "/tmp/backup-$$.log"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
