#!/usr/bin/env bash
# Builds the command-line tools the project drives into bin/ (gitignored) from the Go module
# proxy: kind, helm (4, and 3 as helm3 for compatibility checks); promtool from Debian's prometheus
# package. kubectl is copied from the Kubernetes build (ci/k8s.sh) so that client and cluster
# versions match.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# usage: build_go_tool OUTDIR NAME MODULE_PATH@VERSION [LDFLAGS]
build_go_tool() {
  local out=$1 name=$2 pkg=$3 ldflags=${4:-}
  GOBIN=$out CGO_ENABLED=0 go install -trimpath -ldflags "-s -w $ldflags" "$pkg"
  [[ -x $out/$name ]] || mv "$out"/* "$out/$name"
  "$out/$name" version
}

build_kind() { build_go_tool "$1" kind "sigs.k8s.io/kind@$KIND_VERSION"; }
build_helm() {
  local major=${HELM_VERSION%%.*}
  build_go_tool "$1" helm "helm.sh/helm/$major/cmd/helm@$HELM_VERSION" \
    "-X helm.sh/helm/$major/internal/version.version=$HELM_VERSION"
}
# Helm 3 takes the Kubernetes version it assumes for `template` and `lint` (and so for a chart's
# kubeVersion) from ldflags its release build sets; without them it assumes v1.20.
HELM3_K8S_MINOR=37  # client-go v0.37 in helm v3.22's go.mod
build_helm3() {
  local x=""
  for pkg in chartutil lint/rules; do
    x+=" -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMinor=$HELM3_K8S_MINOR"
  done
  build_go_tool "$1" helm "helm.sh/helm/v3/cmd/helm@$HELM3_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION$x"
}

# promtool (`promtool test rules` on the chart's alert rules, in `make unit`): from the host suite's
# prometheus package, unpacked only (nothing installed, no service started); keyed by its version.
# usage: candidate PACKAGE -> the version apt would install, or nothing
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}'; }
promtool_version() {
  local v
  v=$(candidate prometheus)
  if [[ -z $v ]]; then
    log "promtool: refreshing the package lists (no prometheus package known yet)"
    apt-get update -qq >&2
    v=$(candidate prometheus)
  fi
  [[ -n $v ]] || die "the host's Debian suite serves no prometheus package (promtool)"
  printf '%s\n' "$v"
}
fetch_promtool() {
  local out=$1 version=$2
  ( cd "$out" && apt-get download "prometheus=$version" )
  dpkg-deb -x "$out"/prometheus_*.deb "$out/pkg"
  mv "$out/pkg/usr/bin/promtool" "$out/promtool"
  rm -rf "$out/pkg" "$out"/prometheus_*.deb
  "$out/promtool" --version
}

# usage: link NAME CACHED_BINARY -> bin/NAME
link() { ln -sf "$2" "$BIN/$1"; }

main() {
  local what=${1:-all}
  if [[ $what == all || $what == kind ]]; then
    step "kind-$KIND_VERSION" "$CACHE/kind-$KIND_VERSION" build_kind
    link kind "$CACHE/kind-$KIND_VERSION/kind"
  fi
  if [[ $what == all || $what == helm ]]; then
    step "helm-$HELM_VERSION" "$CACHE/helm-$HELM_VERSION" build_helm
    link helm "$CACHE/helm-$HELM_VERSION/helm"
    step "helm-$HELM3_VERSION" "$CACHE/helm-$HELM3_VERSION-k8s1.$HELM3_K8S_MINOR" build_helm3
    link helm3 "$CACHE/helm-$HELM3_VERSION-k8s1.$HELM3_K8S_MINOR/helm"
  fi
  if [[ $what == all || $what == promtool ]]; then
    local promtool
    promtool=$(promtool_version)
    step "promtool-$promtool" "$CACHE/promtool-$promtool" fetch_promtool "$promtool"
    link promtool "$CACHE/promtool-$promtool/promtool"
  fi
  if [[ $what == all || $what == kubectl ]]; then
    if [[ $(bash "$ROOT/ci/mode.sh") == registry ]] && [[ ! -e $BIN/kubectl ]] && command -v kubectl >/dev/null; then
      log "kubectl: using $(command -v kubectl) (registry mode builds no Kubernetes binaries)"
    else
      bash "$ROOT/ci/k8s.sh"
      link kubectl "$CACHE/k8s-$K8S_VERSION/bin/kubectl"
    fi
  fi
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
