#!/usr/bin/env bash
# Builds a kind node image from package registries alone: a Debian bookworm rootfs laid out
# like kind's base image, the Kubernetes binaries from ci/k8s.sh, and every image kubeadm and
# kind need (pause, etcd, coredns, control plane, kube-proxy, local-path-provisioner, and the pod
# network: flannel and kube-router from ci/cni.sh), each built from the Go module proxy or Debian
# and pre-imported into the node's containerd.
# Prints the node image name on stdout. Every step is cached by version; see ci/lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REG=registry.k8s.io
LOCAL=mysql-chart.local
KIND_SRC=  # kind's module source (base image files, storage manifest): set by main
K8S_BIN=$CACHE/k8s-$K8S_VERSION/bin
NET_ROOTFS=$CACHE/net-rootfs-$DEBIAN_SUITE-$NODE_RECIPE/rootfs.tar
BASE_IMAGE=$LOCAL/kind-base:$KIND_VERSION-$DEBIAN_SUITE-$NODE_RECIPE
FLANNEL_IMAGE=$LOCAL/flannel:$FLANNEL_VERSION
CLUSTER_NAME=${CLUSTER_NAME:-mysql-chart}  # the pod network's manifest names its control plane
KUBE_ROUTER_IMAGE=$LOCAL/kube-router:$KUBE_ROUTER_VERSION-$(bash "$ROOT/ci/cni.sh" deps-key)
NODE_PKGS=systemd,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,nfs-common,open-iscsi,bash,ca-certificates,curl,jq,procps,containerd,runc,containernetworking-plugins
NET_PKGS=iptables,nftables,conntrack,kmod,ipset,iproute2

# usage: debootstrap_into OUTDIR PACKAGES  -> OUTDIR/rootfs.tar
debootstrap_into() {
  local out=$1 pkgs=$2
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
  debootstrap --variant=minbase --include="$pkgs" "$DEBIAN_SUITE" "$out/rootfs" http://deb.debian.org/debian
}

