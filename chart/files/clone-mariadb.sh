#!/usr/bin/env bash
# MariaDB's clone (sourced by clone.sh): the donor's sidecar streams `mariadb-backup --backup`
# after checking the release's backup token and its own readiness (serve-backup.sh); the stream is
# unpacked into STAGING, checked for completeness and prepared.
# Inputs (env): BACKUP_TOKEN, BACKUP_PORT (default 3307).
set -euo pipefail

BACKUP_PORT=${BACKUP_PORT:-3307}
STREAM_IDLE_SECONDS=${CLONE_STALL_SECONDS:-120}

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

# usage: binlog_gtid FILE -> the GTID position (third column, possibly over several lines) of FILE
binlog_gtid() {
  local _file _pos gtid='' line
  {
    IFS=$'\t ' read -r _file _pos gtid || true
    while IFS= read -r line; do gtid+=$line; done
  } <"$1"
  printf '%s\n' "${gtid//[[:space:]]/}"
}

# usage: donor_version INFO_FILE -> the donor's server version (server_version = 11.8.3-MariaDB...)
donor_version() {
  local key value
  while IFS='=' read -r key value; do
    if [[ ${key//[[:space:]]/} == server_version && $value =~ ([0-9]+\.[0-9]+\.[0-9]+) ]]; then
      printf '%s\n' "${BASH_REMATCH[1]}"
      return 0
    fi
  done <"$1"
  return 1
}

# usage: report_progress HOST -- logs how much of HOST's stream STAGING holds, every 30 s, forever
report_progress() {
  local mib
  while sleep 30; do
    mib=$(du -sm "$STAGING" 2>/dev/null) || mib=0
    log "stream from $1: ${mib%%[[:space:]]*} MiB received"
  done
}

# usage: clone_from HOST -- streams, validates and prepares a backup of HOST into STAGING; inside
# TLS with tls.enabled, the donor's certificate verified against the release's CA and its name.
# During a TLS switch-over (lib.sh tls_verifying fails), a donor that serves no verified TLS yet
# (a pod of the chart version before) is streamed as before TLS.
clone_from() {
  local host=$1
  if [[ -z ${TLS_DIR:-} ]]; then
    stream_from "$host" "TCP:$host:$BACKUP_PORT" ""
    return
  fi
  stream_from "$host" "OPENSSL:$host:$BACKUP_PORT,cafile=$TLS_DIR/ca.crt,verify=1" " over verified TLS" &&
    return 0
  tls_verifying && return 1
  warn "TLS switch-over: no verified TLS stream from $host (a pod of the chart version before?); trying without TLS"
  stream_from "$host" "TCP:$host:$BACKUP_PORT" " without TLS (switch-over)"
}

# usage: stream_from HOST SOCAT_ADDRESS HOW -- clone_from's copy through SOCAT_ADDRESS (HOW: for the log)
stream_from() {
  local host=$1 connect=$2 how=$3 checkpoints info binlog_info gtid version reporter rc=0
  rm -rf "$STAGING"
  mkdir -p "$STAGING"
  log "cloning from $host:$BACKUP_PORT (mariadb-backup stream$how)"
  report_progress "$host" &
  reporter=$!
  # The token goes first; ignoreeof keeps our sending side open after it, so socat never
  # half-closes and its -t timeout cannot cut a long stream. The donor closes when done; a donor
  # that sends nothing for STREAM_IDLE_SECONDS (frozen, partitioned) fails the clone (-T).
  if ! printf '%s\n' "${BACKUP_TOKEN:?BACKUP_TOKEN is required}" |
    socat -b "$STREAM_BUFFER_BYTES" -t 5 -T "$STREAM_IDLE_SECONDS" 'STDIN,ignoreeof!!STDOUT' \
      "$connect,connect-timeout=10,keepalive,keepidle=60,keepintvl=10,keepcnt=6" |
    receive_stream "$STAGING"; then
    rc=1
  fi
  kill "$reporter" 2>/dev/null || true
  wait "$reporter" 2>/dev/null || true
  if ((rc)); then
    warn "stream from $host failed"
    return 1
  fi
  checkpoints=$(backup_file "$STAGING" checkpoints) || { warn "stream from $host has no checkpoints file"; return 1; }
  info=$(backup_file "$STAGING" info) || { warn "stream from $host is truncated (no info file)"; return 1; }
  binlog_info=$(backup_file "$STAGING" binlog_info) || { warn "stream from $host has no binlog position"; return 1; }
  file_has_line "$checkpoints" '^backup_type = full-backuped' || { warn "stream from $host is not a full backup"; return 1; }
  gtid=$(binlog_gtid "$binlog_info")
  [[ $gtid =~ ^[A-Za-z0-9_:,-]*$ ]] || { warn "unexpected GTID position in $binlog_info"; return 1; }
  version=$(donor_version "$info") || { warn "stream from $host does not name its server version"; return 1; }
  log "stream complete (MariaDB $version, GTID position '$gtid'); preparing"
  "$BACKUP_BIN" --defaults-file="$MY_CNF" --prepare --target-dir="$STAGING" 2>&1 | tail -n 5 >&2 ||
    { warn "prepare failed"; return 1; }
  file_has_line "$(backup_file "$STAGING" checkpoints)" '^backup_type = (full-prepared|log-applied)' ||
    { warn "prepare did not complete"; return 1; }
  printf '%s\n' "$gtid" >"$STAGING/$SOURCE_GTID_FILE"
  # The system tables are the donor's: server.sh upgrades them if this server is newer.
  printf '%s\n' "$version" >"$STAGING/$SERVER_VERSION_FILE"
}

# usage: clone_finish -- nothing to clean up after a stream
clone_finish() { :; }
