# Replicated MySQL/MariaDB on Kubernetes: chart, kind cluster and tests.
# `make e2e` runs the whole scenario from nothing; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath .)
export PATH := $(ROOT)/bin:$(ROOT)/.venv/bin:/usr/local/go/bin:$(PATH)
VENV := $(ROOT)/.venv
PYTEST := $(VENV)/bin/python -m pytest
# The cluster suites run once per flavor; FLAVOR=mysql or FLAVOR=mariadb runs one.
FLAVORS := $(if $(FLAVOR),$(FLAVOR),mysql mariadb)
# usage: $(call per_flavor,PYTEST ARGS) -- runs pytest for each of FLAVORS; fails if any run failed
per_flavor = rc=0; for f in $(FLAVORS); do echo "=== flavor $$f ==="; $(PYTEST) --flavor $$f $(1) || rc=1; done; exit $$rc

.PHONY: help venv tools docker cluster images cluster-down unit smoke e2e lifecycle netpol faults nodes test test-faults lint

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	bash ci/host-deps.sh
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e .
	touch $@

venv: $(VENV)/.installed ## Python virtualenv with the test dependencies (.venv)

docker: ## install and start the Docker engine if needed
	bash ci/docker.sh

tools: docker ## build kind, helm, helm3, kubectl and promtool into bin/
	bash ci/tools.sh

cluster: ## create or reuse the kind cluster `mysql-chart` (builds the node image when air-gapped)
	bash ci/cluster.sh up

images: ## build the database images when air-gapped and load them into the cluster
	bash ci/cluster.sh images

cluster-down: ## delete the kind cluster
	bash ci/cluster.sh down

unit: venv ## render tests, helm lint, shellcheck, the harness's unit tests: no cluster needed
	bash ci/tools.sh helm
	bash ci/tools.sh promtool
	$(PYTEST) -m "render or unit" tests/render tests/unit

smoke: venv cluster ## check the cluster itself: StatefulSet, DNS, Service, PVC
	$(PYTEST) -m smoke tests/smoke

e2e: venv cluster images ## the e2e suite on kind, for each flavor (FLAVOR= picks one): mission, replication, Services, pod loss, clone account
	$(call per_flavor,-m e2e tests/e2e)

lifecycle: venv cluster images ## a release's life, per flavor: scale 3-5-3-5, uninstall + install, lost claim, no secret said; password drift and rotation
	$(call per_flavor,-m lifecycle tests/lifecycle)

faults: venv cluster images ## fault matrix under write load (tests/faults), per flavor
	$(call per_flavor,-m "faults and not nodes" tests/faults)

nodes: venv cluster images ## node faults under write load (drain, lost nodes), per flavor: alone, they reach every namespace
	$(call per_flavor,-m nodes tests/faults)

netpol: venv cluster images ## the chart's NetworkPolicy enforced (allow/deny, cloning under the policy), per flavor
	$(call per_flavor,-m netpol tests/e2e)

# `make test` is what must fit CI's time from a cold machine (under 70 minutes with every image
# built from nothing). Without FLAVOR, two lanes side by side (ci/lanes.sh), one per flavor: e2e,
# lifecycle and netpol for MySQL | e2e and lifecycle for MariaDB, repo-e2e (both flavors) and netpol
# for MariaDB. The fault
# matrix and the node faults are `make test-faults`: each runs alone (faults bound how stale a read
# may be; node faults drain and stop nodes, which reaches every namespace).
test: venv ## unit, smoke, e2e, lifecycle, repo-e2e and netpol for both flavors, in 2 lanes (CI's time budget; see test-faults)
	$(MAKE) unit
	$(MAKE) smoke
	$(MAKE) cluster images
ifeq ($(FLAVOR),)
	bash ci/lanes.sh "mysql=$(MAKE) e2e FLAVOR=mysql && $(MAKE) lifecycle FLAVOR=mysql && $(MAKE) netpol FLAVOR=mysql" \
	  "mariadb+repo=$(MAKE) e2e FLAVOR=mariadb && $(MAKE) lifecycle FLAVOR=mariadb && $(MAKE) repo-e2e && $(MAKE) netpol FLAVOR=mariadb"
else
	$(MAKE) e2e
	$(MAKE) lifecycle
	$(MAKE) repo-e2e
	$(MAKE) netpol
endif

test-faults: venv ## the fault matrix, then the node faults, under write load, per flavor (FLAVOR= picks one)
	$(MAKE) faults
	$(MAKE) nodes

lint: venv chart-lint ## ruff and shellcheck; helm lint, ct lint, kube-score and the README table (chart-lint)
	$(VENV)/bin/ruff check tests bench
	shellcheck -x ci/*.sh ci/files/*.sh chart/files/*.sh

# --- chart repository (issue 5): package, lint, install from a repository -------------------------
.PHONY: repo-tools package readme chart-lint repo-e2e
# Base URL written into dist/index.yaml; empty keeps the URLs relative (works wherever dist/ is served).
REPO_URL ?=
DIST ?= $(ROOT)/dist

repo-tools: ## build crane (a local OCI registry), ct (chart-testing) and kube-score into bin/
	bash ci/repo-tools.sh

package: ## helm package into dist/ + index.yaml (REPO_URL=base); refuses a changed chart without a version bump
	bash ci/tools.sh helm
	DIST=$(DIST) REPO_URL=$(REPO_URL) bash ci/package.sh

readme: venv ## regenerate the parameters table of chart/README.md from chart/values.yaml
	$(VENV)/bin/python ci/values-table.py

chart-lint: venv ## helm lint --strict, ct lint and kube-score with chart/ci/*-values.yaml, README parameters table up to date
	bash ci/tools.sh helm
	bash ci/repo-tools.sh ct
	bash ci/repo-tools.sh kube-score
	helm lint --strict chart
	ct lint --config ci/ct.yaml
	bash ci/kube-score.sh
	$(VENV)/bin/python ci/values-table.py --check
	$(VENV)/bin/ruff check ci/values-table.py

repo-e2e: venv cluster images ## install from a chart repository over HTTP and OCI on kind, upgrade from the previous version
	bash ci/tools.sh helm
	bash ci/repo-tools.sh crane
	$(call per_flavor,-m repo tests/repo)

# --- benchmark (issue 12): not part of `make test` ------------------------------------------------
.PHONY: bench
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(VENV)/bin/pip install -q -e '.[bench]'
	touch $@

bench: venv cluster images $(VENV)/.bench-installed ## the chart against the tutorial and the machine's limits, figures as ratios (QUICK=1: under 10 min; FLAVOR= picks one)
	$(VENV)/bin/python bench/run.py $(if $(QUICK),--quick) $(if $(FLAVOR),--flavors $(FLAVOR))