# usage: build_node_rootfs OUTDIR  -- kind's base image, made with debootstrap
build_node_rootfs() {
  local out=$1 r=$1/rootfs f=$KIND_SRC/images/base/files
  debootstrap_into "$out" "$NODE_PKGS"
  install -m 0755 "$f"/usr/local/bin/* "$r/usr/local/bin/"
  mkdir -p "$r/kind/bin" "$r/LICENSES" "$r/etc/systemd/system/kubelet.service.d" "$r/etc/kubernetes/manifests" "$r/kind/manifests"
  cp -r "$f"/kind/. "$r/kind/" && chmod -R a+rX "$r/kind" && chmod 0755 "$r"/kind/bin/*
  install -m 0644 "$f"/etc/crictl.yaml "$r/etc/"
  install -m 0644 "$f"/etc/default/kubelet "$r/etc/default/"
  install -m 0644 "$f"/etc/sysctl.d/* "$r/etc/sysctl.d/"
  install -m 0644 "$f"/etc/systemd/system/*.service "$f"/etc/systemd/system/*.slice "$r/etc/systemd/system/"
  install -m 0644 "$f"/etc/systemd/system/kubelet.service.d/* "$r/etc/systemd/system/kubelet.service.d/"
  rm -f "$r/etc/systemd/system/containerd-fuse-overlayfs.service"
  # containerd: kind's config, minus the rootless fuse-overlayfs plugin, with the pause tag we
  # import, and oom_score_adj restricted (this VM refuses negative values even to root).
  mkdir -p "$r/etc/containerd"
  sed -e '/^\[proxy_plugins/,/^$/d' -e '/fuse-overlayfs is used/d' \
      -e "s|sandbox_image = .*|sandbox_image = \"$REG/pause:$PAUSE_TAG\"|" \
      -e 's|restrict_oom_score_adj = false|restrict_oom_score_adj = true|' \
      "$f/etc/containerd/config.toml" >"$r/etc/containerd/config.toml"
  ln -sf /usr/bin/containerd "$r/usr/local/bin/containerd"
  ln -sf /usr/bin/ctr "$r/usr/local/bin/ctr"
  chroot "$r" ctr oci spec \
    | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' >"$r/etc/containerd/cri-base.json"
  # CNI: Debian's plugins where containerd looks for them. No config: flannel's DaemonSet writes it.
  mkdir -p "$r/opt/cni/bin" "$r/etc/cni/net.d"
  for p in "$r"/usr/lib/cni/*; do ln -sf "/usr/lib/cni/${p##*/}" "$r/opt/cni/bin/${p##*/}"; done
  # The systemd adjustments of kind's base Dockerfile.
  find "$r/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$r"/lib/systemd/system/multi-user.target.wants/* "$r"/etc/systemd/system/*.wants/* \
        "$r"/lib/systemd/system/local-fs.target.wants/* "$r"/lib/systemd/system/sockets.target.wants/*udev* \
        "$r"/lib/systemd/system/sockets.target.wants/*initctl* "$r"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$r/etc/systemd/journald.conf"
  ln -sf /lib/systemd/systemd "$r/sbin/init"
  chroot "$r" systemctl enable kubelet.service containerd.service undo-mount-hacks.service
  chroot "$r" systemctl mask systemd-binfmt.service
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
  tar -C "$r" -cf "$out/rootfs.tar" .
  rm -rf "$r"
}

# usage: build_net_rootfs OUTDIR  -- Debian userland for kube-proxy, flanneld and kube-router
# (iptables behind the wrapper that follows the node's backend, ipset, conntrack, ip)
build_net_rootfs() {
  local out=$1 r=$1/rootfs
  debootstrap_into "$out" "$NET_PKGS"
  install -m 0755 "$ROOT/ci/files/iptables-wrapper.sh" "$r/usr/sbin/iptables-wrapper"
  for t in iptables ip6tables; do for s in "" -save -restore; do ln -sf iptables-wrapper "$r/usr/sbin/$t$s"; done; done
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/usr/share/doc "$r"/usr/share/man
  tar -C "$r" -cf "$out/rootfs.tar" .
  rm -rf "$r"
}

# usage: build_etcd OUTDIR  -- etcd from a wrapper module (etcd's own go.mod has replaces)
build_etcd() {
  local out=$1 v=$ETCD_VERSION
  mkdir -p "$out/src" && cd "$out/src" || return
  go mod init airgap.local/etcd-build
  go get "go.etcd.io/etcd/server/v3@$v" "go.etcd.io/etcd/api/v3@$v" "go.etcd.io/etcd/client/pkg/v3@$v" \
         "go.etcd.io/etcd/client/v3@$v" "go.etcd.io/etcd/pkg/v3@$v"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
  cd "$out" && rm -rf "$out/src" && "$out/etcd" --version
}

build_coredns() {
  GOBIN=$1 CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
  "$1/coredns" -version
}

build_crictl() {
  GOBIN=$1 CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

build_local_path() {
  GOBIN=$1 CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
}

# usage: image_exists NAME
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# usage: scratch_image NAME BINARY_DIR [ENTRYPOINT_BINARY]  -- FROM scratch with the binaries
# on PATH, a passwd file and /tmp: enough for the static programs kubeadm and kind run.
scratch_image() {
  local name=$1 dir=$2 entry=${3:-} ctx
  image_exists "$name" && { log "image $name: present"; return 0; }
  ctx=$(mktemp -d)
  mkdir -p "$ctx/root/usr/local/bin" "$ctx/root/etc" "$ctx/root/tmp"
  cp "$dir"/* "$ctx/root/usr/local/bin/"
  chmod 0755 "$ctx"/root/usr/local/bin/*
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$ctx/root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$ctx/root/etc/group"
  printf 'hosts: files dns\n' >"$ctx/root/etc/nsswitch.conf"
  chmod 1777 "$ctx/root/tmp"
  printf 'FROM scratch\nCOPY root/ /\nENV PATH=/usr/local/bin:/usr/bin:/bin\n' >"$ctx/Dockerfile"
  if [[ -n $entry ]]; then printf 'ENTRYPOINT ["/usr/local/bin/%s"]\n' "$entry" >>"$ctx/Dockerfile"; fi
  docker_build "$name" "$ctx"
  rm -rf "$ctx"
  log "image $name: built"
}

# usage: rootfs_image NAME ROOTFS_TAR [DOCKERFILE_LINES...]
rootfs_image() {
  local name=$1 tar=$2 ctx; shift 2
  image_exists "$name" && { log "image $name: present"; return 0; }
  ctx=$(mktemp -d)
  ln "$tar" "$ctx/rootfs.tar" 2>/dev/null || cp "$tar" "$ctx/rootfs.tar"
  { echo 'FROM scratch'; echo 'ADD rootfs.tar /'; printf '%s\n' "$@"; } >"$ctx/Dockerfile"
  docker_build "$name" "$ctx"
  rm -rf "$ctx"
  log "image $name: built"
}

# usage: net_image NAME BINARY...  -- the network userland (build_net_rootfs) plus the binaries
net_image() {
  local name=$1 ctx; shift
  image_exists "$name" && { log "image $name: present"; return 0; }
  ctx=$(mktemp -d)
  ln "$NET_ROOTFS" "$ctx/rootfs.tar" 2>/dev/null || cp "$NET_ROOTFS" "$ctx/rootfs.tar"
  cp "$@" "$ctx/"
  { echo 'FROM scratch'; echo 'ADD rootfs.tar /'
    for b in "$@"; do echo "COPY ${b##*/} /usr/local/bin/"; done; } >"$ctx/Dockerfile"
  docker_build "$name" "$ctx"
  rm -rf "$ctx"
  log "image $name: built"
}

