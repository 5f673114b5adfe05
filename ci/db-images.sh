#!/usr/bin/env bash
# Builds the images the chart's pods and the tests use, from Debian packages, and loads them
# into the kind cluster (every image: uid/gid 999 for mysql, empty datadir, nothing pulled):
#   mysql-chart.local/mysql:9.7        MySQL 9.7 LTS from sid: server (clone and semi-sync plugins
#                                      in its plugin dir) and client
#   mysql-chart.local/mysql:9.7-r2     the same MySQL from a second package set (adds procps,
#                                      iproute2, less): a genuinely different image for the
#                                      rolling-update test, since Debian serves one 9.7 release
#   mysql-chart.local/mariadb:11.8     MariaDB 11.8 LTS from trixie: server, client, mariadb-backup,
#                                      mbstream, socat
#   mysql-chart.local/mariadb:10.11    MariaDB 10.11 LTS from bookworm, the same package set: the
#                                      version the LTS-upgrade test installs first
#   mysql-chart.local/busybox:1.35     busybox-static (smoke tests, local-path helper)
#   mysql-chart.local/mysqld-exporter:0.17.2
#                                      Prometheus mysqld_exporter from trixie's package: its binary
#                                      and glibc, run as nobody (the metrics sidecar)
#   mysql-chart.local/bench:trixie-1   sysbench, fio, iperf3, the MariaDB client and python3-pymysql
#                                      from trixie: the load and limits of `make bench` (built by
#                                      `bench` only, never by `build`: the tests do not use it)
# usage: db-images.sh [build|busybox|mysql|mariadb|exporter|bench|load CLUSTER [IMAGE...]]
#   (default: build; load without IMAGEs loads the images `build` makes)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOCAL=mysql-chart.local
MYSQL_IMAGE=$LOCAL/mysql:$MYSQL_SERIES
MYSQL_IMAGE_ALT=$LOCAL/mysql:$MYSQL_SERIES-r2
MARIADB_IMAGE=$LOCAL/mariadb:$MARIADB_SERIES
MARIADB_PREVIOUS_IMAGE=$LOCAL/mariadb:$MARIADB_PREVIOUS_SERIES
BUSYBOX_IMAGE=$LOCAL/busybox:1.35
EXPORTER_IMAGE=$LOCAL/mysqld-exporter:$EXPORTER_VERSION
BENCH_IMAGE=$LOCAL/bench:$BENCH_SUITE-$BENCH_RECIPE
BENCH_PKGS=sysbench,fio,iperf3,mariadb-client,python3,python3-pymysql,ca-certificates,coreutils,bash
MIRROR=http://deb.debian.org/debian
MYSQL_PKGS=mysql-server-core,mysql-client-core,bash,coreutils,tzdata
# What the second MySQL build adds: tools for looking into a running pod.
MYSQL_ALT_PKGS=(procps iproute2 less)
MARIADB_PKGS=mariadb-server,mariadb-client,mariadb-backup,socat,procps,gawk,sed,grep,coreutils,bash,ca-certificates,tzdata

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# usage: trim_rootfs ROOT -- drops apt caches, docs and man pages from an image root
trim_rootfs() {
  rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/* \
    "$1"/usr/share/doc "$1"/usr/share/man
}

# usage: debootstrap_root ROOT SUITE PACKAGES -- a minimal Debian root with PACKAGES
debootstrap_root() {
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
  debootstrap --variant=minbase --include="$3" "$2" "$1" "$MIRROR"
}

# usage: expect_version WHAT SERIES VERSION_LINE -- fails unless VERSION_LINE names SERIES.x
expect_version() {
  [[ $3 == *" $2."* ]] || die "$1: expected a $2.x server, the package gave: $3"
  log "$1: $3"
}

# usage: build_mysql_rootfs OUTDIR -> OUTDIR/rootfs.tar and OUTDIR/rootfs-r2.tar
# A debootstrap of sid rather than sid packages pinned into a stable root: the server's
# libraries then come from the one suite they were built against, and apt resolves nothing by hand.
build_mysql_rootfs() {
  local out=$1 r=$1/rootfs
  debootstrap_root "$r" "$MYSQL_SUITE" "$MYSQL_PKGS"
  expect_version mysql "$MYSQL_SERIES" "$(chroot "$r" mysqld --version)"
  [[ -f $r/usr/lib/mysql/plugin/mysql_clone.so && -f $r/usr/lib/mysql/plugin/semisync_source.so ]] ||
    die "the clone or semi-sync plugin is missing from $r/usr/lib/mysql/plugin"
  # The official images run mysqld as uid/gid 999; so does the chart. The -core packages create no user.
  chroot "$r" groupadd --system -g 999 mysql
  chroot "$r" useradd --system -u 999 -g 999 -d /var/lib/mysql -s /usr/sbin/nologin mysql
  mkdir -p "$r/var/lib/mysql" "$r/run/mysqld" "$r/var/lib/mysql-files"
  chroot "$r" chown mysql:mysql /var/lib/mysql /run/mysqld /var/lib/mysql-files
  trim_rootfs "$r"
  tar -C "$r" -cf "$out/rootfs.tar" .
  # The second build: the same server plus a few tools. sid's Release file is past its
  # Valid-Until date, so apt is told not to check it.
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  chroot "$r" apt-get -o Acquire::Check-Valid-Until=false update -qq
  DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get -o Acquire::Check-Valid-Until=false \
    install -y -qq --no-install-recommends "${MYSQL_ALT_PKGS[@]}"
  trim_rootfs "$r"
  : >"$r/etc/resolv.conf"
  tar -C "$r" -cf "$out/rootfs-r2.tar" .
  rm -rf "$r"
}

# usage: build_mariadb_rootfs OUTDIR SUITE SERIES -> OUTDIR/rootfs.tar
build_mariadb_rootfs() {
  local out=$1 suite=$2 series=$3 r=$1/rootfs
  debootstrap_root "$r" "$suite" "$MARIADB_PKGS"
  expect_version "mariadb ($suite)" "$series" "$(chroot "$r" mariadbd --version)"
  chroot "$r" groupmod -g 999 mysql
  chroot "$r" usermod -u 999 -g 999 mysql
  # The package leaves an initialised datadir behind; the chart initialises its own.
  rm -rf "$r"/var/lib/mysql/* "$r"/run/mysqld
  mkdir -p "$r/var/lib/mysql" "$r/run/mysqld" "$r/var/log/mysql"
  chroot "$r" chown -R mysql:mysql /var/lib/mysql /run/mysqld /var/log/mysql
  # Listen on every address as the official image does (Debian binds to 127.0.0.1).
  sed -i 's/^bind-address/#bind-address/' "$r/etc/mysql/mariadb.conf.d/50-server.cnf"
  trim_rootfs "$r"
  tar -C "$r" -cf "$out/rootfs.tar" .
  rm -rf "$r"
}

# usage: rootfs_image TAG ROOTFS_TAR CMD -- a FROM scratch image of ROOTFS_TAR running as 999
rootfs_image() {
  local ctx
  ctx=$(mktemp -d)
  ln "$2" "$ctx/rootfs.tar" 2>/dev/null || cp "$2" "$ctx/rootfs.tar"
  printf '%s\n' 'FROM scratch' 'ADD rootfs.tar /' 'USER 999:999' 'EXPOSE 3306' "CMD [\"$3\"]" >"$ctx/Dockerfile"
  docker_build "$1" "$ctx"
  rm -rf "$ctx"
  log "image $1: built"
}

build_mysql() {
  local dir=$CACHE/mysql-rootfs-$MYSQL_SUITE-$MYSQL_SERIES-$DB_RECIPE
  if image_exists "$MYSQL_IMAGE" && image_exists "$MYSQL_IMAGE_ALT"; then
    log "images $MYSQL_IMAGE, $MYSQL_IMAGE_ALT: present"
    return 0
  fi
  step "mysql-rootfs-$MYSQL_SERIES" "$dir" build_mysql_rootfs
  rootfs_image "$MYSQL_IMAGE" "$dir/rootfs.tar" mysqld
  rootfs_image "$MYSQL_IMAGE_ALT" "$dir/rootfs-r2.tar" mysqld
}

# usage: build_mariadb_image TAG SUITE SERIES
build_mariadb_image() {
  local tag=$1 suite=$2 series=$3 dir=$CACHE/mariadb-rootfs-$2-$3-$DB_RECIPE
  if image_exists "$tag"; then log "image $tag: present"; return 0; fi
  step "mariadb-rootfs-$series" "$dir" build_mariadb_rootfs "$suite" "$series"
  rootfs_image "$tag" "$dir/rootfs.tar" mariadbd
}

build_mariadb() {
  build_mariadb_image "$MARIADB_IMAGE" "$MARIADB_SUITE" "$MARIADB_SERIES"
  build_mariadb_image "$MARIADB_PREVIOUS_IMAGE" "$MARIADB_PREVIOUS_SUITE" "$MARIADB_PREVIOUS_SERIES"
}

build_busybox() {
  local ctx
  if image_exists "$BUSYBOX_IMAGE"; then log "image $BUSYBOX_IMAGE: present"; return 0; fi
  ctx=$(mktemp -d)
  ( cd "$ctx" && apt-get download busybox-static >/dev/null ) || { apt-get update -qq && ( cd "$ctx" && apt-get download busybox-static >/dev/null ); }
  dpkg-deb -x "$ctx"/busybox-static_*.deb "$ctx/root"
  mkdir -p "$ctx/root/tmp" "$ctx/root/etc" && chmod 1777 "$ctx/root/tmp"
  for a in $("$ctx/root/bin/busybox" --list); do [[ -e $ctx/root/bin/$a ]] || ln -s busybox "$ctx/root/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$ctx/root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$ctx/root/etc/group"
  printf '%s\n' 'FROM scratch' 'COPY root/ /' 'ENV PATH=/bin' 'CMD ["sh"]' >"$ctx/Dockerfile"
  docker_build "$BUSYBOX_IMAGE" "$ctx"
  rm -rf "$ctx"
  log "image $BUSYBOX_IMAGE: built"
}

# usage: suite_download SUITE DIR PACKAGE... -- downloads PACKAGEs' .debs of Debian SUITE into DIR,
# through an apt state of its own under DIR (the host's suite and lists stay as they are)
suite_download() {
  local suite=$1 dir=$2; shift 2
  local -a apt=(-o "Dir::Etc::SourceList=$dir/apt/sources.list" -o Dir::Etc::SourceParts=-
    -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache" -o APT::Sandbox::User=root)
  mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial"
  printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$MIRROR" "$suite" \
    >"$dir/apt/sources.list"
  apt-get "${apt[@]}" update -qq
  ( cd "$dir" && apt-get "${apt[@]}" download "$@" )
  rm -rf "$dir/apt"
}

# usage: build_exporter_rootfs OUTDIR -> OUTDIR/rootfs.tar: /bin/mysqld_exporter (Debian's
# prometheus-mysqld-exporter, linked against glibc only) and the glibc it was built against
build_exporter_rootfs() {
  local out=$1 r=$1/rootfs x=$1/unpacked lib=usr/lib/x86_64-linux-gnu deb line
  suite_download "$EXPORTER_SUITE" "$out" prometheus-mysqld-exporter libc6
  mkdir -p "$x" "$r/bin" "$r/$lib" "$r/usr/lib64" "$r/etc" "$r/tmp"
  for deb in "$out"/*.deb; do dpkg-deb -x "$deb" "$x"; done
  cp "$x/usr/bin/prometheus-mysqld-exporter" "$r/bin/mysqld_exporter"
  cp -a "$x/$lib/libc.so.6" "$x/$lib/ld-linux-x86-64.so.2" "$r/$lib/"
  ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$r/usr/lib64/ld-linux-x86-64.so.2"
  ln -s usr/lib64 "$r/lib64"
  ln -s usr/lib "$r/lib"
  chmod 1777 "$r/tmp"
  printf 'nobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'nogroup:x:65534:\n' >"$r/etc/group"
  line=$(chroot "$r" /bin/mysqld_exporter --version 2>&1 | head -n 1)
  [[ $line == *"version $EXPORTER_VERSION "* ]] || die "mysqld_exporter: expected $EXPORTER_VERSION, the package gave: $line"
  log "mysqld_exporter: $line"
  tar -C "$r" -cf "$out/rootfs.tar" .
  rm -rf "$r" "$x" "$out"/*.deb
}

build_exporter() {
  local dir=$CACHE/mysqld-exporter-rootfs-$EXPORTER_SUITE-$EXPORTER_VERSION-$DB_RECIPE ctx
  if image_exists "$EXPORTER_IMAGE"; then log "image $EXPORTER_IMAGE: present"; return 0; fi
  step "mysqld-exporter-rootfs-$EXPORTER_VERSION" "$dir" build_exporter_rootfs
  ctx=$(mktemp -d)
  ln "$dir/rootfs.tar" "$ctx/rootfs.tar" 2>/dev/null || cp "$dir/rootfs.tar" "$ctx/rootfs.tar"
  printf '%s\n' 'FROM scratch' 'ADD rootfs.tar /' 'USER 65534:65534' 'EXPOSE 9104' \
    'ENTRYPOINT ["/bin/mysqld_exporter"]' >"$ctx/Dockerfile"
  docker_build "$EXPORTER_IMAGE" "$ctx"
  rm -rf "$ctx"
  log "image $EXPORTER_IMAGE: built"
}

# usage: build_bench_rootfs OUTDIR -> OUTDIR/rootfs.tar: a minimal trixie with the bench's tools
build_bench_rootfs() {
  local out=$1 r=$1/rootfs tool
  debootstrap_root "$r" "$BENCH_SUITE" "$BENCH_PKGS"
  for tool in sysbench fio iperf3 mariadb python3; do
    chroot "$r" "$tool" --version >/dev/null 2>&1 || die "bench image: $tool does not run"
  done
  log "bench image: $(chroot "$r" sysbench --version), $(chroot "$r" fio --version), $(chroot "$r" iperf3 --version | head -n 1)"
  mkdir -p "$r/work" && chmod 1777 "$r/work"
  trim_rootfs "$r"
  tar -C "$r" -cf "$out/rootfs.tar" .
  rm -rf "$r"
}

build_bench() {
  local dir=$CACHE/bench-rootfs-$BENCH_SUITE-$BENCH_RECIPE ctx
  if image_exists "$BENCH_IMAGE"; then log "image $BENCH_IMAGE: present"; return 0; fi
  step "bench-rootfs-$BENCH_SUITE-$BENCH_RECIPE" "$dir" build_bench_rootfs
  ctx=$(mktemp -d)
  ln "$dir/rootfs.tar" "$ctx/rootfs.tar" 2>/dev/null || cp "$dir/rootfs.tar" "$ctx/rootfs.tar"
  printf '%s\n' 'FROM scratch' 'ADD rootfs.tar /' 'USER 65534:65534' 'WORKDIR /work' 'CMD ["sleep", "infinity"]' \
    >"$ctx/Dockerfile"
  docker_build "$BENCH_IMAGE" "$ctx"
  rm -rf "$ctx"
  log "image $BENCH_IMAGE: built"
}

# usage: missing_on NODE -> the images of IMAGE_IDS (image -> its ID here) that NODE's containerd
# lacks, or holds another build of
missing_on() {
  local node=$1 img
  for img in "${!IMAGE_IDS[@]}"; do
    [[ $(docker exec "$node" crictl inspecti -o go-template --template '{{.status.id}}' "$img" 2>/dev/null) == \
       "${IMAGE_IDS[$img]}" ]] || printf '%s\n' "$img"
  done
}

# usage: load CLUSTER  -- puts every image into each node of the kind cluster that lacks it: one
# `docker save` of what is missing, imported into those nodes side by side without unpacking.
# containerd unpacks an image on a node when a container first uses it there, so each node pays
# only for what it runs (`kind load docker-image` unpacks every image on every node).
load() {
  local cluster=${1:?cluster name} node img start=$SECONDS archive pid rc=0 left
  local images=("${@:2}")
  ((${#images[@]} > 0)) || images=("$MYSQL_IMAGE" "$MYSQL_IMAGE_ALT" "$MARIADB_IMAGE" "$MARIADB_PREVIOUS_IMAGE"
    "$BUSYBOX_IMAGE" "$EXPORTER_IMAGE")
  local -a nodes lacks targets=() missing=() pids=()
  local -A IMAGE_IDS=()
  for img in "${images[@]}"; do IMAGE_IDS[$img]=$(docker image inspect -f '{{.Id}}' "$img"); done
  mapfile -t nodes < <(kind get nodes --name "$cluster")
  ((${#nodes[@]} > 0)) || die "kind cluster $cluster has no nodes"
  for node in "${nodes[@]}"; do
    mapfile -t lacks < <(missing_on "$node")
    ((${#lacks[@]} > 0)) || continue
    targets+=("$node")
    missing+=("${lacks[@]}")
  done
  if ((${#targets[@]} == 0)); then
    log "images: every node of $cluster has ${images[*]}"
    return 0
  fi
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  archive=$(mktemp "$CACHE/load.XXXXXX.tar")
  # shellcheck disable=SC2064 # expand now: the file is fixed for this call
  trap "rm -f '$archive'" RETURN EXIT
  log "images: saving ${missing[*]}"
  docker save -o "$archive" "${missing[@]}"
  log "images: importing into ${targets[*]} (side by side, not unpacked)"
  for node in "${targets[@]}"; do
    docker exec -i "$node" ctr -n k8s.io images import --no-unpack --digests --all-platforms - \
      <"$archive" >/dev/null &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
  ((rc == 0)) || die "images: importing into a node failed (exit $rc)"
  for node in "${targets[@]}"; do
    left=$(missing_on "$node" | xargs)
    [[ -z $left ]] || die "images: $node still lacks $left"
  done
  log "images: loaded into ${#targets[@]} nodes in $((SECONDS - start))s"
}

main() {
  case ${1:-build} in
    build) build_busybox; build_mysql; build_mariadb; build_exporter ;;
    busybox) build_busybox ;;
    exporter) build_exporter ;;
    bench) build_bench ;;
    mysql) build_mysql ;;
    mariadb) build_mariadb ;;
    load) shift; load "$@" ;;
    *) die "usage: db-images.sh [build|busybox|mysql|mariadb|exporter|bench|load CLUSTER [IMAGE...]]" ;;
  esac
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
