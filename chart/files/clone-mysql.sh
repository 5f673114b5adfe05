#!/usr/bin/env bash
# MySQL's clone (sourced by clone.sh): the clone plugin. A throw-away server of this image (its
# own datadir under /tmp, socket only, no TCP listener) runs CLONE INSTANCE FROM the donor into
# STAGING (DATA DIRECTORY) over TLS, as the donors' clone account (BACKUP_ADMIN only); the clone
# carries the donor's gtid_executed. A donor whose GTID set is not contained in the primary's is
# skipped: it holds transactions the primary never had.
# A watchdog follows the clone's progress: a clone that moves no data for CLONE_STALL_SECONDS (a
# frozen donor keeps its connection open) is abandoned by killing the throw-away server.
# Inputs (env): MYSQL_BACKUP_PASSWORD (password of the clone account), CLONE_MAX_BANDWIDTH_MIB
#   (0: no cap), CLONE_STALL_SECONDS (default 120).
set -euo pipefail

CLONE_USER=clone
CLONE_STALL_SECONDS=${CLONE_STALL_SECONDS:-120}
# Seconds between two looks at the clone's progress (and between progress lines in the log).
CLONE_WATCH_SECONDS=${CLONE_WATCH_SECONDS:-5}
RECIPIENT_DIR=${RECIPIENT_DIR:-/tmp/clone-recipient}
# The recipient is lib.sh's private server, on its own socket, root without a password.
# shellcheck disable=SC2034 # read by lib.sh's start_boot_server and boot_sql
BOOT_SOCKET=$RECIPIENT_DIR.sock BOOT_START_SECONDS=120 BOOT_ROOT_PASSWORD=''

# usage: start_recipient -- initialises and starts the throw-away server (once per clone_datadir)
start_recipient() {
  local args=(--pid-file="$RECIPIENT_DIR.pid" --skip-log-bin --super-read-only=OFF --read-only=OFF
    --skip-replica-start)
  if [[ -n $BOOT_PID ]] && kill -0 "$BOOT_PID" 2>/dev/null; then return 0; fi
  rm -rf "$RECIPIENT_DIR" "$RECIPIENT_DIR".*
  log "starting a throw-away server to run the clone"
  "$SERVER_BIN" --defaults-file="$MY_CNF" --datadir="$RECIPIENT_DIR" "${args[@]}" --initialize-insecure ||
    die "could not initialise the throw-away server; see its log above"
  start_boot_server "$RECIPIENT_DIR" "${args[@]}"
}

# usage: clone_finish -- stops the throw-away server and removes its datadir
clone_finish() {
  if [[ -n $BOOT_PID ]]; then
    "$ADMIN_BIN" --defaults-file=<(client_cnf root '' "$BOOT_SOCKET") shutdown >/dev/null 2>&1 ||
      kill "$BOOT_PID" 2>/dev/null || true
    wait "$BOOT_PID" 2>/dev/null || true
    BOOT_PID=
  fi
  rm -rf "$RECIPIENT_DIR" "$RECIPIENT_DIR".*
}

# usage: gtid_of HOST -> HOST's gtid_executed on one line, asked over TLS as the clone account
gtid_of() {
  local ssl=(--ssl-mode=REQUIRED)
  if tls_verifying; then ssl=(); fi  # sql_remote verifies the certificate then
  sql_remote "$1" "$CLONE_USER" "${MYSQL_BACKUP_PASSWORD:?MYSQL_BACKUP_PASSWORD is required}" \
    "${ssl[@]}" <<<"$GTID_EXECUTED_SQL"
}

# usage: clone_bytes -> bytes the running clone has moved so far (read and sent, every stage)
clone_bytes() {
  boot_sql <<<"SELECT COALESCE(SUM(DATA) + SUM(NETWORK), 0) FROM performance_schema.clone_progress;"
}