# usage: one_binary_dir BINARY...  -> a temp dir holding just those binaries
one_binary_dir() {
  local d
  d=$(mktemp -d)
  cp "$@" "$d/"
  echo "$d"
}

# usage: storage_manifest > default-storage.yaml  -- kind's own local-path manifest, taken
# from the kind module at build time, pointed at the locally built images.
storage_manifest() {
  awk '/^const defaultStorageManifest = `/{on=1; next} on && /^`/{exit} on' "$KIND_SRC/pkg/build/nodeimage/const_storage.go" \
    | sed -e "s|\` + storageProvisionerImage + \`|$LOCAL/local-path-provisioner:$LOCAL_PATH_VERSION|" \
          -e "s|\` + storageHelperImage + \`|$LOCAL/busybox:1.35|"
}

build_component_images() {
  local d
  d=$(one_binary_dir "$K8S_BIN/pause"); scratch_image "$REG/pause:$PAUSE_TAG" "$d" pause; rm -rf "$d"
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    d=$(one_binary_dir "$K8S_BIN/$c"); scratch_image "$REG/$c:$K8S_VERSION" "$d"; rm -rf "$d"
  done
  scratch_image "$REG/etcd:$ETCD_TAG" "$CACHE/etcd-$ETCD_VERSION"
  scratch_image "$REG/coredns/coredns:$COREDNS_VERSION" "$CACHE/coredns-$COREDNS_VERSION" coredns
  scratch_image "$LOCAL/local-path-provisioner:$LOCAL_PATH_VERSION" "$CACHE/local-path-$LOCAL_PATH_VERSION"
  net_image "$REG/kube-proxy:$K8S_VERSION" "$K8S_BIN/kube-proxy"
  net_image "$FLANNEL_IMAGE" "$CACHE/flanneld-$FLANNEL_VERSION/flanneld"
  net_image "$KUBE_ROUTER_IMAGE" "$(bash "$ROOT/ci/cni.sh" kube-router-dir)/kube-router"
  bash "$ROOT/ci/db-images.sh" busybox
}

node_images() {
  echo "$REG/pause:$PAUSE_TAG" "$REG/etcd:$ETCD_TAG" "$REG/coredns/coredns:$COREDNS_VERSION"
  for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do echo "$REG/$c:$K8S_VERSION"; done
  echo "$LOCAL/local-path-provisioner:$LOCAL_PATH_VERSION" "$LOCAL/busybox:1.35" "$FLANNEL_IMAGE" "$KUBE_ROUTER_IMAGE"
}

# usage: cni_manifest > default-cni.yaml  -- ci/node/default-cni.yaml naming the images built here
cni_manifest() {
  sed -e "s|@FLANNEL_IMAGE@|$FLANNEL_IMAGE|" -e "s|@KUBE_ROUTER_IMAGE@|$KUBE_ROUTER_IMAGE|" \
      -e "s|@API_SERVER_HOST@|$CLUSTER_NAME-control-plane|" "$ROOT/ci/node/default-cni.yaml"
}

