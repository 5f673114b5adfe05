"""What users see when the chart cannot be had: a version that does not exist, a repository or
registry that cannot be reached. helm must fail within seconds, say why, and install nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chartrepo import CHART_NAME, HttpRepository, closed_port, expect_helm_failure

from harness.kube import Kube

pytestmark = pytest.mark.repo

MISSING_VERSION = "99.0.0"


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections for the whole test."""
    with closed_port() as port:
        yield port


@pytest.fixture
def nothing_installed(namespace: str, kube: Kube) -> Iterator[None]:
    """After the test: no release record (helm's `owner=helm` Secrets) and no pod in the namespace."""
    yield
    records = kube.core.list_namespaced_secret(namespace, label_selector="owner=helm").items
    assert [s.metadata.name for s in records] == []
    assert [p.metadata.name for p in kube.pods(namespace)] == []


@pytest.mark.usefixtures("nothing_installed")
def test_install_of_a_missing_version_from_the_repository_fails_naming_the_version(
    helm, helm_repo: str, namespace: str
) -> None:
    """`helm install mysql mysql-test/mysql --version 99.0.0`: not found in the repository's index."""
    failure = expect_helm_failure(
        helm, "install", CHART_NAME, f"{helm_repo}/{CHART_NAME}", "--version", MISSING_VERSION,
        "--namespace", namespace,
    )  # fmt: skip
    expected = f'chart "{CHART_NAME}" matching {MISSING_VERSION} not found in {helm_repo} index'
    assert expected in failure.message


@pytest.mark.usefixtures("nothing_installed")
def test_install_of_a_missing_version_from_oci_fails_with_not_found(
    helm, oci_registry, namespace: str
) -> None:
    """`helm install mysql oci://…/charts/mysql --version 99.0.0`: the registry has no such tag."""
    failure = expect_helm_failure(
        helm, "install", CHART_NAME, f"oci://{oci_registry.host}/charts/{CHART_NAME}",
        "--version", MISSING_VERSION, "--plain-http", "--namespace", namespace,
    )  # fmt: skip
    assert f"{oci_registry.host}/charts/{CHART_NAME}:{MISSING_VERSION}: not found" in failure.message


def test_repo_add_of_an_unreachable_repository_fails_with_connection_refused(
    local_helm, refused_port: int
) -> None:
    """`helm repo add` of http://127.0.0.1:<closed port>: not a valid repository or cannot be reached."""
    url = f"http://127.0.0.1:{refused_port}"
    failure = expect_helm_failure(local_helm, "repo", "add", "unreachable", url)
    assert f'looks like "{url}" is not a valid chart repository or cannot be reached' in failure.message
    assert "connection refused" in failure.message


@pytest.mark.usefixtures("nothing_installed")
def test_install_with_repo_flag_from_an_unreachable_repository_fails_with_connection_refused(
    helm, packages, refused_port: int, namespace: str
) -> None:
    """`helm install mysql mysql --repo http://127.0.0.1:<closed port>`: cannot be reached."""
    url = f"http://127.0.0.1:{refused_port}"
    failure = expect_helm_failure(
        helm, "install", CHART_NAME, CHART_NAME, "--repo", url, "--version", packages.current,
        "--namespace", namespace,
    )  # fmt: skip
    assert f'"{url}" is not a valid chart repository or cannot be reached' in failure.message
    assert "connection refused" in failure.message


@pytest.mark.usefixtures("nothing_installed")
def test_install_from_a_repository_that_went_away_after_repo_add_fails_with_connection_refused(
    helm, local_helm, packages, namespace: str
) -> None:
    """The index is cached by `helm repo add`, but the archive cannot be fetched: connection refused."""
    server = HttpRepository(packages.dist)
    try:
        local_helm("repo", "add", "went-away", server.url)
    finally:
        server.close()
    try:
        failure = expect_helm_failure(
            helm, "install", CHART_NAME, f"went-away/{CHART_NAME}", "--version", packages.current,
            "--namespace", namespace,
        )  # fmt: skip
    finally:
        local_helm("repo", "remove", "went-away")
    assert f"{server.url}/{CHART_NAME}-{packages.current}.tgz" in failure.message
    assert "connection refused" in failure.message


@pytest.mark.usefixtures("nothing_installed")
def test_install_from_an_unreachable_oci_registry_fails_with_connection_refused(
    helm, packages, refused_port: int, namespace: str
) -> None:
    """`helm install mysql oci://127.0.0.1:<closed port>/charts/mysql`: connection refused."""
    failure = expect_helm_failure(
        helm, "install", CHART_NAME, f"oci://127.0.0.1:{refused_port}/charts/{CHART_NAME}",
        "--version", packages.current, "--plain-http", "--namespace", namespace,
    )  # fmt: skip
    assert f"127.0.0.1:{refused_port}" in failure.message
    assert "connection refused" in failure.message
