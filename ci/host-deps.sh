#!/usr/bin/env bash
# Installs the Debian packages the build scripts and tests call, when missing:
# (shellcheck for render tests), debootstrap (image builds), jq, gcc (pause), git.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

want=()
for pair in shellcheck:shellcheck debootstrap:debootstrap jq:jq gcc:gcc git:git; do
  command -v "${pair%%:*}" >/dev/null || want+=("${pair#*:}")
done
if (( ${#want[@]} )); then
  log "host: installing ${want[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${want[@]}"; } >"$LOGS/host-deps.log" 2>&1; then
    tail -n 20 "$LOGS/host-deps.log" >&2
    die "apt-get install ${want[*]} failed"
  fi
fi
