#!/usr/bin/env bash
# Init container: assembles the server's option file from the chart's cnf files and the ordinal.
# Ordinal 0 is the primary (writable); every other ordinal is a read-only replica.
# Inputs (env): FLAVOR, HOSTNAME, SERVICE_NAME (headless Service, for report_host),
#   SEMI_SYNC (on|off), SEMI_SYNC_TIMEOUT_SECONDS, BINLOG_EXPIRE_SECONDS.
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"

# usage: replication_cnf ROLE -> the [mysqld] settings of ROLE that come from values: binlog
# expiry, and semi-synchronous replication (the primary waits for one replica to have a commit in
# its relay log before acknowledging it, and falls back to asynchronous after the timeout)
replication_cnf() {
  local role=$1 semi=${SEMI_SYNC:-off} timeout_ms source=source replica=replica
  local expire=${BINLOG_EXPIRE_SECONDS:?BINLOG_EXPIRE_SECONDS is required}
  [[ $expire =~ ^[0-9]+$ ]] || die "BINLOG_EXPIRE_SECONDS must be a number of seconds, got '$expire'"
  printf '\n# binary logs and semi-synchronous replication (values: replication.*)\n[mysqld]\n'
  printf 'binlog_expire_logs_seconds = %d\n' "$expire"
  [[ $semi == on ]] || return 0
  [[ ${SEMI_SYNC_TIMEOUT_SECONDS:-} =~ ^[0-9]+$ ]] ||
    die "SEMI_SYNC_TIMEOUT_SECONDS must be a number of seconds, got '${SEMI_SYNC_TIMEOUT_SECONDS:-}'"
  timeout_ms=$((SEMI_SYNC_TIMEOUT_SECONDS * 1000))
  if [[ $FLAVOR == mariadb ]]; then
    # Built into the server; MariaDB still names the roles master and slave.
    source=master replica=slave
  else
    # MySQL: plugins. FORCE: a server that cannot load one refuses to start rather than run
    # asynchronously. loose-: `mysqld --initialize` loads no plugins and would refuse the options.
    printf 'plugin-load-add = semisync_source.so\nplugin-load-add = semisync_replica.so\n'
    printf 'loose-rpl_semi_sync_source = FORCE\nloose-rpl_semi_sync_replica = FORCE\n'
  fi
  if [[ $role == primary ]]; then
    printf 'loose-rpl_semi_sync_%s_enabled = ON\n' "$source"
    printf 'loose-rpl_semi_sync_%s_timeout = %d\n' "$source" "$timeout_ms"
    printf 'loose-rpl_semi_sync_%s_wait_point = AFTER_SYNC\n' "$source"
  else
    printf 'loose-rpl_semi_sync_%s_enabled = ON\n' "$replica"
  fi
}

# usage: main -- writes $MY_CNF
main() {
  local ord role tmp
  ord=$(ordinal)
  role=replica
  ((ord == 0)) && role=primary
  tmp=$MY_CNF.tmp
  {
    cat "$SCRIPTS/server.cnf"
    printf '\n# identity of %s (ordinal %s, %s)\n[mysqld]\nserver-id = %d\nreport_host = %s.%s\n\n' \
      "$HOSTNAME" "$ord" "$role" $((SERVER_ID_BASE + ord)) "$HOSTNAME" "${SERVICE_NAME:?SERVICE_NAME is required}"
    cat "$SCRIPTS/$role.cnf"
    replication_cnf "$role"
    # User settings come last so they win.
    printf '\n'
    cat "$SCRIPTS/extra.cnf"
    printf '\n'
  } >"$tmp"
  mv "$tmp" "$MY_CNF"
  log "wrote $MY_CNF for $HOSTNAME as $role (server-id $((SERVER_ID_BASE + ord)))"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
