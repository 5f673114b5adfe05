#!/usr/bin/env bash
# shellcheck disable=SC2034 # the paths below are used by the scripts that source this file
# Helpers sourced by every script of the chart: logging, flavor binaries, paths, SQL helpers.
# Inputs (env): FLAVOR (mysql|mariadb). Paths can be overridden for local testing only.
set -euo pipefail

# The PVC is mounted at DATA_ROOT; the live datadir is a subdirectory of it, so that it can be
# replaced atomically by a rename (a clone or an initialisation is built in STAGING first).
DATA_ROOT=${DATA_ROOT:-/var/lib/mysql}
DATADIR=$DATA_ROOT/data
STAGING=$DATA_ROOT/staging
# Present while the sidecar rebuilds this replica from a peer (the server must stay down).
RECLONE_MARK=$DATA_ROOT/reclone-requested
# Written last into a complete datadir; a datadir without it is never started.
COMPLETE_MARK=chart-datadir-complete
# Present in a fresh clone until server.sh has adopted its replication position (MariaDB: the
# GTID position it holds; MySQL: the clone carries gtid_executed, the file is empty).
SOURCE_GTID_FILE=chart-source-gtid
# MariaDB: the server version that last wrote the datadir's system tables (server.sh upgrades them
# when a newer server starts on it).
SERVER_VERSION_FILE=chart-server-version
# The flavor and the server version that last started on the datadir ("mysql 9.7.4"): a datadir is
# never started by the other flavor, nor (MySQL) by an older release series.
DATADIR_SERVER_FILE=chart-datadir-server
# Server option file assembled by init-config.sh; the chart's scripts and cnf files.
MY_CNF=${MY_CNF:-/etc/mysql-chart/my.cnf}
SCRIPTS=${SCRIPTS:-/opt/mysql-chart}
SOCKET=${SOCKET:-/run/mysqld/mysqld.sock}
# Written by a replica's sidecar while the replica holds transactions the primary lacks (errant):
# the replica is then unready, serves no clone and is never rebuilt automatically. On the pod's
# run emptyDir, which the server and sidecar containers share.
ERRANT_MARK=${SOCKET%/*}/errant-transactions
# Written by server.sh while it holds the server down for a rebuild: the sidecar's proof that no
# server runs on the datadir (a pid file can outlive a killed server).
SERVER_PARKED=${SOCKET%/*}/server-parked
# The primary's sidecar stamps this row every second (UTC); a replica's data is as old as its copy.
HEARTBEAT_TABLE=mysql_chart.heartbeat
# Every pod's server-id is this plus its ordinal (0 is reserved and refuses replication): the
# primary's is SERVER_ID_BASE itself, which MariaDB GTIDs (domain-server-seq) name.
SERVER_ID_BASE=100
# socat's transfer block for the MariaDB backup stream (its default, 8 KiB, took one system call
# and one TLS record per 8 KiB and capped a pod-to-pod stream near 130 MB/s).
STREAM_BUFFER_BYTES=1048576
# MySQL: a server's GTID set on one line (the server breaks long sets over lines).
GTID_EXECUTED_SQL="SELECT REPLACE(@@global.gtid_executed, '\n', '');"

# usage: log MESSAGE... -- timestamped info line on stderr
log() { printf '%s [info] %s: %s\n' "$(date -u +%FT%TZ)" "${0##*/}" "$*" >&2; }
# usage: warn MESSAGE... -- timestamped warning on stderr
warn() { printf '%s [warn] %s: %s\n' "$(date -u +%FT%TZ)" "${0##*/}" "$*" >&2; }
# usage: die MESSAGE... -- log an error and exit 1
die() {
  printf '%s [error] %s: %s\n' "$(date -u +%FT%TZ)" "${0##*/}" "$*" >&2
  exit 1
}

# usage: ordinal -> prints the StatefulSet ordinal taken from $HOSTNAME (mysql-2 -> 2)
ordinal() {
  [[ ${HOSTNAME:?HOSTNAME is required} =~ -([0-9]+)$ ]] || die "cannot read an ordinal from HOSTNAME=$HOSTNAME"
  printf '%s\n' "${BASH_REMATCH[1]}"
}

