"""MySQL's clone plugin under faults: a donor whose server is SIGKILLed mid-copy, one frozen mid-copy
(SIGSTOP); a lost clone account.

mysql-2 joins a release whose primary holds ~130 MB; the clone is capped at a few MiB/s
(`clone.maxBandwidthMiB`) so that it is still copying when the first donor, mysql-1, loses its
server or freezes. The clone must fail over to the next donor (a frozen one after
`clone.stallSeconds` without progress), and no half-cloned datadir may ever start.
MariaDB clones through a mariadb-backup stream instead; this scenario is the clone plugin's.
"""

from __future__ import annotations

import logging

import pytest

from harness.cluster import Settings
from harness.db import DB_TRANSIENT
from harness.helm import Release
from harness.kube import container_status, exec_in_pod, pod_is_ready, wait_until

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROWS_PER_BATCH = 64
BATCHES = 32  # 2048 rows of 64 KiB: about 130 MB of table data
# A clone without progress for this long is abandoned (well inside the frozen donor's liveness budget).
STALL_SECONDS = 20


@pytest.fixture(scope="module", autouse=True)
def _mysql_only(settings: Settings) -> None:
    if settings.flavor != "mysql":
        pytest.skip("the donor-death scenario exercises MySQL's clone plugin; MariaDB streams mariadb-backup")


@pytest.fixture(scope="module")
def release_values() -> dict[str, str]:
    """Two pods to start with; clones slow enough to be caught in the middle."""
    return {"replicaCount": "2", "clone.maxBandwidthMiB": "4", "clone.stallSeconds": str(STALL_SECONDS)}


def clone_in_progress(release: Release, pod: str) -> str | None:
    """The stage the clone init container of pod is copying (FILE COPY or PAGE COPY) and its bytes, if any.

    Asked of the throw-away server the clone runs in, through its socket, inside the container.
    """
    sql = (
        "SELECT CONCAT(STAGE, ' ', DATA) FROM performance_schema.clone_progress "
        "WHERE STATE = 'In Progress' AND STAGE IN ('FILE COPY', 'PAGE COPY') AND DATA > 0"
    )
    argv = ["mysql", "--socket=/tmp/clone-recipient.sock", "-uroot", "-N", "-B", "-e", sql]
    result = exec_in_pod(release.kube, release.namespace, pod, argv, container="clone")
    return result.stdout.strip() if result.rc == 0 and result.stdout.strip() else None


def test_a_clone_whose_donor_dies_mid_copy_fails_over_to_another_donor(release: Release, table: str) -> None:
    """kill -9 of mysql-1's server during CLONE INSTANCE: mysql-2 clones from mysql-0 instead and joins."""
    db, core, namespace = release.db, release.kube.core, release.namespace
    with db.connect(release.primary) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS test")
        cur.execute(f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, body LONGBLOB)")
        for _ in range(BATCHES):
            values = ", ".join(["(REPEAT(SHA2(RAND(), 256), 1024))"] * ROWS_PER_BATCH)
            cur.execute(f"INSERT INTO {table} (body) VALUES {values}")
    db.wait_for_gtid(release.pod(1), db.gtid_executed(release.primary))

    donor = core.read_namespaced_pod(release.pod(1), namespace)
    server = container_status(donor, "mysql")
    release.cluster.kubectl("scale", "statefulset", release.name, "--replicas=3", "--namespace", namespace)
    stage = wait_until(
        lambda: clone_in_progress(release, release.pod(2)),
        timeout=300,
        interval=1,
        what="mysql-2's clone copying data",
    )
    release.cluster.kill_container(donor.spec.node_name, server.container_id)

    release.wait_rolled_out(replicas=3)
    clone_log = release.cluster.kubectl(
        "logs", release.pod(2), "--container", "clone", "--namespace", namespace
    ).stdout
    assert f"cloning from {release.host(1)}:3306" in clone_log, clone_log
    failed = f"clone from {release.host(1)} failed"
    assert failed in clone_log, f"the clone survived the kill (it was at {stage}):\n{clone_log}"
    assert f"datadir cloned from {release.host(0)}" in clone_log, clone_log
    marker = exec_in_pod(
        release.kube, namespace, release.pod(2), ["cat", "/var/lib/mysql/data/chart-datadir-complete"],
        container="mysql",
    ).ok()  # fmt: skip
    assert marker.lines[0].startswith(f"cloned from {release.host(0)} "), marker.lines
    restarted = container_status(core.read_namespaced_pod(release.pod(1), namespace), "mysql")
    assert restarted.restart_count > server.restart_count, "mysql-1's server was not killed"
    assert db.replication_running(release.pod(2)), db.replica_status(release.pod(2))
    release.assert_replicas_match_primary(table)


def test_b_a_clone_whose_donor_freezes_mid_copy_fails_over_to_another_donor(
    release: Release, table: str
) -> None:
    """SIGSTOP of mysql-1's server during mysql-2's re-clone (claim and pod deleted): its connection
    stays open and silent; after clone.stallSeconds without progress mysql-2 abandons it and clones
    mysql-0 instead."""
    core, namespace, cluster = release.kube.core, release.namespace, release.cluster
    release.db.query(release.primary, f"CREATE TABLE {table} (id INT PRIMARY KEY)")
    release.db.query(release.primary, f"INSERT INTO {table} VALUES (1), (2), (3)")
    claim = f"data-{release.pod(2)}"
    core.delete_namespaced_persistent_volume_claim(claim, namespace)
    core.delete_namespaced_pod(release.pod(2), namespace)
    donor = core.read_namespaced_pod(release.pod(1), namespace)
    server = container_status(donor, "mysql")
    stage = wait_until(
        lambda: clone_in_progress(release, release.pod(2)), timeout=300, interval=1,
        what="mysql-2's clone copying data",
    )  # fmt: skip
    cluster.kill_container(donor.spec.node_name, server.container_id, "STOP")
    try:
        # Its probes end on their own (a client blocked on a frozen server would hang them): it
        # leaves mysql-read at the next readiness check.
        wait_until(
            lambda: not pod_is_ready(core.read_namespaced_pod(release.pod(1), namespace)), timeout=30,
            interval=1, what="the frozen mysql-1 out of mysql-read",
        )  # fmt: skip
        release.wait_rolled_out(replicas=3)
    finally:
        try:
            cluster.kill_container(donor.spec.node_name, server.container_id, "CONT")
        except Exception as e:  # its liveness probe may have restarted it already
            log.info("mysql-1's frozen server was already gone: %s", e)
    clone_log = cluster.kubectl(
        "logs", release.pod(2), "--container", "clone", "--namespace", namespace
    ).stdout
    assert f"cloning from {release.host(1)}:3306" in clone_log, clone_log
    assert f"clone from {release.host(1)} moved no data for" in clone_log, (
        f"the clone did not notice the frozen donor (it was at {stage}):\n{clone_log}"
    )
    assert f"datadir cloned from {release.host(0)}" in clone_log, clone_log
    for pod in release.replicas():  # mysql-1 thawed, or restarted by its liveness probe
        wait_until(
            lambda pod=pod: release.db.replication_running(pod), timeout=300,
            what=f"{pod} replicating", transient=DB_TRANSIENT,
        )  # fmt: skip
    release.assert_replicas_match_primary(table)


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
