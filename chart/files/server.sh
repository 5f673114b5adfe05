#!/usr/bin/env bash
# Main container: makes sure the datadir is complete, then runs the server in the foreground.
#  - ordinal 0 with no datadir: initialise it and create the chart's accounts (first install; a
#    primary that lost its datadir while peers hold data has cloned the most advanced one first);
#  - a datadir that is a fresh clone: adopt the clone's replication position once;
#  - MariaDB: a datadir written by an older series gets its system tables upgraded first
#    (mariadb-upgrade, as the official image's MARIADB_AUTO_UPGRADE does; MySQL upgrades itself);
#  - a replica being rebuilt by its sidecar: wait until the new datadir is in place;
#  - a datadir without the completion marker is never started.
# Inputs (env): FLAVOR, HOSTNAME, MYSQL_ROOT_PASSWORD, MYSQL_REPLICATION_PASSWORD,
#   MYSQL_BACKUP_PASSWORD, MYSQL_PROBE_PASSWORD, MYSQL_METRICS_PASSWORD,
#   optional MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD.
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"

# usage: accounts_sql -> prints the SQL that creates the chart's accounts on a new datadir
accounts_sql() {
  local root root_host repl backup probe metrics
  root=$(sql_escape "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}")
  root_host=$(sql_escape "${ROOT_HOST:-%}")
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
    "CREATE USER 'root'@'$root_host' IDENTIFIED BY '$root';" \
    "GRANT ALL PRIVILEGES ON *.* TO 'root'@'$root_host' WITH GRANT OPTION;" \
    "CREATE USER 'replication'@'%' IDENTIFIED BY '$repl';" \
    "GRANT REPLICATION SLAVE ON *.* TO 'replication'@'%';" \
    "CREATE USER 'probe'@'localhost' IDENTIFIED BY '$probe' WITH MAX_USER_CONNECTIONS 5;" \
    "GRANT REPLICATION CLIENT ON *.* TO 'probe'@'localhost';" \
    "CREATE USER 'metrics'@'127.0.0.1' IDENTIFIED BY '$metrics' WITH MAX_USER_CONNECTIONS 3;" \
    "GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'metrics'@'127.0.0.1';" \
    "GRANT SELECT ON performance_schema.* TO 'metrics'@'127.0.0.1';"
  if [[ $FLAVOR == mariadb ]]; then
    # read_only does not bind READ_ONLY ADMIN holders, and ALL PRIVILEGES includes it: take it
    # away so that replicas refuse writes from root too. SLAVE MONITOR lets probes read status.
    # mariadb-backup, run by the sidecar to serve a peer, reads and locks the local server.
    printf '%s\n' \
      "REVOKE READ_ONLY ADMIN ON *.* FROM 'root'@'localhost', 'root'@'$root_host';" \
      "GRANT SLAVE MONITOR ON *.* TO 'probe'@'localhost', 'metrics'@'127.0.0.1';" \
      "CREATE USER 'backup'@'localhost' IDENTIFIED BY '$backup';" \
      "GRANT RELOAD, PROCESS, LOCK TABLES, REPLICATION CLIENT ON *.* TO 'backup'@'localhost';"
  else
    clone_account_sql "$MYSQL_BACKUP_PASSWORD"
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
  server_version >"$STAGING/$SERVER_VERSION_FILE"
  printf 'initialised %s\n' "$(date -u +%FT%TZ)" >"$STAGING/$COMPLETE_MARK"
  sync
  mv "$STAGING" "$DATADIR"
  log "datadir initialised; the chart's accounts${MYSQL_USER:+ and $MYSQL_USER} created"
}

