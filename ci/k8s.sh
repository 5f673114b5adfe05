#!/usr/bin/env bash
# Builds the Kubernetes binaries (kubeadm, kubelet, kubectl, control plane, kube-proxy) and
# the pause binary from the Go module proxy. Output: $CACHE/k8s-$K8S_VERSION/bin.
# Cold: 20-45 min on 2 cores. Cached by version afterwards.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K8S_CMDS=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)

# usage: staging_version MODULE WANTED -> WANTED if the proxy serves it, else the nearest
# served patch release of the same minor (said loudly); never another minor.
staging_version() {
  local m=$1 want=$2 near
  if go list -m "$m@$want" >/dev/null 2>&1; then echo "$want"; return 0; fi
  near=$( { go list -m -versions "$m" 2>/dev/null || true; } | tr ' ' '\n' | grep -E "^${want%.*}\.[0-9]+$" | sort -V \
    | awk -v w="${want##*.}" -F. '{d = $3 - w; if (d < 0) d = -d; if (best == "" || d < bd) {best = $0; bd = d}} END {print best}') || true
  if [[ -z $near ]]; then
    # Modules the build never loads (sample-*, code-generator, …) need no published version.
    echo "note: the module proxy serves no ${want%.*}.x of $m; keeping $want (the build does not load it)" >&2
    echo "$want"
    return 0
  fi
  echo "WARNING: the module proxy lacks $m@$want; using the nearest served $near" >&2
  echo "$near"
}

# usage: build_k8s OUTDIR
build_k8s() {
  local out=$1 work=$1/src minor staging src
  mkdir -p "$work" "$out/bin"
  cd "$work" || return
  minor=${K8S_VERSION#v1.}                       # 34.4 -> staging modules are v0.34.4
  src=$(module_dir "k8s.io/kubernetes@$K8S_VERSION")
  go mod init airgap.local/k8s-build
  # The kubernetes module points its staging modules at ./staging, which the module zip lacks:
  # replace each with the published staging module of the same release.
  mapfile -t staging < <(sed -n '/^replace (/,/^)/s/^\t\(k8s.io\/[^ ]*\) => .*/\1/p' "$src/go.mod")
  for m in "${staging[@]}"; do go mod edit -replace="$m=$m@$(staging_version "$m" "v0.$minor")"; done
  go mod edit "-godebug=$(sed -n 's/^godebug //p' "$src/go.mod")"
  for c in "${K8S_CMDS[@]}"; do echo "k8s.io/kubernetes/cmd/$c@$K8S_VERSION"; done | xargs go get
  local commit ldflags
  commit=$(printf '%s' "$K8S_VERSION" | sha1sum | cut -c1-40)
  ldflags="-s -w"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=$commit -X $pkg.buildDate=2026-01-01T00:00:00Z"
  done
  for c in "${K8S_CMDS[@]}"; do
    echo "building $c"
    CGO_ENABLED=0 go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$out/bin/$c" "k8s.io/kubernetes/cmd/$c"
  done
  gcc -Os -static -o "$out/bin/pause" "$src/build/pause/linux/pause.c"
  "$out/bin/kubeadm" version -o short
  rm -rf "$work"
}

main() {
  step "k8s-binaries-$K8S_VERSION" "$CACHE/k8s-$K8S_VERSION" build_k8s
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
