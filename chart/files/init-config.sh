#!/usr/bin/env bash
# Init container: assembles the server's option file from the chart's cnf files and the ordinal.
# Ordinal 0 is the primary (writable); every other ordinal is a read-only replica.
# Inputs (env): FLAVOR, HOSTNAME, SERVICE_NAME (headless Service, for report_host).
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"

# usage: main -- writes $MY_CNF
main() {
  local ord role tmp
  ord=$(ordinal)
  role=replica
  ((ord == 0)) && role=primary
  tmp=$MY_CNF.tmp
  {
    cat "$SCRIPTS/server.cnf"
    # server-id 0 is reserved and refuses replication, hence the offset.
    printf '\n# identity of %s (ordinal %s, %s)\n[mysqld]\nserver-id = %d\nreport_host = %s.%s\n\n' \
      "$HOSTNAME" "$ord" "$role" $((100 + ord)) "$HOSTNAME" "${SERVICE_NAME:?SERVICE_NAME is required}"
    cat "$SCRIPTS/$role.cnf"
    # User settings come last so they win.
    printf '\n'
    cat "$SCRIPTS/extra.cnf"
    printf '\n'
  } >"$tmp"
  mv "$tmp" "$MY_CNF"
  log "wrote $MY_CNF for $HOSTNAME as $role (server-id $((100 + ord)))"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
