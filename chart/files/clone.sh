#!/usr/bin/env bash
# Init container (and the sidecar, to rebuild a replica): copies a physical backup from a ready
# peer into the PVC. Donors are tried in order: ordinal-1, the other replicas, then the primary.
# The stream goes to STAGING, is validated and prepared, and only then renamed to the datadir with
# a completion marker; a half-finished clone is wiped and retried, never started.
# Inputs (env): FLAVOR, HOSTNAME, SERVICE_NAME (headless Service), BACKUP_TOKEN.
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"

BACKUP_PORT=${BACKUP_PORT:-3307}
CLONE_RETRY_SECONDS=${CLONE_RETRY_SECONDS:-10}

# usage: donor_candidates ORDINAL -> peer ordinals in the order to try them
donor_candidates() {
  local ord=$1 i
  for ((i = ord - 1; i >= 1; i--)); do printf '%s\n' "$i"; done
  # Higher ordinals exist when a replica in the middle lost its PVC; stop at the first gap.
  for ((i = ord + 1; i <= ord + 5; i++)); do
    getent hosts "$(peer_host "$i")" >/dev/null 2>&1 || break
    printf '%s\n' "$i"
  done
  printf '0\n'
}

# usage: peer_host ORDINAL -> the stable DNS name of that pod
peer_host() {
  printf '%s-%s.%s\n' "${HOSTNAME%-*}" "$1" "${SERVICE_NAME:?SERVICE_NAME is required}"
}

# usage: backup_file DIR NAME -> path of DIR/xtrabackup_NAME or DIR/mariadb_backup_NAME (11.1+)
backup_file() {
  local f
  for f in "$1/xtrabackup_$2" "$1/mariadb_backup_$2"; do
    if [[ -f $f ]]; then
      printf '%s\n' "$f"
      return 0
    fi
  done
  return 1
}

# usage: receive_stream DIR -- reads the donor's status line, then unpacks the stream into DIR
receive_stream() {
  local status
  IFS= read -r status || { warn "donor closed the connection without answering"; return 1; }
  if [[ $status != "OK "* ]]; then
    warn "donor refused: ${status:0:200}"
    return 1
  fi
  log "donor ${status#OK } accepted; receiving the stream"
  "$STREAM_BIN" -x -C "$1"
}

# usage: binlog_gtid FILE -> the GTID set (third column, possibly over several lines) of FILE
binlog_gtid() {
  local _file _pos gtid='' line
  {
    IFS=$'\t ' read -r _file _pos gtid || true
    while IFS= read -r line; do gtid+=$line; done
  } <"$1"
  printf '%s\n' "${gtid//[[:space:]]/}"
}

# usage: clone_from HOST -- streams, validates and prepares a backup of HOST into STAGING
clone_from() {
  local host=$1 checkpoints binlog_info gtid
  rm -rf "$STAGING"
  mkdir -p "$STAGING"
  log "cloning from $host:$BACKUP_PORT"
  # The token goes first; ignoreeof keeps our sending side open after it, so socat never
  # half-closes and its -t timeout cannot cut a long stream. The donor closes when done.
  if ! printf '%s\n' "${BACKUP_TOKEN:?BACKUP_TOKEN is required}" |
    socat -t 5 'STDIN,ignoreeof!!STDOUT' \
      "TCP:$host:$BACKUP_PORT,connect-timeout=10,keepalive,keepidle=60,keepintvl=10,keepcnt=6" |
    receive_stream "$STAGING"; then
    warn "stream from $host failed"
    return 1
  fi
  checkpoints=$(backup_file "$STAGING" checkpoints) || { warn "stream from $host has no checkpoints file"; return 1; }
  backup_file "$STAGING" info >/dev/null || { warn "stream from $host is truncated (no info file)"; return 1; }
  binlog_info=$(backup_file "$STAGING" binlog_info) || { warn "stream from $host has no binlog position"; return 1; }
  file_has_line "$checkpoints" '^backup_type = full-backuped' || { warn "stream from $host is not a full backup"; return 1; }
  gtid=$(binlog_gtid "$binlog_info")
  [[ $gtid =~ ^[A-Za-z0-9_:,-]*$ ]] || { warn "unexpected GTID set in $binlog_info"; return 1; }
  log "stream complete (GTID set '$gtid'); preparing"
  "$BACKUP_BIN" --defaults-file="$MY_CNF" --prepare --target-dir="$STAGING" 2>&1 | tail -n 5 >&2 ||
    { warn "prepare failed"; return 1; }
  # XtraBackup marks a prepared backup full-prepared, mariadb-backup log-applied.
  file_has_line "$(backup_file "$STAGING" checkpoints)" '^backup_type = (full-prepared|log-applied)' ||
    { warn "prepare did not complete"; return 1; }
  # A clone must not share the donor's server_uuid (MySQL regenerates auto.cnf when missing).
  rm -f "$STAGING/auto.cnf"
  printf '%s\n' "$gtid" >"$STAGING/$SOURCE_GTID_FILE"
  printf 'cloned from %s %s\n' "$host" "$(date -u +%FT%TZ)" >"$STAGING/$COMPLETE_MARK"
  sync
}

# usage: clone_datadir -- loops over donors until a clone is in place at DATADIR
clone_datadir() {
  local ord i host
  ord=$(ordinal)
  while true; do
    for i in $(donor_candidates "$ord"); do
      host=$(peer_host "$i")
      if clone_from "$host"; then
        rm -rf "$DATADIR"
        mv "$STAGING" "$DATADIR"
        sync
        log "datadir cloned from $host"
        return 0
      fi
    done
    rm -rf "$STAGING"
    log "no donor could serve a backup yet; retrying in ${CLONE_RETRY_SECONDS}s"
    sleep "$CLONE_RETRY_SECONDS"
  done
}

# usage: main -- init container entry point
main() {
  # bash as PID 1 ignores TERM unless trapped; without this a pod deletion waits out its grace period.
  trap 'exit 143' TERM INT
  if (($(ordinal) == 0)); then
    log "ordinal 0 is the primary: nothing to clone"
    return 0
  fi
  if [[ -f $DATADIR/$COMPLETE_MARK ]]; then
    log "datadir already complete: nothing to clone"
    return 0
  fi
  if [[ -d $DATADIR ]]; then
    warn "removing an incomplete datadir left by an earlier attempt"
    rm -rf "$DATADIR"
  fi
  clone_datadir
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
