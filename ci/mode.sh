#!/usr/bin/env bash
# Prints how this machine gets container images: `registry` (upstream images are pulled) or
# `airgap` (everything is built locally from package registries). AIRGAP=1 or AIRGAP=0 forces
# the answer. Detection asks only the system's DNS resolver whether the Docker Hub registry has
# a name; it sends nothing to the registry itself.
set -euo pipefail

case ${AIRGAP:-auto} in
  1 | true | yes) echo airgap ;;
  0 | false | no) echo registry ;;
  auto)
    if timeout 5 getent hosts registry-1.docker.io >/dev/null 2>&1; then echo registry; else echo airgap; fi ;;
  *) echo "AIRGAP must be 1, 0 or unset (got '$AIRGAP')" >&2; exit 2 ;;
esac
