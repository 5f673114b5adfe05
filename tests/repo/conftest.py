"""Fixtures for tests/repo: the packaged chart, an HTTP chart repository and an OCI registry on
127.0.0.1, helm with its own config directories, and releases installed from a repository.

The cluster, namespace and artifact fixtures come from tests/conftest.py.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from chartrepo import (
    CHART_NAME,
    HttpRepository,
    OciRegistry,
    RepoRelease,
    chart_version,
    helm_home_env,
    package,
    previous_chart,
)

from harness.cluster import CHART, Cluster, Settings, artifact_dir, run, tool_env
from harness.db import FLAVORS as SQL_FLAVORS
from harness.kube import Kube, dump_namespace

log = logging.getLogger(__name__)

HELM_REPO = "mysql-test"
# Two pods (primary + one replica) prove replication and halve the install time on 2 shared cores.
REPLICAS = "2"

Helm = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Packages:
    """The test's chart repository directory, packaged by ci/package.sh: previous and current version."""

    dist: Path
    current: str
    previous: str

    def archive(self, version: str) -> Path:
        """dist/mysql-<version>.tgz"""
        return self.dist / f"{CHART_NAME}-{version}.tgz"


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """HELM_* directories private to this run: repositories added here never touch ~/.config/helm."""
    return helm_home_env(tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def local_helm(helm_env: dict[str, str]) -> Helm:
    """`helm ARGS` with the private helm directories, no cluster involved."""

    def helm(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["helm", *args], env=tool_env(helm_env), timeout=timeout, check=check)

    return helm


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    """`make package` output for this run: the previous version, then the current one (a bump)."""
    work = tmp_path_factory.mktemp("repo")
    dist = work / "dist"
    current = chart_version(CHART)
    previous_dir, previous = previous_chart(work / "previous", current)
    package(previous_dir, dist)
    package(CHART, dist)
    log.info("packaged %s and %s into %s", previous, current, dist)
    return Packages(dist=dist, current=current, previous=previous)


@pytest.fixture(scope="session")
def http_repo(packages: Packages) -> Iterator[HttpRepository]:
    """The packages served over HTTP on 127.0.0.1 (index.yaml with relative URLs)."""
    server = HttpRepository(packages.dist)
    yield server
    server.close()


@pytest.fixture(scope="session")
def oci_registry(packages: Packages, local_helm: Helm) -> Iterator[OciRegistry]:
    """A registry on 127.0.0.1 holding both packages under charts/mysql, pushed with `helm push`."""
    registry = OciRegistry()
    try:
        for version in (packages.previous, packages.current):
            proc = local_helm(
                "push", str(packages.archive(version)), f"oci://{registry.host}/charts", "--plain-http"
            )
            log.info("helm push %s: %s", version, (proc.stdout + proc.stderr).strip().replace("\n", "; "))
        yield registry
    finally:
        registry.close()


@pytest.fixture(scope="session")
def repo_cluster(kind_cluster: Cluster, helm_env: dict[str, str]) -> Cluster:
    """The cluster under test, with helm using the private helm directories."""
    cluster = dataclasses.replace(kind_cluster)
    cluster.env.update(helm_env)
    return cluster


@pytest.fixture(scope="session")
def helm(repo_cluster: Cluster) -> Helm:
    """`helm --kube-context <ctx> ARGS` with the private helm directories."""
    return functools.partial(repo_cluster.helm)


@pytest.fixture(scope="session")
def helm_repo(local_helm: Helm, http_repo: HttpRepository) -> str:
    """`helm repo add mysql-test http://127.0.0.1:<port>` and `helm repo update`: the repository's name."""
    local_helm("repo", "add", HELM_REPO, http_repo.url)
    local_helm("repo", "update", HELM_REPO)
    return HELM_REPO


@pytest.fixture(scope="module")
def install_from(
    request: pytest.FixtureRequest,
    repo_cluster: Cluster,
    kube: Kube,
    namespace: str,
    settings: Settings,
) -> Iterator[Callable[..., RepoRelease]]:
    """install(chart_ref, version, *chart_args): release `mysql` from a repository in the module's
    namespace, rolled out; uninstalled at the end of the module (the namespace fixture deletes the rest)."""
    releases: list[RepoRelease] = []

    def install(chart: str, version: str, *chart_args: str) -> RepoRelease:
        release = RepoRelease(
            cluster=repo_cluster,
            kube=kube,
            namespace=namespace,
            flavor=SQL_FLAVORS[settings.flavor],
            chart=chart,  # type: ignore[arg-type]  # a chart reference, not a path
            set_values={"replicaCount": REPLICAS},
            version=version,
            chart_args=list(chart_args),
        )
        releases.append(release)
        try:
            release.install()
        except BaseException:
            dump_namespace(repo_cluster, kube, namespace, artifact_dir(f"{request.node.nodeid}-install"))
            raise
        return release

    yield install
    if not settings.keep:
        for release in releases:
            release.uninstall()
