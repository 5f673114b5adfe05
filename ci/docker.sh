#!/usr/bin/env bash
# Installs Debian's Docker engine when dockerd is missing and starts dockerd when it is not
# running, then waits for `docker info`. Idempotent: safe to run before every make target.
# On hosts whose capability bounding set lacks CAP_SYS_RESOURCE (this project's VMs), makes a
# runc wrapper the default runtime so that --privileged containers (kind nodes) can start.
# One run at a time (a lock in the cache): `make test`'s lanes each start with `make cluster`,
# and two runs side by side once failed installing the wrapper ("File exists").
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WRAPPER=/usr/local/sbin/runc-airgap

# usage: lacks_sys_resource -> true when bit 24 (CAP_SYS_RESOURCE) is not in the bounding set
lacks_sys_resource() {
  local bnd
  bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
  (( (16#$bnd >> 24 & 1) == 0 ))
}

install_engine() {
  if command -v dockerd >/dev/null; then return 0; fi
  log "docker: installing Debian's docker.io (dockerd not found)"
  local start=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io containerd runc iptables jq >"$LOGS/docker-install.log" 2>&1 \
    || { tail -n 30 "$LOGS/docker-install.log" >&2; die "apt-get install docker.io failed"; }
  log "docker: installed in $(( SECONDS - start ))s"
}

configure_daemon() {
  mkdir -p /etc/docker
  local want='{}'
  if lacks_sys_resource; then
    if ! cmp -s "$ROOT/ci/files/runc-wrapper.sh" "$WRAPPER"; then
      install -m 0755 "$ROOT/ci/files/runc-wrapper.sh" "$WRAPPER.new" && mv -f "$WRAPPER.new" "$WRAPPER"
    fi
    want=$(jq -n --arg p "$WRAPPER" '{runtimes: {"runc-airgap": {path: $p}}, "default-runtime": "runc-airgap"}')
  fi
  if [[ ! -f /etc/docker/daemon.json ]] || [[ $(jq -S . /etc/docker/daemon.json) != $(jq -S . <<<"$want") ]]; then
    log "docker: writing /etc/docker/daemon.json"
    jq . <<<"$want" >/etc/docker/daemon.json
    if pgrep -x dockerd >/dev/null; then
      log "docker: restarting dockerd for the new configuration"
      pkill -x dockerd
      while pgrep -x dockerd >/dev/null; do sleep 1; done
    fi
  fi
}

start_daemon() {
  if docker info >/dev/null 2>&1; then return 0; fi
  if ! pgrep -x dockerd >/dev/null; then
    log "docker: starting dockerd (log: $LOGS/dockerd.log)"
    # without the lock's descriptor: dockerd outlives this script, and would hold the lock for good
    setsid nohup dockerd >>"$LOGS/dockerd.log" 2>&1 </dev/null {lock}>&- &
  fi
  local deadline=$(( SECONDS + 90 ))
  until docker info >/dev/null 2>&1; do
    (( SECONDS < deadline )) || { tail -n 20 "$LOGS/dockerd.log" >&2; die "dockerd did not answer within 90s"; }
    sleep 1
  done
  log "docker: dockerd is up ($(docker version --format '{{.Server.Version}}'))"
}

lock=  # the descriptor of $CACHE/docker.lock, held while main runs

main() {
  exec {lock}>"$CACHE/docker.lock"
  flock "$lock"
  install_engine
  configure_daemon
  start_daemon
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