# usage: peer_host ORDINAL -> the stable DNS name of that pod (of STATEFULSET_NAME when set; else
# of this pod's own StatefulSet), under PEER_DOMAIN when set (tls.enabled: SERVICE.NAMESPACE.svc,
# a name the certificate's wildcard matches; OpenSSL matches no wildcard against a two-label name)
peer_host() {
  printf '%s-%s.%s\n' "${STATEFULSET_NAME:-${HOSTNAME%-*}}" "$1" "${PEER_DOMAIN:-${SERVICE_NAME:?SERVICE_NAME is required}}"
}

# usage: existing_peers -> the ordinals >= 1 whose pod exists (its DNS name resolves)
existing_peers() {
  local i misses=0
  for ((i = 1; i < 100 && misses < 3; i++)); do
    if getent hosts "$(peer_host "$i")" >/dev/null 2>&1; then
      printf '%s\n' "$i"
      misses=0
    else
      misses=$((misses + 1))
    fi
  done
}

# The only place where the two flavors differ in binary names.
# MySQL clones with its clone plugin inside the server; MariaDB streams mariadb-backup.
case ${FLAVOR:?FLAVOR is required (mysql or mariadb)} in
  mysql)
    SERVER_BIN=mysqld CLIENT_BIN=mysql ADMIN_BIN=mysqladmin
    ;;
  mariadb)
    SERVER_BIN=mariadbd CLIENT_BIN=mariadb ADMIN_BIN=mariadb-admin
    BACKUP_BIN=mariadb-backup STREAM_BIN=mbstream
    export BACKUP_BIN STREAM_BIN
    ;;
  *) die "unknown FLAVOR=$FLAVOR" ;;
esac
export SERVER_BIN CLIENT_BIN ADMIN_BIN

