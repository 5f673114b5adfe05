#!/usr/bin/env bash
# Builds the pod network of the multi-node cluster from the Go module proxy and Debian (issue 10,
# built into the node image by ci/node-image.sh): flanneld (VXLAN between nodes), the flannel CNI plugin,
# and kube-router's NetworkPolicy controller alone (--run-firewall, no routing, no service proxy).
# Why these, and what else was tried: ci/node/cni-research.md. Every step is cached by version.
# usage: cni.sh [build]     builds them (cached)
#        cni.sh deps-key   the hash of KUBE_ROUTER_DEPS in kube-router's cache entry and image tag
#        cni.sh kube-router-dir   that cache entry
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# usage: build_flanneld OUTDIR -- flannel's main package, built in a module of its own: the
# Tencent VPC backend (its SDK's zip is refused by the proxy) and the UDP backend (cgo) left out.
build_flanneld() {
  local out=$1 src
  src=$(module_dir "github.com/flannel-io/flannel@$FLANNEL_VERSION")
  mkdir -p "$out/src"
  grep -v -e 'pkg/backend/tencentvpc"' -e 'pkg/backend/udp"' "$src/main.go" >"$out/src/main.go"
  cd "$out/src" || return
  go mod init airgap.local/flanneld
  go mod edit -require "github.com/flannel-io/flannel@$FLANNEL_VERSION"
  go mod tidy
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION" \
    -o "$out/flanneld" .
  cd "$out" && rm -rf "$out/src"
  "$out/flanneld" --version
}

# usage: build_flannel_cni OUTDIR -- the flannel CNI plugin (delegates to bridge + host-local):
# containernetworking/plugins' last release that carries it
build_flannel_cni() {
  local out=$1
  GOBIN=$out CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod" go install -trimpath -ldflags "-s -w" \
    "github.com/containernetworking/plugins/plugins/meta/flannel@$FLANNEL_CNI_VERSION"
}

# usage: build_kube_router OUTDIR -- kube-router's command in a module of its own, with the
# dependencies that have published advisories raised (KUBE_ROUTER_DEPS; README.md says which)
build_kube_router() {
  local out=$1 src deps
  src=$(module_dir "github.com/cloudnativelabs/kube-router/v2@$KUBE_ROUTER_VERSION")
  mkdir -p "$out/src"
  cp "$src/cmd/kube-router/kube-router.go" "$out/src/main.go"
  cd "$out/src" || return
  go mod init airgap.local/kube-router
  go mod edit -require "github.com/cloudnativelabs/kube-router/v2@$KUBE_ROUTER_VERSION"
  go mod tidy
  read -ra deps <<<"$KUBE_ROUTER_DEPS"
  go get "${deps[@]}"
  go mod tidy
  go list -m "${deps[@]%@*}"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/kube-router" .
  cd "$out" && rm -rf "$out/src"
  "$out/kube-router" --version
}

# usage: deps_key -> a short hash of KUBE_ROUTER_DEPS, for the cache entry's name
deps_key() { printf '%s' "$KUBE_ROUTER_DEPS" | sha256sum | cut -c1-8; }

# usage: kube_router_dir -> the cache entry kube-router is built into
kube_router_dir() { echo "$CACHE/kube-router-$KUBE_ROUTER_VERSION-$(deps_key)"; }

main() {
  case ${1:-build} in
    build)
      step "flanneld-$FLANNEL_VERSION" "$CACHE/flanneld-$FLANNEL_VERSION" build_flanneld
      step "flannel-cni-$FLANNEL_CNI_VERSION" "$CACHE/flannel-cni-$FLANNEL_CNI_VERSION" build_flannel_cni
      step "kube-router-$KUBE_ROUTER_VERSION" "$(kube_router_dir)" build_kube_router
      ;;
    deps-key) deps_key ;;
    kube-router-dir) kube_router_dir ;;
    *) die "usage: cni.sh [build|deps-key|kube-router-dir]" ;;
  esac
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
