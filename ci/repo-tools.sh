#!/usr/bin/env bash
# Builds the tools of the chart-repository work into bin/ from the Go module proxy, cached like
# ci/tools.sh: crane (a local OCI registry, `crane registry serve`, for tests/repo), ct
# (chart-testing, for `make lint`), kube-score (`make lint`) and, on request only, cr (chart-releaser, for the release
# workflow). ct's own config files (chart_schema.yaml, lintconf.yaml) are copied from the same
# module version into the cache, next to the binary.
#   usage: ci/repo-tools.sh [all|crane|ct|kube-score|cr]      (all = crane, ct and kube-score)
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"

build_crane() {
  build_go_tool "$1" crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
}

# usage: build_from_module OUTDIR NAME MODULE VERSION PACKAGE
# Builds PACKAGE (relative to MODULE's root) of MODULE@VERSION into OUTDIR/NAME, stamping
# <MODULE>/<PACKAGE>/cmd.Version. Not `go install pkg@version`: that asks the proxy for the
# module's version list (to look for deprecations), which the proxy here refuses for
# chart-testing and chart-releaser; the versions themselves are served.
build_from_module() {
  local out=$1 name=$2 mod=$3 version=$4 pkg=$5 src
  src=$(module_dir "$mod@$version")
  cp -r "$src" "$out/src"
  chmod -R u+w "$out/src"
  ( cd "$out/src" && CGO_ENABLED=0 go build -trimpath -o "$out/$name" \
      -ldflags "-s -w -X $mod/$pkg/cmd.Version=$version -X $mod/$pkg/cmd.GitCommit=proxy -X $mod/$pkg/cmd.BuildDate=proxy" "./$pkg" )
  rm -rf "$out/src"
  "$out/$name" version
}

build_ct() {
  build_from_module "$1" ct github.com/helm/chart-testing/v3 "$CT_VERSION" ct
  # ct reads its Chart.yaml schema and yamllint config from these files (--chart-yaml-schema, --lint-conf).
  local src
  src=$(module_dir "github.com/helm/chart-testing/v3@$CT_VERSION")/etc
  mkdir -p "$1/etc"
  cp "$src/chart_schema.yaml" "$src/lintconf.yaml" "$1/etc/"
}

# kube-score: static checks of the rendered manifests (`make lint`, ci/kube-score.sh).
build_kube_score() {
  build_go_tool "$1" kube-score "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION" \
    "-X main.version=$KUBE_SCORE_VERSION"
}

# chart-releaser: GitHub releases and the gh-pages index.yaml (.github/workflows/release.yaml).
build_cr() { build_from_module "$1" cr github.com/helm/chart-releaser "$CR_VERSION" cr; }

repo_tools_main() {
  local what=${1:-all}
  if [[ $what == all || $what == crane ]]; then
    step "crane-$CRANE_VERSION" "$CACHE/crane-$CRANE_VERSION" build_crane
    link crane "$CACHE/crane-$CRANE_VERSION/crane"
  fi
  if [[ $what == all || $what == ct ]]; then
    step "ct-$CT_VERSION" "$CACHE/ct-$CT_VERSION" build_ct
    link ct "$CACHE/ct-$CT_VERSION/ct"
    # ct finds chart_schema.yaml and lintconf.yaml through --chart-yaml-schema/--lint-conf.
    ln -sfn "$CACHE/ct-$CT_VERSION/etc" "$BIN/ct-etc"
  fi
  if [[ $what == all || $what == kube-score ]]; then
    step "kube-score-$KUBE_SCORE_VERSION" "$CACHE/kube-score-$KUBE_SCORE_VERSION" build_kube_score
    link kube-score "$CACHE/kube-score-$KUBE_SCORE_VERSION/kube-score"
  fi
  if [[ $what == cr ]]; then  # only the release workflow needs it
    step "cr-$CR_VERSION" "$CACHE/cr-$CR_VERSION" build_cr
    link cr "$CACHE/cr-$CR_VERSION/cr"
  fi
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || repo_tools_main "$@"