# usage: sql_escape STRING -> STRING escaped for use inside a single-quoted SQL literal
sql_escape() {
  local s=${1//\\/\\\\}
  printf '%s' "${s//\'/\\\'}"
}

# usage: cnf_escape STRING -> STRING escaped for use inside a double-quoted option-file value
cnf_escape() {
  local s=${1//\\/\\\\}
  printf '%s' "${s//\"/\\\"}"
}

# usage: client_cnf USER PASSWORD [SOCKET] -> prints a [client] option group
# The password reaches the client through this file (a pipe or a 0600 file), never argv. An option
# file holds one value per line: a password with a line break (from auth.existingSecret; the chart
# refuses one in values) fails here, naming the account, rather than as a wrong password later.
client_cnf() {
  [[ $2 != *[$'\n\r']* ]] || die "the password of account '$1' contains a line break, which an option file cannot hold: set another one in the Secret"
  printf '[client]\nuser="%s"\npassword="%s"\nsocket="%s"\n' \
    "$(cnf_escape "$1")" "$(cnf_escape "$2")" "${3:-$SOCKET}"
}

# usage: password_drift ACCOUNT SECRET_KEY CLIENT_ERRORS -> why, when CLIENT_ERRORS is a server refusing
# ACCOUNT's password (error 1045): the Secret (SECRET_NAME) no longer matches the datadir, which
# keeps the passwords of its first install. Fails (prints nothing) for any other error.
password_drift() {
  [[ $3 == *"Access denied for user '$1'"* ]] || return 1
  printf "the server refuses account '%s' the password in Secret %s (key %s): the Secret no longer matches the passwords in the datadir (replaced by 'helm template | kubectl apply', or a new auth.* value?). Put the datadir's password back into the Secret, or change both as chart/README.md 'Rotating passwords' says\n" \
    "$1" "${SECRET_NAME:-of the release}" "$2"
}

# usage: sql USER PASSWORD [CLIENT_ARGS...] <<<"SQL" -- runs SQL on the local server (socket)
sql() {
  local user=$1 password=$2
  shift 2
  "$CLIENT_BIN" --defaults-file=<(client_cnf "$user" "$password") --batch --skip-column-names "$@"
}

# TLS switch-over (TLS_SWITCHOVER: an upgrade turned tls.enabled on under pods that ran without
# it): a pod connects to its peers as before TLS until it has seen the primary, replaced last,
# present the release's certificate, and records that here (on the volume: it never goes back).
TLS_VERIFIED_MARK=$DATA_ROOT/chart-tls-verified

# usage: tls_verifying -- succeeds when connections to peers verify the release's certificate
# (tls.enabled, and no switch-over pending for this pod)
tls_verifying() {
  [[ -n ${TLS_DIR:-} ]] && [[ -z ${TLS_SWITCHOVER:-} || -e $TLS_VERIFIED_MARK ]]
}

# usage: tls_client_args -> the client options that verify a peer's certificate against the
# release's CA and its name against the host (tls_verifying); nothing otherwise
tls_client_args() {
  tls_verifying || return 0
  if [[ $FLAVOR == mariadb ]]; then
    printf '%s\n' --ssl --ssl-ca="$TLS_DIR/ca.crt" --ssl-verify-server-cert
  else
    printf '%s\n' --ssl-mode=VERIFY_IDENTITY --ssl-ca="$TLS_DIR/ca.crt"
  fi
}

# usage: sql_remote HOST USER PASSWORD [CLIENT_ARGS...] <<<"SQL" -- runs SQL on HOST:3306 over TCP,
# over verified TLS when tls_verifying (killed after LOCAL_TIMEOUT seconds when that is set: bounded)
sql_remote() {
  local host=$1 user=$2 password=$3 tls
  shift 3
  mapfile -t tls < <(tls_client_args)
  bounded "$CLIENT_BIN" --defaults-file=<(client_cnf "$user" "$password") --protocol=TCP --host="$host" \
    --port=3306 --connect-timeout=5 --batch --skip-column-names "${tls[@]}" "$@"
}

# The server's admin connection on 127.0.0.1 (MySQL's admin interface, MariaDB's extra_port),
# outside max_connections: the probes and the sidecar still get in when the application holds
# every connection. Accounts reach it as USER@127.0.0.1 (admin_accounts_sql).
ADMIN_PORT=${ADMIN_PORT:-33062}

# usage: bounded COMMAND... -- COMMAND, killed after LOCAL_TIMEOUT seconds when that is set
# (exit 124). The probes set it: a frozen server completes TCP handshakes (the kernel does) but
# never greets, and a client blocked on it would outlive the probe and hang the kubelet's exec.
bounded() {
  if [[ -n ${LOCAL_TIMEOUT:-} ]]; then timeout "$LOCAL_TIMEOUT" "$@"; else "$@"; fi
}

# usage: local_client CLIENT USER PASSWORD [ARGS...] -- CLIENT (mysql, mysqladmin) on the local
# server through the admin port; through the socket when that fails (a server or account of an
# older chart version, until the primary's sidecar has made the account), unless it timed out.
# Both attempts get the same stdin: for statements that may safely run twice.
local_client() {
  local bin=$1 user=$2 password=$3 input rc=0
  shift 3
  input=$(cat)
  bounded "$bin" --defaults-file=<(client_cnf "$user" "$password") --protocol=TCP --host=127.0.0.1 \
    --port="$ADMIN_PORT" --connect-timeout=5 "$@" <<<"$input" 2>/dev/null || rc=$?
  ((rc != 0 && rc != 124)) || return "$rc"
  bounded "$bin" --defaults-file=<(client_cnf "$user" "$password") --connect-timeout=5 "$@" <<<"$input"
}

# usage: local_sql USER PASSWORD [CLIENT_ARGS...] <<<"SQL" -- SQL on the local server (local_client)
local_sql() { local_client "$CLIENT_BIN" "$1" "$2" --batch --skip-column-names "${@:3}"; }

# usage: local_ping USER PASSWORD -- succeeds when the local server answers (local_client)
local_ping() { local_client "$ADMIN_BIN" "$1" "$2" ping </dev/null >/dev/null 2>&1; }

# usage: admin_accounts_sql PROBE_PASSWORD -> idempotent SQL: the probe account on the admin
# port (probe@localhost, the socket's, came first), and the right to use that port (MySQL)
admin_accounts_sql() {
  printf '%s\n' \
    "CREATE USER IF NOT EXISTS 'probe'@'127.0.0.1' IDENTIFIED BY '$(sql_escape "$1")' WITH MAX_USER_CONNECTIONS 5;" \
    "GRANT REPLICATION CLIENT ON *.* TO 'probe'@'127.0.0.1';"
  if [[ $FLAVOR == mariadb ]]; then
    printf '%s\n' "GRANT SLAVE MONITOR ON *.* TO 'probe'@'127.0.0.1';"
  else
    printf '%s\n' "GRANT SERVICE_CONNECTION_ADMIN ON *.* TO 'probe'@'127.0.0.1', 'metrics'@'127.0.0.1';"
  fi
}

# usage: ping_server USER PASSWORD [SOCKET] -- succeeds when the server answers on SOCKET
ping_server() {
  "$ADMIN_BIN" --defaults-file=<(client_cnf "$1" "$2" "${3:-$SOCKET}") --connect-timeout=5 ping >/dev/null 2>&1
}

# A private server: socket only, started by the scripts on a datadir they prepare (server.sh's
# bootstrap server; MySQL's throw-away clone recipient). BOOT_ROOT_PASSWORD is root's password on it.
BOOT_SOCKET=${BOOT_SOCKET:-${SOCKET%/*}/bootstrap.sock}
BOOT_START_SECONDS=${BOOT_START_SECONDS:-300}
BOOT_PID=

# usage: start_boot_server DATADIR [SERVER_ARGS...] -- starts a private server (socket only)
start_boot_server() {
  local datadir=$1 i
  shift
  "$SERVER_BIN" --defaults-file="$MY_CNF" --datadir="$datadir" --skip-networking \
    --socket="$BOOT_SOCKET" "$@" &
  BOOT_PID=$!
  # Asked 5 times a second: every pod start waits on this server (a fresh primary's accounts, a
  # clone's position), and it answers within a second or two.
  for ((i = 0; i < BOOT_START_SECONDS * 5; i++)); do
    kill -0 "$BOOT_PID" 2>/dev/null || die "the bootstrap server exited; see its log above"
    if ping_server root "${BOOT_ROOT_PASSWORD-}" "$BOOT_SOCKET"; then return 0; fi
    sleep 0.2
  done
  die "the bootstrap server did not answer within ${BOOT_START_SECONDS}s"
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

# usage: clone_account_sql PASSWORD -> SQL creating MySQL's clone donor account: peers reach it
# over TLS only, and it can do nothing but serve a clone (BACKUP_ADMIN)
clone_account_sql() {
  printf '%s\n' "CREATE USER 'clone'@'%' IDENTIFIED BY '$(sql_escape "$1")' REQUIRE SSL;" \
    "GRANT BACKUP_ADMIN ON *.* TO 'clone'@'%';"
}

# usage: replica_fields CLIENT_FUNCTION [ARGS...] -> "Name=value" lines of SHOW REPLICA STATUS
# run through CLIENT_FUNCTION (sql or sql_remote and their arguments); nothing when replication is
# not configured; fails when the server does not answer. Newlines inside values (GTID sets) are
# dropped. Batch output with column names, split on tabs by hand: empty fields must keep their place.
replica_fields() {
  local stmt='SHOW REPLICA STATUS;' out header row i value
  local -a names values
  [[ $FLAVOR == mariadb ]] && stmt='SHOW SLAVE STATUS;'
  out=$("$@" --column-names <<<"$stmt") || return 1
  [[ $out == *$'\n'* ]] || return 0
  header=${out%%$'\n'*}
  row=${out#*$'\n'}
  # A tab after the last field too: mapfile drops an empty last field otherwise.
  mapfile -t -d $'\t' names < <(printf '%s\t' "$header")
  mapfile -t -d $'\t' values < <(printf '%s\t' "${row%%$'\n'*}")
  for i in "${!names[@]}"; do
    value=${values[i]-}
    printf '%s=%s\n' "${names[i]}" "${value//\\n/}"
  done
}

# usage: wait_applied SECONDS CLIENT_FUNCTION [ARGS...] -- waits up to SECONDS until the server
# reached through CLIENT_FUNCTION has applied every transaction its replication received (at once
# when it replicates from nobody); on failure prints why and fails
wait_applied() {
  local seconds=$1 fields received wait
  shift
  fields=$(replica_fields "$@") || { printf 'the server does not answer\n'; return 1; }
  if [[ $FLAVOR == mariadb ]]; then
    received=$(field Gtid_IO_Pos <<<"$fields") || received=''
    wait="SELECT MASTER_GTID_WAIT('$received', $seconds);"
  else
    received=$(field Retrieved_Gtid_Set <<<"$fields") || received=''
    wait="SELECT WAIT_FOR_EXECUTED_GTID_SET('$received', $seconds);"
  fi
  [[ $received =~ ^[A-Za-z0-9_:,-]*$ ]] || { printf 'it reports an unreadable GTID set %s\n' "$received"; return 1; }
  if [[ -n $received && $("$@" <<<"$wait") != 0 ]]; then
    printf 'it has not applied what it received (%s) within %ss\n' "$received" "$seconds"
    return 1
  fi
}

# usage: field NAME... <<<"$fields" -> the value of the first NAME present in replica_fields output
field() {
  local line name
  while IFS= read -r line; do
    for name in "$@"; do
      if [[ ${line%%=*} == "$name" ]]; then
        printf '%s\n' "${line#*=}"
        return 0
      fi
    done
  done
  return 1
}

# usage: replica_status CLIENT_FUNCTION [ARGS...] -> "io sql lag errno error" of the server that
# CLIENT_FUNCTION (local_sql USER PASSWORD, say) reaches: the replication threads' states, the lag
# (NULL when unknown) and the last error (error: the rest of the line), the SQL thread's when it
# stopped on one, the I/O thread's otherwise; nothing when replication is not configured; fails
# when the server does not answer
replica_status() {
  local f io sqlt lag errno error
  f=$(replica_fields "$@") || return 1
  [[ -n $f ]] || return 0
  io=$(field Replica_IO_Running Slave_IO_Running <<<"$f") || true
  sqlt=$(field Replica_SQL_Running Slave_SQL_Running <<<"$f") || true
  lag=$(field Seconds_Behind_Source Seconds_Behind_Master <<<"$f") || true
  errno=$(field Last_SQL_Errno <<<"$f") || true
  if [[ $sqlt == Yes || ${errno:-0} == 0 ]]; then
    errno=$(field Last_IO_Errno <<<"$f") || true
    error=$(field Last_IO_Error <<<"$f") || true
  else
    error=$(field Last_SQL_Error <<<"$f") || true
  fi
  printf '%s %s %s %s %s\n' "$io" "$sqlt" "${lag:-NULL}" "${errno:-0}" "$error"
}

# usage: position_ahead A B -> MariaDB: the parts (domain-server-seq) of GTID position A that B
# does not reach (a domain B lacks, or a higher sequence number); empty when B contains A
position_ahead() {
  local part domain
  local -A seen=()
  for part in ${2//,/ }; do seen[${part%%-*}]=${part##*-}; done
  for part in ${1//,/ }; do
    domain=${part%%-*}
    if [[ -z ${seen[$domain]:-} ]] || ((${part##*-} > seen[$domain])); then printf '%s\n' "$part"; fi
  done
}

# usage: server_version -> the version of this image's server binary, e.g. 11.8.3
server_version() {
  [[ $("$SERVER_BIN" --version) =~ Ver\ ([0-9]+\.[0-9]+\.[0-9]+) ]] || die "cannot read the version of $SERVER_BIN"
  printf '%s\n' "${BASH_REMATCH[1]}"
}

# usage: file_has_line FILE REGEX -- succeeds when a line of FILE matches the ERE (no grep needed
# in minimal images)
file_has_line() {
  local line
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ $2 ]] && return 0
  done <"$1"
  return 1
}
