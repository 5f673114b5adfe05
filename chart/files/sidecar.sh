#!/usr/bin/env bash
# Sidecar: on a replica, points replication at the primary (on every start: idempotent, GTID
# auto-positioning resumes where the replica is; over verified TLS once the primary presents the
# release's certificate), watches for errant transactions, and rebuilds
# the replica from a peer when the primary no longer has the binlogs it needs (I/O thread error
# 1236 / 13114 about purged binlogs); on the primary, writes the heartbeat. MariaDB: serves backups
# to peers of this release on BACKUP_PORT (MySQL's server serves clones itself, through its clone
# plugin). It talks to the local server through the admin port (lib.sh local_sql).
# Inputs (env): FLAVOR, HOSTNAME, SERVICE_NAME, PRIMARY_HOST, MYSQL_ROOT_PASSWORD,
#   MYSQL_REPLICATION_PASSWORD, MYSQL_BACKUP_PASSWORD, MYSQL_PROBE_PASSWORD, BACKUP_TOKEN.
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"
# shellcheck source=clone.sh
source "$SCRIPTS/clone.sh"

MONITOR_SECONDS=${MONITOR_SECONDS:-10}
# Consecutive checks with a fatal binlog error before the replica is rebuilt.
RECLONE_AFTER_CHECKS=${RECLONE_AFTER_CHECKS:-3}

# usage: root_sql <<<"SQL" -- SQL as root on the local server (admin port; lib.sh local_sql)
root_sql() {
  local_sql root "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}"
}

# usage: wait_for_server -- blocks until the local server answers and accepts root's password from
# the Secret; while it refuses that password (the Secret no longer matches the datadir), says so
# every minute and keeps waiting (changing the datadir's password to the Secret's ends the wait)
wait_for_server() {
  local i=0 errors why
  until ping_server root "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}"; do
    if ((i++ % 30 == 0)); then log "waiting for the local server"; fi
    sleep 1
  done
  i=0
  # mysqladmin ping succeeds on a refused password too: a statement tells.
  until errors=$(root_sql <<<"SELECT 1;" 2>&1 >/dev/null); do
    if why=$(password_drift root mysql-root-password "$errors"); then
      if ((i++ % 60 == 0)); then warn "$why"; fi
    elif ((i++ % 30 == 0)); then
      log "waiting for the local server: ${errors:0:200}"
    fi
    sleep 1
  done
}

# usage: verify_primary_once -- TLS switch-over: succeeds once the primary presents the release's
# certificate (a verifying connection as the replication account), and records it in
# TLS_VERIFIED_MARK: from then on this pod verifies every peer (lib.sh tls_verifying)
verify_primary_once() {
  TLS_SWITCHOVER='' sql_remote "$PRIMARY_HOST" replication "$MYSQL_REPLICATION_PASSWORD" \
    <<<"SELECT 1;" >/dev/null 2>&1 || return 1
  printf 'verified %s %s\n' "$PRIMARY_HOST" "$(date -u +%FT%TZ)" >"$TLS_VERIFIED_MARK" ||
    warn "could not record the verified primary in $TLS_VERIFIED_MARK (full volume?)"
}

# usage: configure_replication -- (re)points this replica at the primary and starts it: over TLS,
# the primary's certificate verified against the release's CA and its name (tls.enabled); during a
# TLS switch-over, as before TLS until the primary presents the release's certificate
# (TLS_PENDING=1 then: monitor checks again)
configure_replication() {
  local host pass verified=0 how="without TLS" tls_opts=""
  host=$(sql_escape "${PRIMARY_HOST:?PRIMARY_HOST is required}")
  pass=$(sql_escape "${MYSQL_REPLICATION_PASSWORD:?MYSQL_REPLICATION_PASSWORD is required}")
  TLS_PENDING=0
  if [[ -n ${TLS_DIR:-} ]] && { tls_verifying || verify_primary_once; }; then
    verified=1 how="TLS, certificate verified"
  elif [[ -n ${TLS_DIR:-} ]]; then
    TLS_PENDING=1 how="as before TLS: TLS switch-over, the primary does not present the release's certificate yet"
  fi
  # Stopping replication that is not running only warns; ignore it either way.
  if [[ $FLAVOR == mariadb ]]; then
    ((!verified)) || tls_opts=", MASTER_SSL=1, MASTER_SSL_CA='$TLS_DIR/ca.crt', MASTER_SSL_VERIFY_SERVER_CERT=1"
    root_sql <<<"STOP SLAVE;" >/dev/null 2>&1 || true
    root_sql <<EOSQL
CHANGE MASTER TO MASTER_HOST='$host', MASTER_PORT=3306, MASTER_USER='replication',
  MASTER_PASSWORD='$pass', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=10$tls_opts;
START SLAVE;
EOSQL
  else
    ((!verified)) || tls_opts=", SOURCE_SSL=1, SOURCE_SSL_CA='$TLS_DIR/ca.crt', SOURCE_SSL_VERIFY_SERVER_CERT=1"
    root_sql <<<"STOP REPLICA;" >/dev/null 2>&1 || true
    root_sql <<EOSQL
CHANGE REPLICATION SOURCE TO SOURCE_HOST='$host', SOURCE_PORT=3306, SOURCE_USER='replication',
  SOURCE_PASSWORD='$pass', SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1,
  SOURCE_CONNECT_RETRY=10, SOURCE_RETRY_COUNT=86400$tls_opts;
START REPLICA;
EOSQL
  fi
  if ((TLS_PENDING)); then
    warn "replication from $PRIMARY_HOST configured and started ($how; checked every ${MONITOR_SECONDS}s)"
  else
    log "replication from $PRIMARY_HOST configured and started ($how)"
  fi
}

