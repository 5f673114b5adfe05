"""Claims outlive pods, and the chart picks them up again: scaling 5 -> 3 -> 5 keeps mysql-3's and
mysql-4's claims (whenScaled: Retain), and the returning replicas catch up on what they missed;
`helm uninstall` keeps every claim and the Secret (resource-policy keep), and `helm install` of the
same release brings the data, the passwords and replication back.

One release, 3 pods, then 5; the tests run in file order (the second reinstalls the first's release).
"""

from __future__ import annotations

import pytest

from harness.helm import ROOT_PASSWORD_KEY, Release
from harness.kube import TIMEOUTS, Pending, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TABLE = "test.reinstall"


@pytest.fixture(scope="module")
def release_values() -> dict[str, str]:
    """A primary and two replicas."""
    return {"replicaCount": "3"}


def insert(release: Release, body: str) -> None:
    release.db.query(release.primary, f"INSERT INTO {TABLE} (body) VALUES (%s)", (body,))


def bodies(release: Release, pod: str) -> list[str]:
    return [row[0] for row in release.db.query(pod, f"SELECT body FROM {TABLE} ORDER BY id")]


def claims(release: Release) -> set[str]:
    items = release.kube.core.list_namespaced_persistent_volume_claim(release.namespace).items
    return {claim.metadata.name for claim in items}


def test_replicas_scaled_away_come_back_on_their_claims_and_catch_up(release: Release) -> None:
    db = release.db
    db.query(release.primary, "CREATE DATABASE IF NOT EXISTS test")
    db.query(release.primary, f"CREATE TABLE {TABLE} (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT)")
    insert(release, "before the scale-out")
    release.upgrade({"replicaCount": "5"})
    release.assert_replicas_match_primary(TABLE)

    release.upgrade({"replicaCount": "3"})
    assert {release.claim(i) for i in range(5)} <= claims(release), "a claim went with its pod"
    insert(release, "while mysql-3 and mysql-4 were away")

    release.upgrade({"replicaCount": "5"})
    release.assert_replicas_match_primary(TABLE)
    for pod in (release.pod(3), release.pod(4)):
        clone_log = release.kube.core.read_namespaced_pod_log(pod, release.namespace, container="clone")
        assert "datadir already complete: nothing to clone" in clone_log, f"{pod} cloned anew: {clone_log}"
        assert bodies(release, pod) == ["before the scale-out", "while mysql-3 and mysql-4 were away"]


def test_uninstall_then_install_brings_data_passwords_and_replication_back(release: Release) -> None:
    core, namespace = release.kube.core, release.namespace
    password = release.secret_value(ROOT_PASSWORD_KEY)
    before = {pod: release.db.checksum(pod, TABLE) for pod in release.pods()}

    release.uninstall()

    def pods_gone() -> object:
        pods = release.kube.pods(namespace)
        left = [p.metadata.name for p in pods if p.metadata.name.startswith(f"{release.name}-")]
        return Pending(f"pods left: {left}") if left else True

    wait_until(pods_gone, timeout=TIMEOUTS.namespace_gone, what="the release's pods gone")
    assert {release.claim(i) for i in range(5)} <= claims(release)
    assert core.read_namespaced_secret(release.name, namespace), "the Secret went with the release"

    release.install()  # replicaCount 5, as the last upgrade left it
    release.reconnect()
    assert release.secret_value(ROOT_PASSWORD_KEY) == password, "the reinstall made a new root password"
    assert {pod: release.db.checksum(pod, TABLE) for pod in release.pods()} == before
    insert(release, "after the reinstall")
    release.assert_replicas_match_primary(TABLE)
    assert bodies(release, release.pod(4))[-1] == "after the reinstall"
