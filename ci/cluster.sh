#!/usr/bin/env bash
# Creates the kind cluster from kind-config.yaml, or reuses a healthy one, and leaves kubectl's
# current context on it. Air-gapped, the node image is built first (ci/node-image.sh);
# with a registry, kind's default kindest/node image is pulled.
# usage: cluster.sh [up|down|images]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER=${CLUSTER_NAME:-mysql-chart}
CONTEXT=kind-$CLUSTER
MODE=$(bash "$ROOT/ci/mode.sh")
# One database image build at a time: `up` starts one in the background, `images` waits for it.
DB_IMAGES_LOCK=$CACHE/db-images.lock
DB_IMAGES_LOG=$LOGS/db-images-background.log

announce() {
  if [[ $MODE == airgap ]]; then
    log "mode: air-gapped (no container registry reachable): building images locally; AIRGAP=0 forces pulls"
  else
    log "mode: registry: using upstream images (kindest/node, official database images); AIRGAP=1 forces local builds"
  fi
}

healthy() {
  kind get clusters 2>/dev/null | grep -qx "$CLUSTER" \
    && kubectl --context "$CONTEXT" get --raw /readyz >/dev/null 2>&1
}

# usage: wait_for WHAT TIMEOUT_S COMMAND...
wait_for() {
  local what=$1 timeout=$2 start=$SECONDS; shift 2
  until "$@" >/dev/null 2>&1; do
    (( SECONDS - start < timeout )) || die "timed out after ${timeout}s waiting for $what"
    sleep 2
  done
  log "$what: ok after $(( SECONDS - start ))s"
}

# usage: db_images_in_background -- air-gapped: builds the database images beside the tools and the
# node image (their Go builds keep the CPUs busy, the debootstraps mostly wait on the network);
# `images` waits for it. With the images present it ends in a second. Output in DB_IMAGES_LOG.
db_images_in_background() {
  [[ $MODE == airgap ]] || return 0
  exec 9>"$DB_IMAGES_LOCK"
  if ! flock --nonblock 9; then  # another `make cluster` (a parallel lane) builds them: leave its log be
    log "database images: already being built in the background (log: $DB_IMAGES_LOG)"
    exec 9>&-
    return 0
  fi
  log "database images: building (or finding) them in the background (log: $DB_IMAGES_LOG)"
  bash "$ROOT/ci/db-images.sh" build >"$DB_IMAGES_LOG" 2>&1 </dev/null &  # holds the lock (fd 9) till done
  exec 9>&-  # this shell lets go of its copy; the build's copy keeps the lock
}

storage_ready() {
  kubectl --context "$CONTEXT" get storageclass -o json \
    | jq -e '[.items[] | select(.metadata.annotations["storageclass.kubernetes.io/is-default-class"] == "true")] | length > 0'
}

up() {
  announce
  bash "$ROOT/ci/docker.sh"
  db_images_in_background
  bash "$ROOT/ci/tools.sh"
  if healthy; then
    log "cluster $CLUSTER: reusing the running cluster"
    kubectl config use-context "$CONTEXT" >/dev/null
    return 0
  fi
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "cluster $CLUSTER: exists but its API server does not answer; recreating it"
    kind delete cluster --name "$CLUSTER"
  fi
  local args=(--name "$CLUSTER" --config "$ROOT/kind-config.yaml" --wait 180s) start=$SECONDS
  if [[ $MODE == airgap ]]; then args+=(--image "$(bash "$ROOT/ci/node-image.sh")"); fi
  log "cluster $CLUSTER: creating (kind ${args[*]})"
  kind create cluster "${args[@]}"
  kubectl config use-context "$CONTEXT" >/dev/null
  wait_for "node Ready" 180 kubectl --context "$CONTEXT" wait --for=condition=Ready node --all --timeout=5s
  wait_for "CoreDNS available" 180 kubectl --context "$CONTEXT" -n kube-system rollout status deploy/coredns --timeout=5s
  wait_for "default StorageClass" 120 storage_ready
  wait_for "local-path-provisioner available" 180 \
    kubectl --context "$CONTEXT" -n local-path-storage rollout status deploy/local-path-provisioner --timeout=5s
  log "cluster $CLUSTER: ready in $(( SECONDS - start ))s (context $CONTEXT)"
}

images() {
  announce
  bash "$ROOT/ci/docker.sh"
  if [[ $MODE == registry ]]; then
    log "images: nothing to build; pods pull the chart's upstream images"
    return 0
  fi
  if ! flock --nonblock "$DB_IMAGES_LOCK" true; then
    log "database images: waiting for the background build (tail -f $DB_IMAGES_LOG)"
  fi
  flock "$DB_IMAGES_LOCK" bash "$ROOT/ci/db-images.sh" build
  bash "$ROOT/ci/db-images.sh" load "$CLUSTER"
}

down() {
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    kind delete cluster --name "$CLUSTER"
  else
    log "cluster $CLUSTER: not running"
  fi
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  images) images ;;
  *) die "usage: cluster.sh [up|down|images]" ;;
esac