# usage: ensure_primary_objects -- on the primary, on every start (idempotent; replicated to every
# pod): the heartbeat table the replicas' readiness reads; the probe account on the admin port
# (lib.sh admin_accounts_sql); the replication account may read a
# replica's status (a primary that lost its volume compares its peers with it) and the heartbeat
# (a stale replica's readiness asks the other members whether anyone has fresher data); MySQL: the donors'
# clone account (a datadir made before the chart cloned with the clone plugin lacks it).
ensure_primary_objects() {
  local monitor='REPLICATION CLIENT'
  [[ $FLAVOR == mariadb ]] && monitor='SLAVE MONITOR'
  root_sql <<EOSQL
CREATE DATABASE IF NOT EXISTS mysql_chart;
CREATE TABLE IF NOT EXISTS $HEARTBEAT_TABLE (id TINYINT UNSIGNED PRIMARY KEY,
  ts DATETIME(6) NOT NULL, server_id INT UNSIGNED NOT NULL);
$(admin_accounts_sql "${MYSQL_PROBE_PASSWORD:?MYSQL_PROBE_PASSWORD is required}")
GRANT SELECT ON $HEARTBEAT_TABLE TO 'probe'@'localhost', 'probe'@'127.0.0.1', 'replication'@'%';
GRANT $monitor ON *.* TO 'replication'@'%';
$(if tls_verifying; then printf '%s\n' "ALTER USER 'replication'@'%' REQUIRE SSL;"; fi)
EOSQL
  [[ $FLAVOR == mysql ]] || return 0
  [[ $(root_sql <<<"SELECT COUNT(*) FROM mysql.user WHERE user = 'clone';") == 0 ]] || return 0
  clone_account_sql "${MYSQL_BACKUP_PASSWORD:?MYSQL_BACKUP_PASSWORD is required}" | root_sql
  log "created the clone account the replicas clone with"
}

# Seconds the primary waits, at most, for a replica to connect before its first write (semi-sync).
ACK_WAIT_SECONDS=${ACK_WAIT_SECONDS:-60}

# usage: wait_for_acknowledger -- on the primary, before its first write: with semi-sync on and no
# replica connected, a commit waits out the semi-sync timeout, and a backup taken meanwhile waits
# for that commit (mariadb-backup's BACKUP STAGE), as at install, where the first replica clones
# from here before it can acknowledge anything. Waits until a replica is connected (at most
# ACK_WAIT_SECONDS); returns at once with semi-sync off or already acknowledged.
wait_for_acknowledger() {
  local status=performance_schema.global_status source=source sql i
  if [[ $FLAVOR == mariadb ]]; then status=information_schema.GLOBAL_STATUS source=master; fi
  sql="SELECT COUNT(*) FROM $status s JOIN $status c
    ON s.VARIABLE_NAME = 'Rpl_semi_sync_${source}_status' AND c.VARIABLE_NAME = 'Rpl_semi_sync_${source}_clients'
    WHERE s.VARIABLE_VALUE = 'ON' AND c.VARIABLE_VALUE = '0';"
  for ((i = 0; i < ACK_WAIT_SECONDS * 2; i++)); do
    [[ $(root_sql <<<"$sql" 2>/dev/null) == 1 ]] || return 0
    if ((i == 0)); then
      log "semi-sync is on and no replica is connected: waiting for one (at most ${ACK_WAIT_SECONDS}s) before the first write"
    fi
    sleep 0.5
  done
  log "no replica connected within ${ACK_WAIT_SECONDS}s; writing anyway (the write waits out the semi-sync timeout)"
}