# usage: watch_clone PID HOST -- waits for the client running CLONE INSTANCE (PID) and returns its
# status; logs progress; when no byte moves for CLONE_STALL_SECONDS, kills the throw-away server
# (which ends the clone, however its donor is stuck) and fails
watch_clone() {
  local pid=$1 host=$2 bytes last=-1 still=0 ticks=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    ((++ticks % CLONE_WATCH_SECONDS == 0)) || continue
    bytes=$(clone_bytes 2>/dev/null) || bytes=$last
    if [[ $bytes == "$last" ]]; then still=$((still + CLONE_WATCH_SECONDS)); else still=0 last=$bytes; fi
    if ((ticks % 30 == 0)); then log "clone from $host: $((last / 1048576)) MiB moved"; fi
    if ((still >= CLONE_STALL_SECONDS)); then
      warn "clone from $host moved no data for ${still}s: abandoning it"
      kill -KILL "$BOOT_PID" 2>/dev/null || true
      wait "$BOOT_PID" 2>/dev/null || true
      BOOT_PID=
      wait "$pid" 2>/dev/null || true
      return 1
    fi
  done
  wait "$pid"
}

# usage: clone_tls_sql -> tls_verifying: the recipient trusts the release's CA for the donor's
# certificate (the clone itself always runs over TLS: REQUIRE SSL)
clone_tls_sql() {
  if tls_verifying; then printf "SET GLOBAL clone_ssl_ca = '%s/ca.crt';\n" "$TLS_DIR"; fi
}

# usage: clone_from HOST -- clones HOST into STAGING with the clone plugin and checks the result
clone_from() {
  local host=$1 primary donor_gtid primary_gtid subset state errno error
  local bandwidth=${CLONE_MAX_BANDWIDTH_MIB:-0}
  [[ $bandwidth =~ ^[0-9]+$ ]] || die "CLONE_MAX_BANDWIDTH_MIB must be a number of MiB/s, got '$bandwidth'"
  primary=$(peer_host 0)
  start_recipient
  donor_gtid=$(gtid_of "$host" 2>&1) || { warn "$host does not answer as a donor: ${donor_gtid:0:200}"; return 1; }
  # The primary recovering its datadir chose the donor itself (recover.sh): no primary to ask.
  if (($(ordinal) != 0)); then
    primary_gtid=$(gtid_of "$primary" 2>&1) || { warn "the primary $primary does not answer: ${primary_gtid:0:200}"; return 1; }
    subset=$(boot_sql <<<"SELECT GTID_SUBSET('$donor_gtid', '$primary_gtid');") || return 1
    if [[ $subset != 1 ]]; then
      warn "$host has transactions the primary lacks ($donor_gtid vs $primary_gtid); not a donor"
      return 1
    fi
  fi
  rm -rf "$STAGING"
  log "cloning from $host:3306 (clone plugin, TLS; donor GTID set '$donor_gtid')"
  # clone_donor_timeout_after_network_failure=0: a donor that dies fails the clone at once, and
  # the next donor is tried, instead of waiting minutes for this one to come back.
  boot_sql <<EOSQL &
SET GLOBAL clone_valid_donor_list = '$host:3306';
SET GLOBAL clone_donor_timeout_after_network_failure = 0;
SET GLOBAL clone_max_data_bandwidth = $bandwidth, clone_max_network_bandwidth = $bandwidth;
$(clone_tls_sql)
CLONE INSTANCE FROM '$CLONE_USER'@'$host':3306
  IDENTIFIED BY '$(sql_escape "$MYSQL_BACKUP_PASSWORD")'
  DATA DIRECTORY = '$STAGING' REQUIRE SSL;
EOSQL
  if ! watch_clone $! "$host"; then
    warn "clone from $host failed"
    return 1
  fi
  IFS=$'\t' read -r state errno error < <(boot_sql <<<"SELECT STATE, ERROR_NO, ERROR_MESSAGE FROM performance_schema.clone_status;")
  if [[ $state != Completed || $errno != 0 ]]; then
    warn "clone from $host ended as '$state' (error $errno: $error)"
    return 1
  fi
  [[ -f $STAGING/mysql.ibd ]] || { warn "clone from $host has no mysql.ibd"; return 1; }
  # Replication settings are adopted once by server.sh; the GTID set came with the clone.
  : >"$STAGING/$SOURCE_GTID_FILE"
  log "clone from $host complete"
}
