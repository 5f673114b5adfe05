#!/usr/bin/env bash
# Packages the chart into a chart repository directory and (re)writes its index.yaml.
#   usage: ci/package.sh            (what `make package` runs)
# Environment:
#   CHART_DIR  chart to package (default: chart)
#   DIST       repository directory (default: dist, gitignored)
#   REPO_URL   base URL written into index.yaml; empty keeps the URLs relative, which work
#              wherever the directory is served
#   SOURCE_DATE_EPOCH  timestamp of every file in the archive; default: the time of the last
#              commit that touched CHART_DIR, so the same sources give the same archive digest
#
# The version rule: an archive already in DIST for the chart's version must have the same
# content, and a new archive's version must be above every archive in DIST. Otherwise the
# chart changed without a version bump, and this refuses.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHART_DIR=${CHART_DIR:-$ROOT/chart}
DIST=${DIST:-$ROOT/dist}
REPO_URL=${REPO_URL:-}

# usage: chart_field FIELD  -> the top-level scalar FIELD of CHART_DIR/Chart.yaml
chart_field() {
  helm show chart "$CHART_DIR" | sed -n "s/^$1: *//p" | tr -d "\"'"
}

# usage: semver_gt A B  -> true when SemVer A > B (pre-releases sort before their release)
semver_gt() {
  local a=$1 b=$2
  [[ $a != "$b" ]] || return 1
  local a_core=${a%%[-+]*} b_core=${b%%[-+]*}
  if [[ $a_core != "$b_core" ]]; then
    [[ $(printf '%s\n%s\n' "$a_core" "$b_core" | sort -V | tail -n 1) == "$a_core" ]]
    return
  fi
  local a_pre='' b_pre=''
  [[ $a == *-* ]] && a_pre=${a#*-} && a_pre=${a_pre%%+*}
  [[ $b == *-* ]] && b_pre=${b#*-} && b_pre=${b_pre%%+*}
  [[ -z $a_pre && -n $b_pre ]] && return 0
  [[ -n $a_pre && -z $b_pre ]] && return 1
  [[ $a_pre != "$b_pre" && $(printf '%s\n%s\n' "$a_pre" "$b_pre" | sort -V | tail -n 1) == "$a_pre" ]]
}

# usage: same_content A.tgz B.tgz  -> true when both archives hold the same files with the same bytes
same_content() {
  local tmp rc=0
  tmp=$(mktemp -d)
  mkdir "$tmp/a" "$tmp/b"
  tar -xzf "$1" -C "$tmp/a"
  tar -xzf "$2" -C "$tmp/b"
  diff -r "$tmp/a" "$tmp/b" >&2 || rc=$?
  rm -rf "$tmp"
  return "$rc"
}

main() {
  [[ -f $CHART_DIR/Chart.yaml ]] || die "no chart in $CHART_DIR"
  local name version epoch
  name=$(chart_field name)
  version=$(chart_field version)
  if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    epoch=$(git -C "$CHART_DIR" log -1 --format=%ct -- . 2>/dev/null || true)
    export SOURCE_DATE_EPOCH=${epoch:-315532800}  # 1980-01-01, the zip epoch, outside git
  fi
  mkdir -p "$DIST"
  local tmp
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: tmp is local and gone when the trap fires
  trap "rm -rf '$tmp'" EXIT
  helm package "$CHART_DIR" --destination "$tmp" >/dev/null
  local built=$tmp/$name-$version.tgz target=$DIST/$name-$version.tgz
  [[ -f $built ]] || die "helm package wrote no $built"

  if [[ -f $target ]]; then
    same_content "$target" "$built" || die "$CHART_DIR changed since $target was packaged, but its" \
      "version is still $version: bump \`version\` in $CHART_DIR/Chart.yaml (and CHANGELOG.md)," \
      "or delete $target if it was never published"
    log "$name $version: $target is up to date"
  else
    local existing other
    for existing in "$DIST/$name"-*.tgz; do
      [[ -f $existing ]] || continue
      other=${existing##*/"$name"-}
      other=${other%.tgz}
      semver_gt "$version" "$other" || die "$name $version is not above $other, already packaged in" \
        "$DIST: bump \`version\` in $CHART_DIR/Chart.yaml above $other"
    done
    mv "$built" "$target"
    log "$name $version: packaged $target"
  fi

  # Not --merge: the index lists exactly the archives in DIST, under the current base URL.
  local index_args=("$DIST")
  [[ -z $REPO_URL ]] || index_args+=(--url "$REPO_URL")
  helm repo index "${index_args[@]}"
  log "$name $version: sha256 $(sha256sum "$target" | cut -d' ' -f1), index $DIST/index.yaml${REPO_URL:+ (base URL $REPO_URL)}"
}

main "$@"