# usage: heartbeat -- the primary stamps the heartbeat row every second, forever (background)
heartbeat() {
  local failing=0
  while true; do
    if root_sql <<<"REPLACE INTO $HEARTBEAT_TABLE VALUES (1, UTC_TIMESTAMP(6), @@server_id);" 2>/dev/null; then
      if ((failing)); then log "heartbeat resumed"; fi
      failing=0
    else
      if ((!failing)); then warn "cannot write the heartbeat; retrying every second"; fi
      failing=1
    fi
    sleep 1
  done
}

# usage: free_kib -> KiB free on the volume
free_kib() {
  df -Pk "$DATA_ROOT" | { read -r _ && read -r _ _ _ free _ && printf '%s\n' "$free"; }
}

# usage: make_room -- before a rebuild: when the volume cannot hold a copy next to the old datadir,
# removes the old one first (a replica is rebuilt only when the primary has all its transactions)
make_room() {
  local used free
  [[ -d $DATADIR ]] || return 0
  used=$(du -sk "$DATADIR" | cut -f1)
  free=$(free_kib)
  log "rebuild: the old datadir uses ${used} KiB, ${free} KiB free"
  if ((free < used + used / 10)); then
    warn "not enough room for a copy next to the old datadir: removing it first"
    rm -rf "$DATADIR"
  fi
}

# usage: reclone -- stops the local server and replaces the datadir with a fresh clone
reclone() {
  local i
  touch "$RECLONE_MARK"
  if ping_server root "$MYSQL_ROOT_PASSWORD"; then
    log "shutting the server down for the rebuild"
    # The SHUTDOWN statement returns at once; `mysqladmin shutdown` would wait for the pid file to
    # go, forever when the server is killed during the shutdown. The wait below is on SERVER_PARKED.
    sql root "$MYSQL_ROOT_PASSWORD" <<<"SHUTDOWN;" || true
  fi
  # The server container restarts into server.sh, which parks while RECLONE_MARK exists and says
  # so; however the server ended (clean shutdown, killed during it), nothing runs on the datadir then.
  for ((i = 0; i < 600; i++)); do
    if [[ -e $SERVER_PARKED ]] && ! ping_server root "$MYSQL_ROOT_PASSWORD"; then break; fi
    if ((i % 60 == 0)); then log "waiting for the server container to park for the rebuild"; fi
    sleep 1
  done
  ((i < 600)) || die "the server container did not park within 600s; cannot rebuild the datadir"
  make_room
  clone_datadir
  rm -f "$RECLONE_MARK"
  log "replica rebuilt; the server container starts on the new datadir"
}

# usage: errant_gtids -> the transactions this replica has that the primary lacks (empty: none);
# fails when a server does not answer
errant_gtids() {
  local mine theirs binlog_pos slave_pos part
  if [[ $FLAVOR == mariadb ]]; then
    # A MariaDB position cannot name another server's history: a write made here shows as this
    # server's binlog position ahead of the position replicated from the primary, under another
    # server-id than the primary's (a replicated transaction is binlogged a moment, or while the
    # disk is full a long time, before gtid_slave_pos advances; gtid_strict_mode stops
    # replication at the primary's next transaction in that domain); a history the primary
    # lacks, as a position ahead of the primary's.
    IFS=$'\t' read -r binlog_pos slave_pos mine < <(root_sql \
      <<<"SELECT @@global.gtid_binlog_pos, @@global.gtid_slave_pos, @@global.gtid_current_pos;") || return 1
    theirs=$(sql_remote "$PRIMARY_HOST" replication "$MYSQL_REPLICATION_PASSWORD" \
      <<<"SELECT @@global.gtid_binlog_pos;") || return 1
    for part in $(position_ahead "$binlog_pos" "$slave_pos"); do
      [[ $part == *-"$SERVER_ID_BASE"-* ]] || printf '%s\n' "$part"
    done
    position_ahead "$mine" "$theirs"
    return 0
  fi
  # This replica's set first: anything the primary had before is in the primary's set read after.
  mine=$(root_sql <<<"$GTID_EXECUTED_SQL") || return 1
  theirs=$(sql_remote "$PRIMARY_HOST" replication "$MYSQL_REPLICATION_PASSWORD" \
    <<<"$GTID_EXECUTED_SQL") || return 1
  root_sql <<<"SELECT GTID_SUBTRACT('$mine', '$theirs');"
}

