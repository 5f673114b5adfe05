#!/usr/bin/env bash
# Builds the images the chart's pods and the tests use, from Debian packages, and loads them
# into the kind cluster:
#   mysql-chart.local/mariadb:10.11 (+ tag 10.11-r2)  MariaDB 10.11 server, client, mariadb-backup,
#                                                    mbstream, socat; uid/gid 999; empty datadir
#   mysql-chart.local/busybox:1.35                  busybox-static (smoke tests, local-path helper)
# usage: db-images.sh [build|busybox|load CLUSTER]   (default: build)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOCAL=mysql-chart.local
MARIADB_IMAGE=$LOCAL/mariadb:10.11
MARIADB_IMAGE_ALT=$LOCAL/mariadb:10.11-r2
BUSYBOX_IMAGE=$LOCAL/busybox:1.35
DB_RECIPE=1
DB_PKGS=mariadb-server,mariadb-client,mariadb-backup,socat,procps,gawk,sed,grep,coreutils,bash,ca-certificates,tzdata

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# usage: build_mariadb_rootfs OUTDIR -> OUTDIR/rootfs.tar
build_mariadb_rootfs() {
  local out=$1 r=$1/rootfs
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
  debootstrap --variant=minbase --include="$DB_PKGS" "$DEBIAN_SUITE" "$r" http://deb.debian.org/debian
  # The official images run mysqld as uid/gid 999; so does the chart.
  chroot "$r" groupmod -g 999 mysql
  chroot "$r" usermod -u 999 -g 999 mysql
  # The package leaves an initialised datadir behind; the chart initialises its own.
  rm -rf "$r"/var/lib/mysql/* "$r"/run/mysqld
  mkdir -p "$r/var/lib/mysql" "$r/run/mysqld" "$r/var/log/mysql"
  chroot "$r" chown -R mysql:mysql /var/lib/mysql /run/mysqld /var/log/mysql
  # Listen on every address as the official image does (Debian binds to 127.0.0.1).
  sed -i 's/^bind-address/#bind-address/' "$r/etc/mysql/mariadb.conf.d/50-server.cnf"
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/usr/share/doc "$r"/usr/share/man
  chroot "$r" mariadbd --version
  tar -C "$r" -cf "$out/rootfs.tar" .
  rm -rf "$r"
}

build_mariadb() {
  local dir=$CACHE/mariadb-rootfs-$DEBIAN_SUITE-$DB_RECIPE ctx
  if image_exists "$MARIADB_IMAGE" && image_exists "$MARIADB_IMAGE_ALT"; then log "image $MARIADB_IMAGE: present"; return 0; fi
  step "mariadb-rootfs" "$dir" build_mariadb_rootfs
  ctx=$(mktemp -d)
  ln "$dir/rootfs.tar" "$ctx/rootfs.tar"
  printf '%s\n' 'FROM scratch' 'ADD rootfs.tar /' 'USER 999:999' 'EXPOSE 3306' \
    'CMD ["mariadbd"]' >"$ctx/Dockerfile"
  docker_build "$MARIADB_IMAGE" "$ctx"
  docker tag "$MARIADB_IMAGE" "$MARIADB_IMAGE_ALT"
  rm -rf "$ctx"
  log "image $MARIADB_IMAGE (and $MARIADB_IMAGE_ALT): built"
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

# usage: load CLUSTER  -- loads every image into the kind cluster's nodes
load() {
  local cluster=${1:?cluster name}
  log "loading $MARIADB_IMAGE, $MARIADB_IMAGE_ALT, $BUSYBOX_IMAGE into kind cluster $cluster"
  kind load docker-image --name "$cluster" "$MARIADB_IMAGE" "$MARIADB_IMAGE_ALT" "$BUSYBOX_IMAGE"
}

main() {
  case ${1:-build} in
    build) build_busybox; build_mariadb ;;
    busybox) build_busybox ;;
    mariadb) build_mariadb ;;
    load) shift; load "$@" ;;
    *) die "usage: db-images.sh [build|busybox|mariadb|load CLUSTER]" ;;
  esac
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
