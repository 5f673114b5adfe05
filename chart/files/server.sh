#!/usr/bin/env bash
# Main container: makes sure the datadir is complete, then runs the server in the foreground.
#  - ordinal 0 with no datadir: initialise it and create the chart's accounts (first install);
#  - a replica whose datadir is a fresh clone: adopt the clone's GTID position once;
#  - a replica being rebuilt by its sidecar: wait until the new datadir is in place;
#  - a datadir without the completion marker is never started.
# Inputs (env): FLAVOR, HOSTNAME, MYSQL_ROOT_PASSWORD, MYSQL_REPLICATION_PASSWORD,
#   MYSQL_BACKUP_PASSWORD, MYSQL_PROBE_PASSWORD, MYSQL_METRICS_PASSWORD,
#   optional MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD.
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"

BOOT_SOCKET=${BOOT_SOCKET:-${SOCKET%/*}/bootstrap.sock}
BOOT_PID=

# usage: start_boot_server DATADIR [SERVER_ARGS...] -- starts a private server (socket only)
start_boot_server() {
  local datadir=$1 i
  shift
  "$SERVER_BIN" --defaults-file="$MY_CNF" --datadir="$datadir" --skip-networking \
    --socket="$BOOT_SOCKET" "$@" &
  BOOT_PID=$!
  for ((i = 0; i < 300; i++)); do
    kill -0 "$BOOT_PID" 2>/dev/null || die "the bootstrap server exited; see its log above"
    if ping_server root "${BOOT_ROOT_PASSWORD-}" "$BOOT_SOCKET"; then return 0; fi
    sleep 1
  done
  die "the bootstrap server did not answer within 300s"
}

# usage: stop_boot_server -- clean shutdown of the private server, waits for it to exit
stop_boot_server() {
  "$ADMIN_BIN" --defaults-file=<(client_cnf root "${BOOT_ROOT_PASSWORD-}" "$BOOT_SOCKET") shutdown
  wait "$BOOT_PID" || die "the bootstrap server did not shut down cleanly"
  BOOT_PID=
}

# usage: boot_sql <<<"SQL" -- runs SQL as root on the private server
boot_sql() {
  sql root "${BOOT_ROOT_PASSWORD-}" --socket="$BOOT_SOCKET"
}

# usage: accounts_sql -> prints the SQL that creates the chart's accounts on a new datadir
accounts_sql() {
  local root repl backup probe metrics
  root=$(sql_escape "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}")
  repl=$(sql_escape "${MYSQL_REPLICATION_PASSWORD:?MYSQL_REPLICATION_PASSWORD is required}")
  backup=$(sql_escape "${MYSQL_BACKUP_PASSWORD:?MYSQL_BACKUP_PASSWORD is required}")
  probe=$(sql_escape "${MYSQL_PROBE_PASSWORD:?MYSQL_PROBE_PASSWORD is required}")
  metrics=$(sql_escape "${MYSQL_METRICS_PASSWORD:?MYSQL_METRICS_PASSWORD is required}")
  # Accounts are part of the datadir that replicas clone, so nothing here goes to the binlog.
  printf '%s\n' "SET SESSION sql_log_bin = 0;"
  if [[ $FLAVOR == mariadb ]]; then
    # mariadb-install-db leaves root@localhost (ALL PRIVILEGES) and, on some versions, socket
    # accounts for the OS user; keep only root and the system account mariadb.sys.
    printf '%s\n' \
      "DROP USER IF EXISTS 'mysql'@'localhost', ''@'localhost', ''@'%', 'root'@'127.0.0.1', 'root'@'::1';" \
      "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@''', @@hostname, '''');" \
      "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root';"
  else
    printf '%s\n' "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root';"
  fi
  printf '%s\n' \
    "CREATE USER 'root'@'%' IDENTIFIED BY '$root';" \
    "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;" \
    "CREATE USER 'replication'@'%' IDENTIFIED BY '$repl';" \
    "GRANT REPLICATION SLAVE ON *.* TO 'replication'@'%';" \
    "CREATE USER 'backup'@'localhost' IDENTIFIED BY '$backup';" \
    "GRANT RELOAD, PROCESS, LOCK TABLES, REPLICATION CLIENT ON *.* TO 'backup'@'localhost';" \
    "CREATE USER 'probe'@'localhost' IDENTIFIED BY '$probe' WITH MAX_USER_CONNECTIONS 5;" \
    "GRANT REPLICATION CLIENT ON *.* TO 'probe'@'localhost';" \
    "CREATE USER 'metrics'@'127.0.0.1' IDENTIFIED BY '$metrics' WITH MAX_USER_CONNECTIONS 3;" \
    "GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'metrics'@'127.0.0.1';" \
    "GRANT SELECT ON performance_schema.* TO 'metrics'@'127.0.0.1';"
  if [[ $FLAVOR == mariadb ]]; then
    # read_only does not bind READ_ONLY ADMIN holders, and ALL PRIVILEGES includes it: take it
    # away so that replicas refuse writes from root too. SLAVE MONITOR lets probes read status.
    printf '%s\n' \
      "REVOKE READ_ONLY ADMIN ON *.* FROM 'root'@'localhost', 'root'@'%';" \
      "GRANT SLAVE MONITOR ON *.* TO 'probe'@'localhost', 'metrics'@'127.0.0.1';"
  else
    # XtraBackup locks the instance for backup and reads these performance_schema tables.
    printf '%s\n' \
      "GRANT BACKUP_ADMIN ON *.* TO 'backup'@'localhost';" \
      "GRANT SELECT ON performance_schema.log_status TO 'backup'@'localhost';" \
      "GRANT SELECT ON performance_schema.keyring_component_status TO 'backup'@'localhost';" \
      "GRANT SELECT ON performance_schema.replication_group_members TO 'backup'@'localhost';"
  fi
  if [[ -n ${MYSQL_DATABASE:-} ]]; then
    printf '%s\n' "CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE//\`/\`\`}\`;"
  fi
  if [[ -n ${MYSQL_USER:-} ]]; then
    printf '%s\n' "CREATE USER '$(sql_escape "$MYSQL_USER")'@'%' IDENTIFIED BY '$(sql_escape "${MYSQL_PASSWORD:?MYSQL_PASSWORD is required with MYSQL_USER}")';"
    if [[ -n ${MYSQL_DATABASE:-} ]]; then
      printf '%s\n' "GRANT ALL PRIVILEGES ON \`${MYSQL_DATABASE//\`/\`\`}\`.* TO '$(sql_escape "$MYSQL_USER")'@'%';"
    fi
  fi
}

# usage: initialize_primary -- builds a new datadir in STAGING and moves it into place
initialize_primary() {
  log "no datadir: initialising a new $FLAVOR datadir"
  rm -rf "$STAGING"
  mkdir -p "$STAGING"
  if [[ $FLAVOR == mariadb ]]; then
    mariadb-install-db --defaults-file="$MY_CNF" --datadir="$STAGING" --skip-test-db \
      --auth-root-authentication-method=normal --skip-name-resolve >/dev/null
  else
    "$SERVER_BIN" --defaults-file="$MY_CNF" --datadir="$STAGING" --initialize-insecure
  fi
  BOOT_ROOT_PASSWORD=''
  start_boot_server "$STAGING"
  accounts_sql | boot_sql
  BOOT_ROOT_PASSWORD=$MYSQL_ROOT_PASSWORD
  stop_boot_server
  printf 'initialised %s\n' "$(date -u +%FT%TZ)" >"$STAGING/$COMPLETE_MARK"
  sync
  mv "$STAGING" "$DATADIR"
  log "datadir initialised; accounts root, replication, backup, probe, metrics${MYSQL_USER:+, $MYSQL_USER} created"
}

# usage: adopt_clone_position -- once after a clone: replication state = the backup's GTID set
adopt_clone_position() {
  local gtid stop stmts
  gtid=$(<"$DATADIR/$SOURCE_GTID_FILE")
  [[ $gtid =~ ^[A-Za-z0-9_:,-]*$ ]] || die "malformed GTID set in $SOURCE_GTID_FILE"
  log "fresh clone: adopting its GTID position '${gtid}'"
  BOOT_ROOT_PASSWORD=${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}
  if [[ $FLAVOR == mariadb ]]; then
    start_boot_server "$DATADIR" --skip-slave-start --read-only=OFF
    # The donor's binlogs and replica settings mean nothing here; gtid_slave_pos is where
    # replication resumes (MASTER_USE_GTID=slave_pos).
    stop="STOP SLAVE;"
    stmts="RESET SLAVE ALL; RESET MASTER; SET GLOBAL gtid_slave_pos = '$gtid';"
  else
    start_boot_server "$DATADIR" --skip-replica-start --super-read-only=OFF --read-only=OFF
    stop="STOP REPLICA;"
    stmts="RESET REPLICA ALL; RESET BINARY LOGS AND GTIDS;"
    [[ -n $gtid ]] && stmts+=" SET GLOBAL gtid_purged = '$gtid';"
  fi
  # Replication is not running (skip-*-start); RESET needs it stopped, so make sure of it.
  boot_sql <<<"$stop" >/dev/null 2>&1 || true
  boot_sql <<<"$stmts"
  stop_boot_server
  rm -f "$DATADIR/$SOURCE_GTID_FILE"
  sync
}

# usage: main -- prepares the datadir and execs the server
main() {
  local ord
  # bash as PID 1 ignores TERM unless trapped; without this a pod deletion waits out its grace period.
  trap 'exit 143' TERM INT
  ord=$(ordinal)
  [[ -f $MY_CNF ]] || die "$MY_CNF is missing (init-config did not run)"
  while [[ -e $RECLONE_MARK ]]; do
    log "the sidecar is rebuilding this replica from a peer; waiting"
    sleep 10
  done
  if [[ ! -d $DATADIR ]]; then
    ((ord == 0)) || die "replica $HOSTNAME has no datadir; the clone init container should have made one"
    initialize_primary
  fi
  [[ -f $DATADIR/$COMPLETE_MARK ]] || die "$DATADIR has no completion marker; refusing to start on it"
  if [[ -f $DATADIR/$SOURCE_GTID_FILE ]]; then adopt_clone_position; fi
  log "starting $SERVER_BIN"
  exec "$SERVER_BIN" --defaults-file="$MY_CNF"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