# usage: adopt_clone_position -- once after a clone: replication state = the clone's
adopt_clone_position() {
  local gtid stop stmts
  gtid=$(<"$DATADIR/$SOURCE_GTID_FILE")
  [[ $gtid =~ ^[A-Za-z0-9_:,-]*$ ]] || die "malformed GTID position in $SOURCE_GTID_FILE"
  BOOT_ROOT_PASSWORD=${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}
  if [[ $FLAVOR == mariadb ]]; then
    log "fresh clone: adopting its GTID position '${gtid}'"
    start_boot_server "$DATADIR" --skip-slave-start --read-only=OFF
    # The donor's binlogs and replica settings mean nothing here; gtid_slave_pos is where
    # replication resumes (MASTER_USE_GTID=slave_pos).
    stop="STOP SLAVE;"
    stmts="RESET SLAVE ALL; RESET MASTER; SET GLOBAL gtid_slave_pos = '$gtid';"
    # A primary that recovered its datadir from a replica serves the replicas from that position:
    # its (empty) binlog starts there.
    if (($(ordinal) == 0)); then stmts+=" SET GLOBAL gtid_binlog_state = '$gtid';"; fi
  else
    # The clone plugin carried the donor's gtid_executed (and gtid_purged: no binlogs came with
    # it); only the donor's replication settings are dropped.
    start_boot_server "$DATADIR" --skip-replica-start --super-read-only=OFF --read-only=OFF
    log "fresh clone: gtid_executed '$(boot_sql <<<"$GTID_EXECUTED_SQL")'"
    stop="STOP REPLICA;"
    stmts="RESET REPLICA ALL;"
  fi
  # Replication is not running (skip-*-start); RESET needs it stopped, so make sure of it.
  boot_sql <<<"$stop" >/dev/null 2>&1 || true
  boot_sql <<<"$stmts"
  stop_boot_server
  rm -f "$DATADIR/$SOURCE_GTID_FILE"
  sync
}

# usage: series VERSION -> major*1000+minor, for comparing release series (11.8.3 -> 11008)
series() {
  [[ $1 =~ ^([0-9]+)\.([0-9]+) ]] || return 1
  printf '%d\n' $((BASH_REMATCH[1] * 1000 + BASH_REMATCH[2]))
}

# usage: datadir_version -> the MariaDB version that last wrote the system tables (empty: unknown)
datadir_version() {
  local f
  for f in "$DATADIR/$SERVER_VERSION_FILE" "$DATADIR/mariadb_upgrade_info" "$DATADIR/mysql_upgrade_info"; do
    if [[ -f $f && $(<"$f") =~ ^([0-9]+\.[0-9]+\.[0-9]+) ]]; then
      printf '%s\n' "${BASH_REMATCH[1]}"
      return 0
    fi
  done
}

# usage: upgrade_mariadb_datadir -- mariadb-upgrade when the server's series is newer than the datadir's
upgrade_mariadb_datadir() {
  local have want cnf
  want=$(server_version)
  have=$(datadir_version)
  if [[ -n $have ]]; then
    (($(series "$have") <= $(series "$want"))) ||
      die "the datadir was written by MariaDB $have; this server is $want and cannot downgrade it"
    (($(series "$have") < $(series "$want"))) || return 0
  fi
  log "datadir written by MariaDB ${have:-of an unknown version}, server $want: upgrading the system tables"
  BOOT_ROOT_PASSWORD=${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}
  start_boot_server "$DATADIR" --skip-slave-start --read-only=OFF
  # mariadb-upgrade hands its options to the tools it runs: a 0600 file, not a pipe. Its changes
  # stay out of the binlog: every pod upgrades its own tables as it rolls.
  cnf=$(mktemp /tmp/upgrade.XXXXXX)
  client_cnf root "$MYSQL_ROOT_PASSWORD" "$BOOT_SOCKET" >"$cnf"
  if ! mariadb-upgrade --defaults-file="$cnf" --skip-write-binlog >/tmp/mariadb-upgrade.log 2>&1; then
    rm -f "$cnf"
    tail -n 20 /tmp/mariadb-upgrade.log >&2
    die "mariadb-upgrade failed (see above)"
  fi
  rm -f "$cnf"
  stop_boot_server
  printf '%s\n' "$want" >"$DATADIR/$SERVER_VERSION_FILE"
  sync
  log "system tables upgraded to MariaDB $want"
}

