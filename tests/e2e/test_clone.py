"""MySQL's clone plugin: the account donors serve clones with, recreated when it is lost.

Donors that die or freeze mid-clone are in the fault suite (tests/faults, m and n), under
load and for both flavors.
"""

from __future__ import annotations

import pytest

from harness.cluster import Settings
from harness.db import DB_TRANSIENT
from harness.helm import Release
from harness.kube import container_status, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _mysql_only(settings: Settings) -> None:
    if settings.flavor != "mysql":
        pytest.skip("the clone account belongs to MySQL's clone plugin; MariaDB streams mariadb-backup")


@pytest.fixture(scope="module")
def release_values() -> dict[str, str]:
    """A primary and one replica."""
    return {"replicaCount": "2"}


def clone_accounts(release: Release) -> dict[str, int]:
    """pod -> how many `clone` accounts its server has."""
    sql = "SELECT COUNT(*) FROM mysql.user WHERE user = 'clone'"
    return {pod: int(release.db.scalar(pod, sql)) for pod in release.pods()}


def test_the_primary_recreates_a_missing_clone_account_for_every_pod(release: Release) -> None:
    """A datadir without `clone@%` (made before the chart cloned with the plugin): once the primary's
    sidecar restarts it creates the account, BACKUP_ADMIN only, and replication brings it to every pod."""
    db, core, namespace = release.db, release.kube.core, release.namespace
    db.query(release.primary, "DROP USER 'clone'@'%'")
    gtid = db.gtid_executed(release.primary)
    for pod in release.replicas():
        db.wait_for_gtid(pod, gtid)
    assert set(clone_accounts(release).values()) == {0}

    primary = core.read_namespaced_pod(release.primary, namespace)
    sidecar = container_status(primary, "sidecar")
    release.cluster.kill_container(primary.spec.node_name, sidecar.container_id)
    wait_until(
        lambda: set(clone_accounts(release).values()) == {1},
        timeout=180,
        what="the clone account back on every pod",
        transient=DB_TRANSIENT,
    )
    restarted = container_status(core.read_namespaced_pod(release.primary, namespace), "sidecar")
    assert restarted.restart_count > sidecar.restart_count, "the primary's sidecar did not restart"
    grants = [row[0] for row in db.query(release.primary, "SHOW GRANTS FOR 'clone'@'%'")]
    assert grants == ["GRANT USAGE ON *.* TO `clone`@`%`", "GRANT BACKUP_ADMIN ON *.* TO `clone`@`%`"], grants
    ssl = db.scalar(release.primary, "SELECT ssl_type FROM mysql.user WHERE user = 'clone'")
    assert ssl == "ANY", f"clone@% does not require TLS: ssl_type {ssl!r}"
