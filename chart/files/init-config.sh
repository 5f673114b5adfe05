#!/usr/bin/env bash
# Init container: assembles the server's option file from the chart's cnf files and the ordinal.
# Ordinal 0 is the primary (writable); every other ordinal is a read-only replica.
# First it copies the chart's files (SCRIPTS, the release's ConfigMap) into POD_SCRIPTS, once per
# pod: every container and probe runs that copy, so a new chart version's scripts reach a pod only
# when the pod is replaced (in the StatefulSet's order), not when the kubelet refreshes the
# ConfigMap in every running pod.
# Inputs (env): FLAVOR, HOSTNAME, SERVICE_NAME (headless Service, for report_host),
#   SEMI_SYNC (on|off), SEMI_SYNC_TIMEOUT_SECONDS, BINLOG_EXPIRE_SECONDS, optional POD_SCRIPTS
#   and TLS_DIR.
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

# usage: tls_cnf -> the [mysqld] settings that make the server present the release's certificate
# (TLS_DIR: tls.enabled); nothing otherwise
tls_cnf() {
  [[ -n ${TLS_DIR:-} ]] || return 0
  printf '\n# the release certificate (values: tls.*)\n[mysqld]\n'
  printf 'ssl_ca = %s/ca.crt\nssl_cert = %s/tls.crt\nssl_key = %s/tls.key\n' "$TLS_DIR" "$TLS_DIR" "$TLS_DIR"
}

# usage: copy_pod_files DEST -- copies the chart's files into DEST unless this pod did already (an
# init container runs again when the pod's sandbox is recreated, e.g. after a node restart)
copy_pod_files() {
  local dest=$1 file
  if [[ -f $dest/.copied ]]; then
    log "keeping the chart files this pod started with ($(<"$dest/.copied"))"
    return 0
  fi
  for file in "$SCRIPTS"/*; do
    # ConfigMap keys are symlinks into a ..data directory: copy what they point to.
    cp -L "$file" "$dest/${file##*/}"
    chmod 0555 "$dest/${file##*/}"
  done
  date -u +"copied %FT%TZ" >"$dest/.copied"
}

# usage: main -- writes $MY_CNF
main() {
  local ord role tmp files=${POD_SCRIPTS:-$SCRIPTS}
  ord=$(ordinal)
  role=replica
  ((ord == 0)) && role=primary
  if [[ -n ${POD_SCRIPTS:-} ]]; then copy_pod_files "$POD_SCRIPTS"; fi
  tmp=$MY_CNF.tmp
  {
    cat "$files/server.cnf"
    printf '\n# identity of %s (ordinal %s, %s)\n[mysqld]\nserver-id = %d\nreport_host = %s.%s\n\n' \
      "$HOSTNAME" "$ord" "$role" $((SERVER_ID_BASE + ord)) "$HOSTNAME" "${SERVICE_NAME:?SERVICE_NAME is required}"
    cat "$files/$role.cnf"
    replication_cnf "$role"
    tls_cnf
    # User settings come last so they win.
    printf '\n'
    cat "$files/extra.cnf"
    printf '\n'
  } >"$tmp"
  mv "$tmp" "$MY_CNF"
  log "wrote $MY_CNF for $HOSTNAME as $role (server-id $((SERVER_ID_BASE + ord)))"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