# usage: datadir_server -> "FLAVOR VERSION" of the server that last started on the datadir: from its
# record, else from the files only one flavor writes (MySQL's data dictionary mysql.ibd, MariaDB's
# aria_log_control), with an unknown version; nothing when neither tells
datadir_server() {
  if [[ -s $DATADIR/$DATADIR_SERVER_FILE ]]; then
    printf '%s\n' "$(<"$DATADIR/$DATADIR_SERVER_FILE")"
  elif [[ -f $DATADIR/mysql.ibd ]]; then
    printf 'mysql unknown\n'
  elif [[ -f $DATADIR/aria_log_control ]]; then
    printf 'mariadb unknown\n'
  fi
}

# usage: datadir_check_and_record -- refuses a datadir of the other flavor, and (MySQL) one written by
# a newer release series than this server's; then records this server as the datadir's (when
# another one was)
datadir_check_and_record() {
  local flavor version want
  want=$(server_version)
  read -r flavor version < <(datadir_server) || true
  flavor=${flavor:-unknown} version=${version:-unknown}
  if [[ $flavor != unknown && $flavor != "$FLAVOR" ]]; then
    die "this datadir holds $flavor data (server $version); this pod runs $FLAVOR $want, which cannot use it: refusing to start. A flavor cannot change in place: run the old flavor again, or move the data with a logical dump"
  fi
  if [[ $FLAVOR == mysql && $version != unknown ]] && (($(series "$version") > $(series "$want"))); then
    die "this datadir was written by MySQL $version; this server is $want and cannot downgrade it: refusing to start"
  fi
  # Written only when it changes: a start on a full volume must not fail on its own bookkeeping.
  [[ "$flavor $version" != "$FLAVOR $want" ]] || return 0
  printf '%s %s\n' "$FLAVOR" "$want" >"$DATADIR/$DATADIR_SERVER_FILE.tmp"
  mv "$DATADIR/$DATADIR_SERVER_FILE.tmp" "$DATADIR/$DATADIR_SERVER_FILE"
}

# usage: drop_secrets -- removes every password and the token from the environment: the server is
# exec'd with what is left, so none is in its /proc/PID/environ (its accounts live in the datadir)
drop_secrets() {
  unset MYSQL_ROOT_PASSWORD MYSQL_REPLICATION_PASSWORD MYSQL_BACKUP_PASSWORD MYSQL_PROBE_PASSWORD \
    MYSQL_METRICS_PASSWORD MYSQL_PASSWORD BACKUP_TOKEN BOOT_ROOT_PASSWORD
}

# usage: main -- prepares the datadir and execs the server
main() {
  local ord
  # bash as PID 1 ignores TERM unless trapped; without this a pod deletion waits out its grace period.
  trap 'exit 143' TERM INT
  ord=$(ordinal)
  [[ -f $MY_CNF ]] || die "$MY_CNF is missing (init-config did not run)"
  if [[ -e $RECLONE_MARK ]]; then
    log "the sidecar is rebuilding this replica from a peer; waiting"
    while [[ -e $RECLONE_MARK ]]; do
      : >"$SERVER_PARKED"
      sleep 2
    done
    rm -f "$SERVER_PARKED"
    # Exit: the container restarts and the first start on the new datadir runs under the startup
    # probe's budget, not liveness's.
    log "rebuild done; restarting the container to start the server on the new datadir"
    exit 0
  fi
  rm -f "$SERVER_PARKED"
  # MariaDB's secure_file_priv (mariadb-server.cnf): the only directory it may read or write files in.
  mkdir -p "${SOCKET%/*}/files"
  if [[ ! -d $DATADIR ]]; then
    ((ord == 0)) || die "replica $HOSTNAME has no datadir; the clone init container should have made one"
    initialize_primary
  fi
  [[ -f $DATADIR/$COMPLETE_MARK ]] || die "$DATADIR has no completion marker; refusing to start on it"
  datadir_check_and_record
  if [[ $FLAVOR == mariadb ]]; then upgrade_mariadb_datadir; fi
  if [[ -f $DATADIR/$SOURCE_GTID_FILE ]]; then adopt_clone_position; fi
  drop_secrets
  log "starting $SERVER_BIN"
  exec "$SERVER_BIN" --defaults-file="$MY_CNF"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
