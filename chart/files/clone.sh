#!/usr/bin/env bash
# Init container (and the sidecar, to rebuild a replica): copies a peer's data into the PVC.
# A replica clones a peer; the primary clones only when it lost its datadir while peers hold data
# (recover.sh); on a first install it has nothing to clone.
# Donors are tried in order: ordinal-1, the other replicas, then the primary. The copy is made in
# STAGING and validated; only then is it renamed to the datadir with a completion marker. A
# half-finished clone is wiped and retried with the next donor, never started.
# How the copy is made belongs to the flavor (sourced): clone-mysql.sh (MySQL's clone plugin) or
# clone-mariadb.sh (a mariadb-backup stream served by the donor's sidecar). Each defines
# clone_from HOST (a complete, validated datadir in STAGING) and clone_finish (cleanup).
# Inputs (env): FLAVOR, HOSTNAME, SERVICE_NAME (headless Service), and the flavor's.
set -euo pipefail
# shellcheck source=lib.sh
source "${SCRIPTS:-/opt/mysql-chart}/lib.sh"
# shellcheck source=clone-mysql.sh
source "$SCRIPTS/clone-$FLAVOR.sh"
# shellcheck source=recover.sh
source "$SCRIPTS/recover.sh"

# Short at first: a new pod's donor may have become Ready a moment before its sidecar serves
# backups (MariaDB: connection refused), and pods start one after another.
CLONE_RETRY_SECONDS=${CLONE_RETRY_SECONDS:-2}
# Rounds over every donor before the container gives up (and restarts, visibly); the pause between
# rounds doubles from CLONE_RETRY_SECONDS up to 5 minutes.
CLONE_MAX_ROUNDS=${CLONE_MAX_ROUNDS:-14}

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

# usage: mark_complete HOST -- the last write into a validated clone in STAGING
mark_complete() {
  printf 'cloned from %s %s\n' "$1" "$(date -u +%FT%TZ)" >"$STAGING/$COMPLETE_MARK"
  sync
}

# usage: try_clone HOST -- clones HOST; on success the clone is the datadir, marked complete
try_clone() {
  local host=$1
  if ! clone_from "$host"; then
    rm -rf "$STAGING"
    return 1
  fi
  mark_complete "$host"
  rm -rf "$DATADIR"
  mv "$STAGING" "$DATADIR"
  sync
  clone_finish
  log "datadir cloned from $host"
}

# usage: clone_datadir -- loops over donors until a clone is in place at DATADIR
clone_datadir() {
  local ord i round pause=$CLONE_RETRY_SECONDS
  ord=$(ordinal)
  for ((round = 1; round <= CLONE_MAX_ROUNDS; round++)); do
    for i in $(donor_candidates "$ord"); do
      if try_clone "$(peer_host "$i")"; then return 0; fi
    done
    log "no donor could serve a clone (round $round/$CLONE_MAX_ROUNDS); retrying in ${pause}s"
    sleep "$pause"
    pause=$((pause * 2 > 300 ? 300 : pause * 2))
  done
  die "no donor could serve a clone in $CLONE_MAX_ROUNDS rounds; giving up (the container restarts)"
}

# usage: main -- init container entry point
main() {
  # bash as PID 1 ignores TERM unless trapped; without this a pod deletion waits out its grace period.
  trap 'exit 143' TERM INT
  if [[ -f $DATADIR/$COMPLETE_MARK ]]; then
    log "datadir already complete: nothing to clone"
    return 0
  fi
  if (($(ordinal) == 0)); then
    # An unmarked datadir on the primary is never removed: server.sh refuses to start on it.
    [[ -d $DATADIR ]] || recover_primary
    return 0
  fi
  if [[ -d $DATADIR ]]; then
    warn "removing an incomplete datadir left by an earlier attempt"
    rm -rf "$DATADIR"
  fi
  clone_datadir
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
