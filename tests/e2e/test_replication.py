"""Beyond the mission: helm scaling, read-only replicas, Services, consistency, pod loss, helm test.

One release (3 replicas, scaled to 5 by `helm upgrade` in the first test); destructive tests come last.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql
import pytest
from kubernetes.client.exceptions import ApiException

from harness.helm import Release
from harness.kube import TIMEOUTS, pod_is_ready, pod_recreated_and_ready, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def write_error(release: Release, pod: str, sql: str) -> int | None:
    """Run a write on pod as root over a port-forward; return the server's error code (None: it succeeded)."""
    try:
        release.db.query(pod, sql)
    except pymysql.err.MySQLError as e:
        return int(e.args[0])
    return None


def create_filled_table(release: Release, table: str, rows: int = 300) -> None:
    """Create table on the primary and fill it with inserts, updates and deletes in many transactions."""
    with release.db.connect(release.primary) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS test")
        cur.execute(f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(64), n INT)")
        for start in range(0, rows, 50):
            cur.executemany(
                f"INSERT INTO {table} (body, n) VALUES (%s, %s)",
                [(uuid.uuid4().hex, i) for i in range(start, start + 50)],
            )
        cur.execute(f"UPDATE {table} SET n = n * 2 WHERE id % 3 = 0")
        cur.execute(f"DELETE FROM {table} WHERE id % 7 = 0")


def test_release_runs_in_a_namespace_enforcing_pod_security_restricted(release: Release) -> None:
    """The namespace enforces Pod Security `restricted` (refuses a privileged pod); every server pod runs."""
    core, namespace = release.kube.core, release.namespace
    labels = core.read_namespace(namespace).metadata.labels
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged-probe"},
        "spec": {"containers": [{"name": "c", "image": "none", "securityContext": {"privileged": True}}]},
    }
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, privileged, dry_run="All")
    assert refused.value.status == 403 and "restricted" in str(refused.value.body)
    pods = [core.read_namespaced_pod(pod, namespace) for pod in release.pods()]
    assert [p.metadata.name for p in pods if not pod_is_ready(p)] == []


def test_the_default_anti_affinity_puts_the_3_pods_on_3_nodes(release: Release) -> None:
    """With the chart's default (soft) anti-affinity and three workers, mysql-0, -1 and -2 run on three
    different nodes: losing one node loses one copy of the data."""
    pods = [release.kube.core.read_namespaced_pod(pod, release.namespace) for pod in release.pods()]
    nodes = {p.metadata.name: p.spec.node_name for p in pods}
    assert len(nodes) == 3 and len(set(nodes.values())) == 3, nodes


def test_helm_upgrade_set_replica_count_5_clones_mysql_3_and_mysql_4(release: Release) -> None:
    """`helm upgrade --set replicaCount=5` adds mysql-3 and mysql-4; `mysql -h mysql-3.mysql` reads hello."""
    release.db.query(release.primary, "CREATE DATABASE IF NOT EXISTS test")
    release.db.query(release.primary, "CREATE TABLE test.messages (message VARCHAR(250))")
    release.db.query(release.primary, "INSERT INTO test.messages VALUES ('hello')")
    release.upgrade({"replicaCount": "5"})
    assert release.pods() == [release.pod(i) for i in range(5)]
    for pod in (release.pod(3), release.pod(4)):
        assert release.db.replication_running(pod), (
            f"{pod} does not replicate: {release.db.replica_status(pod)}"
        )
    assert release.client(release.host(3), "SELECT * FROM test.messages").ok().lines == ["hello"]


def test_every_replica_refuses_writes_and_serves_reads(release: Release, table: str) -> None:
    """INSERT and CREATE as root fail as read-only on every replica (in-cluster and localhost); reads work."""
    release.db.query(release.primary, "CREATE DATABASE IF NOT EXISTS test")
    release.db.query(release.primary, f"CREATE TABLE {table} (id INT PRIMARY KEY)")
    release.db.query(release.primary, f"INSERT INTO {table} VALUES (1)")
    gtid = release.db.gtid_executed(release.primary)
    client = release.flavor.client
    hosts = [release.host(i) for i in range(1, len(release.pods()))]
    script = "".join(
        f'out=$({client} -h {host} -uroot -N -B -e "{sql}" 2>&1); rc=$?; '
        f'echo "{host} {verb} $rc $(echo "$out" | tr "\\n" " ")"\n'
        for host in hosts
        for verb, sql in (
            ("write", f"INSERT INTO {table} VALUES (2)"),
            ("read", f"SELECT COUNT(*) FROM {table}"),
        )
    )
    for pod in release.replicas():
        release.db.wait_for_gtid(pod, gtid)
    result = release.client_script(script).ok()
    answers = {tuple(line.split(" ", 2)[:2]): line for line in result.lines}
    for host in hosts:
        write, read = answers.get((host, "write"), ""), answers.get((host, "read"), "")
        assert " write 1 " in write and "1290" in write, (
            f"write through {host} was not refused as read-only: {write!r}\n{result}"
        )
        assert read == f"{host} read 0 1", f"read through {host} failed: {read!r}\n{result}"
    for pod in release.replicas():
        assert write_error(release, pod, f"INSERT INTO {table} VALUES (3)") == 1290, (
            f"{pod} accepted an INSERT"
        )
        assert write_error(release, pod, "CREATE TABLE test.refused (id INT)") == 1290, (
            f"{pod} accepted a CREATE"
        )
        assert release.db.query(pod, f"SELECT id FROM {table}") == [(1,)], pod


