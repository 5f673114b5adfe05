#!/usr/bin/env bash
# Builds the tools of the chart-repository work into bin/ from the Go module proxy, cached like
# ci/tools.sh: crane (a local OCI registry, `crane registry serve`, for tests/repo) and ct
# (chart-testing, for `make lint`). ct's own config files (chart_schema.yaml, lintconf.yaml)
# are copied from the same module version into the cache, next to the binary.
#   usage: ci/repo-tools.sh [all|crane|ct]
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"

build_crane() {
  build_go_tool "$1" crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
}

build_ct() {
  local out=$1 mod=github.com/helm/chart-testing/v3 src
  # Not `go install ct@version`: that asks the proxy for the module's version list (to look for
  # deprecations), which the proxy refuses for chart-testing; the version itself is served.
  src=$(GOFLAGS=-mod=mod go mod download -json "$mod@$CT_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -f $src/go.mod ]] || die "go mod download $mod@$CT_VERSION gave no source directory"
  cp -r "$src" "$out/src"
  chmod -R u+w "$out/src"
  ( cd "$out/src" && CGO_ENABLED=0 go build -trimpath -o "$out/ct" \
      -ldflags "-s -w -X $mod/ct/cmd.Version=$CT_VERSION -X $mod/ct/cmd.GitCommit=proxy -X $mod/ct/cmd.BuildDate=proxy" ./ct )
  # ct reads its Chart.yaml schema and yamllint config from these files (--chart-yaml-schema, --lint-conf).
  mkdir -p "$out/etc"
  cp "$src/etc/chart_schema.yaml" "$src/etc/lintconf.yaml" "$out/etc/"
  rm -rf "$out/src"
  "$out/ct" version
}

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
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || repo_tools_main "$@"