# usage: check_errant -- keeps ERRANT_MARK in step with errant_gtids (unchanged when unknown)
check_errant() {
  local errant
  errant=$(errant_gtids 2>/dev/null) || return 0
  if [[ -n $errant ]]; then
    # Confirmed by a second look: MariaDB binlogs a replicated transaction a moment before it
    # advances gtid_slave_pos.
    sleep 2
    errant=$(errant_gtids 2>/dev/null) || return 0
  fi
  errant=${errant//$'\n'/,}
  if [[ -z $errant ]]; then
    if [[ -e $ERRANT_MARK ]]; then log "no errant transactions any more"; fi
    rm -f "$ERRANT_MARK"
    return 0
  fi
  if [[ ! -e $ERRANT_MARK || $(<"$ERRANT_MARK") != "$errant" ]]; then
    warn "this replica has transactions the primary lacks ($errant): it leaves mysql-read, serves" \
      "no clone and is never rebuilt automatically. To discard them: kubectl delete pvc" \
      "data-$HOSTNAME --wait=false && kubectl delete pod $HOSTNAME (it re-clones); to keep them," \
      "apply them on the primary first (chart/README.md, Errant transactions)"
  fi
  printf '%s\n' "$errant" >"$ERRANT_MARK"
}

# usage: full_volume_error ERRNO ERROR -- succeeds for an applier's error on a full volume: the
# table is full (1114), the disk is full (1021), or any error naming ENOSPC (errno 28)
full_volume_error() {
  [[ $1 == 1114 || $1 == 1021 || $2 == *'No space left'* || $2 =~ (Errcode|errno|error):?\ 28[^0-9] ]]
}
# MiB that must be free again before an applier a full volume stopped is started again.
RESUME_ROOM_MIB=${RESUME_ROOM_MIB:-16}

# usage: warn_if_volume_full -- says once, while the volume has less than RESUME_ROOM_MIB free, that it
# is full: before any query, since a server waiting for room can hold the status queries meanwhile
warn_if_volume_full() {
  local free
  free=$(free_kib) || return 0
  if ((free >= RESUME_ROOM_MIB * 1024)); then
    VOLUME_FULL_SAID=0
  elif ((!${VOLUME_FULL_SAID:-0})); then
    warn "the volume is full (${free} KiB free): the server cannot write until room is made (grow the claim or free space)"
    VOLUME_FULL_SAID=1
  fi
}

# usage: resume_after_full_volume SQL_RUNNING ERRNO ERROR -- an SQL thread that stopped because the
# volume was full is started again once RESUME_ROOM_MIB are free (the server itself waits for room
# only in the I/O thread). A thread stopped by hand or on any other error is left to a human.
resume_after_full_volume() {
  local sqlt=$1 errno=$2 error=$3 free start='START REPLICA SQL_THREAD;'
  if [[ $sqlt == Yes ]] || ! full_volume_error "$errno" "$error"; then
    FULL_WARNED=0
    return 0
  fi
  free=$(free_kib)
  if ((free < RESUME_ROOM_MIB * 1024)); then
    if ((!${FULL_WARNED:-0})); then
      # warn_if_volume_full has said that the volume is full; this says what it stopped.
      warn "the SQL thread stopped on the full volume (${free} KiB free; error $errno: ${error:0:300});" \
        "it starts again once ${RESUME_ROOM_MIB} MiB are free"
      FULL_WARNED=1
    fi
    return 0
  fi
  log "the volume has room again (${free} KiB free): starting the SQL thread the full volume stopped (error $errno)"
  [[ $FLAVOR == mariadb ]] && start='START SLAVE SQL_THREAD;'
  root_sql <<<"$start" || warn "could not start the SQL thread"
  FULL_WARNED=0
}

# At most this many backup connections are served at once (each runs serve-backup.sh); more wait in
# the listen queue. With serve-backup.sh's TOKEN_SECONDS, a peer that floods the port holds at most
# this many shells, each for seconds.
BACKUP_MAX_CONNECTIONS=4

# usage: serve_backups -- starts the backup listener in the background (pid in LISTENER_PID)
serve_backups() {
  local listen=TCP-LISTEN:$BACKUP_PORT
  # tls.enabled: the peer gets the stream (and sends its token) only inside TLS, this pod's
  # certificate presented; the peer verifies it.
  [[ -z ${TLS_DIR:-} ]] ||
    listen="OPENSSL-LISTEN:$BACKUP_PORT,cert=$TLS_DIR/tls.crt,key=$TLS_DIR/tls.key,verify=0"
  socat -d -b "$STREAM_BUFFER_BYTES" "$listen,reuseaddr,fork,max-children=$BACKUP_MAX_CONNECTIONS" \
    EXEC:"bash $SCRIPTS/serve-backup.sh" &
  LISTENER_PID=$!
  log "serving backups to peers on port $BACKUP_PORT${TLS_DIR:+ (TLS)}"
}

# usage: monitor ORDINAL -- watches the background jobs and, on a replica, fatal binlog errors
monitor() {
  local ord=$1 fatal=0 warned=0 purged status _io sqlt _lag errno error
  while true; do
    # Sleep in the background so that the TERM trap runs at once.
    sleep "$MONITOR_SECONDS" &
    wait $! || true
    if [[ -n ${LISTENER_PID:-} ]]; then kill -0 "$LISTENER_PID" 2>/dev/null || die "backup listener exited"; fi
    if [[ -n ${HEARTBEAT_PID:-} ]]; then kill -0 "$HEARTBEAT_PID" 2>/dev/null || die "heartbeat exited"; fi
    ((ord == 0)) && continue
    if ((${TLS_PENDING:-0})) && verify_primary_once; then
      log "TLS switch-over: the primary presents the release's certificate; replicating over verified TLS from now on"
      configure_replication
    fi
    warn_if_volume_full
    check_errant
    status=$(replica_status local_sql root "$MYSQL_ROOT_PASSWORD" 2>/dev/null) || continue
    read -r _io sqlt _lag errno error <<<"${status:-x x x 0}"
    # Only purged binlogs trigger a rebuild, and only of a replica whose transactions the primary
    # all has. Other fatal errors need a human: this replica may hold the only copy of that data.
    purged=0
    [[ ($errno == 1236 || $errno == 13114) && $error == *purged* ]] && purged=1
    if ((!purged)); then
      fatal=0 warned=0
    elif [[ -e $ERRANT_MARK ]]; then
      fatal=0
      if ((!warned)); then
        warn "the primary purged binlogs this replica needs, but it holds transactions the primary" \
          "lacks: not rebuilding it (see the errant transactions warning)"
        warned=1
      fi
    else
      fatal=$((fatal + 1))
      warn "the primary cannot serve the binlogs this replica needs (error $errno, $fatal/$RECLONE_AFTER_CHECKS)"
    fi
    resume_after_full_volume "$sqlt" "$errno" "$error"
    if ((fatal >= RECLONE_AFTER_CHECKS)); then
      reclone
      wait_for_server
      configure_replication
      fatal=0
    fi
  done
}

# usage: stop -- TERM/INT handler: bash as PID 1 would otherwise ignore TERM until the kill
stop() {
  log "stopping"
  if [[ -n ${LISTENER_PID:-} ]]; then kill "$LISTENER_PID" 2>/dev/null || true; fi
  if [[ -n ${HEARTBEAT_PID:-} ]]; then kill "$HEARTBEAT_PID" 2>/dev/null || true; fi
  exit 0
}

# usage: main -- sidecar entry point
main() {
  local ord
  trap stop TERM INT
  ord=$(ordinal)
  # A rebuild interrupted by a restart of this container is finished first.
  if [[ -e $RECLONE_MARK ]] && ((ord != 0)); then
    log "resuming an interrupted rebuild"
    reclone
  fi
  wait_for_server
  if ((ord != 0)); then
    configure_replication
    if [[ $FLAVOR == mariadb ]]; then serve_backups; fi
  else
    # Backups are served first, and the writes below wait for a replica that can acknowledge them
    # (semi-sync): at install, the first replica clones from here before it can.
    if [[ $FLAVOR == mariadb ]]; then serve_backups; fi
    # TLS switch-over: the primary is replaced last; every replica presents the certificate now.
    if [[ -n ${TLS_DIR:-} ]] && ! tls_verifying; then
      printf 'primary %s\n' "$(date -u +%FT%TZ)" >"$TLS_VERIFIED_MARK" ||
        warn "could not record the TLS switch-over in $TLS_VERIFIED_MARK (full volume?)"
      log "TLS switch-over: this primary presents the release's certificate; peers are verified from now on"
    fi
    wait_for_acknowledger
    ensure_primary_objects
    heartbeat &
    HEARTBEAT_PID=$!
    log "writing the heartbeat every second"
  fi
  monitor "$ord"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
