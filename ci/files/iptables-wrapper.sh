#!/bin/sh
# Installed as iptables/ip6tables(-save/-restore) in the kube-proxy image. On first use it
# picks the backend the node already uses (the one holding kubelet's or Docker's rules), points
# the alternatives at it, and re-executes the command. Same rule as kind's node entrypoint.
set -eu
legacy=$( (iptables-legacy-save || true; ip6tables-legacy-save || true) 2>/dev/null | grep -c '^-' || true)
nft=$( (timeout 5 sh -c 'iptables-nft-save; ip6tables-nft-save' || true) 2>/dev/null | grep -c '^-' || true)
mode=nft
if [ "$legacy" -gt "$nft" ]; then mode=legacy; fi
for t in iptables ip6tables; do
  for s in "" -save -restore; do
    ln -sf "/usr/sbin/xtables-$mode-multi" "/usr/sbin/$t$s"
  done
done
exec "$0" "$@"
