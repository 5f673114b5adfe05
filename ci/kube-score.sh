#!/usr/bin/env bash
# `make lint`: kube-score on the chart as it renders for each flavor (chart/ci/*-values.yaml, the
# scenarios chart-testing lints), with the checks in ci/kube-score-ignore.txt left out: each line
# there names a check and why it does not apply. Any other finding (WARNING or CRITICAL) fails.
#   usage: ci/kube-score.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IGNORE_FILE=$ROOT/ci/kube-score-ignore.txt

# usage: ignored_checks -> "--ignore-test ID" arguments from IGNORE_FILE (ID, then a reason)
ignored_checks() {
  local id _reason
  while read -r id _reason; do
    [[ -z $id || $id == \#* ]] && continue
    printf -- '--ignore-test\n%s\n' "$id"
  done <"$IGNORE_FILE"
}

main() {
  local values rc=0 out
  local -a ignore
  mapfile -t ignore < <(ignored_checks)
  for values in "$ROOT"/chart/ci/*-values.yaml; do
    log "kube-score: chart with ${values#"$ROOT"/}"
    # The helm test pod is a hook; kube-score scores it like any pod, which is what we want.
    if ! out=$(helm template mysql "$ROOT/chart" -f "$values" |
      kube-score score --output-format ci "${ignore[@]}" -); then
      rc=1
    fi
    # ci format: one line per check and object, "[OK]", "[SKIPPED]", "[WARNING]" or "[CRITICAL]".
    grep -E '^\[(WARNING|CRITICAL)\]' <<<"$out" || true
  done
  ((rc == 0)) || die "kube-score found the problems above (or add the check to ${IGNORE_FILE#"$ROOT"/} with a reason)"
  log "kube-score: no findings outside ${IGNORE_FILE#"$ROOT"/}"
}

main "$@"