# usage: node_tag -> the node image name, keyed by every input of the recipe
node_tag() {
  local h
  h=$( { printf '%s\n' "$K8S_VERSION" "$KIND_VERSION" "$ETCD_VERSION" "$COREDNS_VERSION" "$LOCAL_PATH_VERSION" \
            "$CRICTL_VERSION" "$PAUSE_TAG" "$ETCD_TAG" "$NODE_RECIPE" "$DEBIAN_SUITE" \
            "$FLANNEL_VERSION" "$FLANNEL_CNI_VERSION" "$KUBE_ROUTER_VERSION" "$KUBE_ROUTER_DEPS" "$CLUSTER_NAME"
          cat "$ROOT/ci/node-image.sh" "$ROOT/ci/cni.sh" "$ROOT"/ci/node/*.yaml "$ROOT"/ci/files/iptables-wrapper.sh; } | sha256sum | cut -c1-10)
  echo "$LOCAL/kind-node:$K8S_VERSION-$h"
}

# usage: assemble_node NODE_IMAGE  -- base + binaries + pre-imported images, then commit
assemble_node() {
  local node=$1 base=$BASE_IMAGE c
  rootfs_image "$base" "$CACHE/node-rootfs-$KIND_VERSION-$DEBIAN_SUITE-$NODE_RECIPE/rootfs.tar" \
    'ENV container=docker' 'STOPSIGNAL SIGRTMIN+3' 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]'
  c=$(docker run -d --privileged --entrypoint=sleep "$base" infinity)
  trap 'docker rm -f "$c" >/dev/null 2>&1 || true' RETURN
  for b in kubeadm kubelet kubectl; do docker cp "$K8S_BIN/$b" "$c:/usr/bin/$b"; done
  docker cp "$CACHE/crictl-$CRICTL_VERSION/crictl" "$c:/usr/local/bin/crictl"   # kind export logs uses it
  docker exec "$c" sh -c "echo $K8S_VERSION > /kind/version"
  docker cp "$CACHE/flannel-cni-$FLANNEL_CNI_VERSION/flannel" "$c:/opt/cni/bin/flannel"
  cni_manifest | docker exec -i "$c" sh -c 'cat > /kind/manifests/default-cni.yaml'
  storage_manifest | docker exec -i "$c" sh -c 'cat > /kind/manifests/default-storage.yaml'
  docker exec -d "$c" sh -c 'containerd >/var/log/containerd-build.log 2>&1'
  until docker exec "$c" ctr version >/dev/null 2>&1; do sleep 1; done
  for img in $(node_images); do
    log "importing $img into the node"
    docker save "$img" | docker exec -i "$c" ctr -n k8s.io images import \
      --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests -
  done
  docker exec "$c" ctr -n k8s.io images ls -q >&2
  docker exec "$c" pkill containerd
  while docker exec "$c" pgrep containerd >/dev/null; do sleep 1; done
  docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' "$c" "$node" >/dev/null
}

main() {
  local node repo
  node=$(node_tag)
  if image_exists "$node"; then log "node image $node: present"; echo "$node"; return 0; fi
  bash "$ROOT/ci/k8s.sh"
  KIND_SRC=$(module_dir "sigs.k8s.io/kind@$KIND_VERSION")
  step "node-rootfs" "$CACHE/node-rootfs-$KIND_VERSION-$DEBIAN_SUITE-$NODE_RECIPE" build_node_rootfs
  step "net-rootfs" "$CACHE/net-rootfs-$DEBIAN_SUITE-$NODE_RECIPE" build_net_rootfs
  bash "$ROOT/ci/cni.sh"
  step "etcd-$ETCD_VERSION" "$CACHE/etcd-$ETCD_VERSION" build_etcd
  step "coredns-$COREDNS_VERSION" "$CACHE/coredns-$COREDNS_VERSION" build_coredns
  step "local-path-$LOCAL_PATH_VERSION" "$CACHE/local-path-$LOCAL_PATH_VERSION" build_local_path
  step "crictl-$CRICTL_VERSION" "$CACHE/crictl-$CRICTL_VERSION" build_crictl
  local start=$SECONDS
  log "images: building component images"
  build_component_images
  log "node: assembling $node"
  assemble_node "$node"
  log "node: $node ready in $(( SECONDS - start ))s"
  # Older recipes' node and base images are dead weight (1.2 GB and 0.4 GB each).
  for repo in "$LOCAL/kind-node" "$LOCAL/kind-base"; do docker images --format '{{.Repository}}:{{.Tag}}' "$repo"; done \
    | grep -vxF -e "$node" -e "$BASE_IMAGE" | xargs -r docker rmi >/dev/null 2>&1 || true
  echo "$node"
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
