"""Users of the classic chart repository: `helm repo add`, `helm install <repo>/mysql --version`,
and later `helm repo update` + `helm upgrade` to the next version, data kept.

One release for the module: installed at the previous packaged version, then upgraded to the
current one. The tests run in file order and build on each other.
"""

from __future__ import annotations

import json

import pytest
from chartrepo import CHART_NAME, RepoRelease, retry_db, write_and_read_on_replicas

from harness.helm import ROOT_PASSWORD_KEY

pytestmark = [pytest.mark.repo, pytest.mark.slow]

ROW = "written before the upgrade"


@pytest.fixture(scope="module")
def release(install_from, helm_repo: str, packages) -> RepoRelease:
    """`helm install mysql mysql-test/mysql --version <previous> -f ci/values-airgap.yaml`, rolled out."""
    return install_from(f"{helm_repo}/{CHART_NAME}", packages.previous)


def test_helm_search_lists_both_packaged_versions(local_helm, helm_repo: str, packages) -> None:
    """After `helm repo add` + `helm repo update`, `helm search repo --versions` shows what was packaged."""
    proc = local_helm("search", "repo", f"{helm_repo}/{CHART_NAME}", "--versions", "--devel", "-o", "json")
    versions = {entry["version"] for entry in json.loads(proc.stdout)}
    assert versions == {packages.previous, packages.current}


def test_install_from_the_repository_becomes_ready_and_replicates_a_row(release: RepoRelease) -> None:
    """The release from the repository rolls out; a row written on mysql-0 is read on the replica."""
    assert release.deployed_chart() == f"{CHART_NAME}-{release.version}"
    write_and_read_on_replicas(release, "test.before_upgrade", ROW)


def test_helm_upgrade_to_the_current_version_keeps_data_and_replication(
    release: RepoRelease, helm_repo: str, packages, table: str
) -> None:
    """`helm upgrade` to the current version replaces every pod; row, password and replication stay."""
    core, namespace = release.kube.core, release.namespace
    old_uids = {pod: core.read_namespaced_pod(pod, namespace).metadata.uid for pod in release.pods()}
    password = release.secret_value(ROOT_PASSWORD_KEY)

    release.upgrade_to(f"{helm_repo}/{CHART_NAME}", packages.current)

    assert release.deployed_chart() == f"{CHART_NAME}-{packages.current}"
    assert release.secret_value(ROOT_PASSWORD_KEY) == password, "the upgrade changed the root password"
    for pod, old_uid in old_uids.items():
        live = core.read_namespaced_pod(pod, namespace)
        assert live.metadata.uid != old_uid, f"{pod} was not replaced by the upgrade"
        assert live.metadata.labels["helm.sh/chart"] == f"{CHART_NAME}-{packages.current}", pod
        rows = retry_db(lambda pod=pod: release.db.query(pod, "SELECT v FROM test.before_upgrade"), what=pod)
        assert rows == [(ROW,)], pod
    write_and_read_on_replicas(release, table, "written after the upgrade")