def test_mysql_read_spreads_connections_over_several_servers(release: Release) -> None:
    """30 connections to `mysql-read` land on at least two distinct servers, all of them the release's."""
    server_ids = {release.db.server_id(pod): pod for pod in release.pods()}
    assert len(server_ids) == len(release.pods()), f"server ids are not unique: {server_ids}"
    query = f'{release.flavor.client} -h {release.name}-read -uroot -N -B -e "SELECT @@server_id"'
    lines = release.client_script(f"for i in $(seq 30); do {query}; done").ok().lines
    seen = [int(line) for line in lines]
    assert len(seen) == 30, lines
    assert set(seen) <= set(server_ids), f"mysql-read reached unknown servers: {set(seen) - set(server_ids)}"
    assert len(set(seen)) >= 2, f"mysql-read sent all 30 connections to {server_ids[seen[0]]}"


def test_mysql_primary_reaches_mysql_0_and_accepts_writes(release: Release, table: str) -> None:
    """`mysql -h mysql-primary` lands on mysql-0 and a CREATE + INSERT through it succeeds."""
    sql = (
        f"SELECT @@hostname; CREATE DATABASE IF NOT EXISTS test; "
        f"CREATE TABLE {table} (id INT PRIMARY KEY); INSERT INTO {table} VALUES (1)"
    )
    assert release.client(f"{release.name}-primary", sql).ok().lines == [release.primary]
    assert release.db.query(release.primary, f"SELECT id FROM {table}") == [(1,)]


def test_after_a_batch_of_writes_every_replica_has_the_primarys_gtid_set_and_checksum(
    release: Release, table: str
) -> None:
    """After 300 inserts, updates and deletes on the primary, every replica has its GTID set and checksum."""
    create_filled_table(release, table)
    release.assert_replicas_match_primary(table)


def test_helm_test_passes(release: Release) -> None:
    """`helm test mysql` (write through mysql-primary, read on every replica) succeeds."""
    result = release.test()
    assert result.returncode == 0, f"helm test failed:\n{result.stdout}\n{result.stderr}"


@contextmanager
def deleted_until_back(release: Release, pod: str) -> Iterator[None]:
    """Delete `pod`; the body runs while it is gone; on exit wait until it is back, Ready and rolled out."""
    core = release.kube.core
    old_uid = core.read_namespaced_pod(pod, release.namespace).metadata.uid
    core.delete_namespaced_pod(pod, release.namespace)
    yield
    wait_until(
        pod_recreated_and_ready(release.kube, release.namespace, pod, old_uid),
        timeout=TIMEOUTS.pod_ready,
        what=f"{pod} recreated and Ready",
    )
    release.wait_rolled_out()


def test_deleted_replica_pod_comes_back_with_same_name_dns_and_data(release: Release, table: str) -> None:
    """Deleted mysql-2 comes back as mysql-2 with its server id and data and catches up on missed writes."""
    pod = release.pod(2)
    create_filled_table(release, table, rows=100)
    server_id = release.db.server_id(pod)
    with deleted_until_back(release, pod):
        sql = f"INSERT INTO {table} (body, n) VALUES ('while mysql-2 was gone', -1)"
        release.db.query(release.primary, sql)
    assert release.db.server_id(pod) == server_id
    assert release.client(release.host(2), "SELECT @@hostname").ok().lines == [pod]
    release.assert_replicas_match_primary(table)


def test_deleted_primary_pod_comes_back_with_same_name_dns_and_data(release: Release, table: str) -> None:
    """Deleting mysql-0 brings back mysql-0 with its data; writes through mysql-0.mysql replicate again."""
    pod = release.primary
    create_filled_table(release, table, rows=100)
    checksum = release.db.checksum(pod, table)
    server_id = release.db.server_id(pod)
    with deleted_until_back(release, pod):
        pass
    assert release.db.server_id(pod) == server_id
    assert release.db.checksum(pod, table) == checksum
    sql = f"SELECT @@hostname; INSERT INTO {table} (body, n) VALUES ('after the primary came back', -2)"
    assert release.client(release.host(0), sql).ok().lines == [pod]
    release.assert_replicas_match_primary(table)
