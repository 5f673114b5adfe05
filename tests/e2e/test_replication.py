"""Beyond the mission: helm scaling, read-only replicas, Services, consistency, metrics, TLS between
the pods, refused upgrades, what the server can see, pod loss, helm test, MySQL's clone account.

One release (3 replicas, scaled to 5 by `helm upgrade` in the first test, metrics on, TLS on by
default), whose root password holds every character an option file, a shell or SQL could trip on;
the tests run in file order and destructive tests come last.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql
import pytest
from kubernetes.client.exceptions import ApiException

from harness.db import DB_TRANSIENT, VERIFIED_CHANNEL
from harness.helm import MYSQL_UID, ROOT_PASSWORD_KEY, Release
from harness.kube import (
    TIMEOUTS,
    Pending,
    container_status,
    exec_in_pod,
    pod_is_ready,
    pod_recreated_and_ready,
    run_client_pod,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Quotes, a comment sign, a statement separator, shell expansions and spaces: each must reach the
# datadir, the option files, the sidecar, the helm test and the clients as it is.
ROOT_PASSWORD = """It's "quoted" #not a comment; $HOME `id` $(id) & more"""


# What mysqld_exporter calls the series the alert rules read (MySQL 8.4+ names the replica status
# columns Replica_* / *_Source, MariaDB Slave_* / *_Master; semi-sync source / master).
EXPORTED = {
    "mysql": {
        "io": "mysql_slave_status_replica_io_running",
        "sql": "mysql_slave_status_replica_sql_running",
        "lag": "mysql_slave_status_seconds_behind_source",
        "semi_sync": "mysql_global_status_rpl_semi_sync_source_status",
    },
    "mariadb": {
        "io": "mysql_slave_status_slave_io_running",
        "sql": "mysql_slave_status_slave_sql_running",
        "lag": "mysql_slave_status_seconds_behind_master",
        "semi_sync": "mysql_global_status_rpl_semi_sync_master_status",
    },
}
EXPORTER_PORT = 9104


@pytest.fixture(scope="module")
def release_values() -> dict[str, str]:
    """The release's root password: ROOT_PASSWORD; the metrics exporter on (TLS between the pods is
    on by default)."""
    return {"auth.rootPassword": ROOT_PASSWORD, "metrics.enabled": "true"}


def write_error(release: Release, pod: str, sql: str) -> int | None:
    """Run a write on pod as root over a port-forward; return the server's error code (None: it succeeded)."""
    try:
        release.db.query(pod, sql)
    except pymysql.err.MySQLError as e:
        return int(e.args[0])
    return None


def scrape(release: Release) -> dict[str, dict[str, float]]:
    """pod -> {series name: value} of mysql_up, the replica status and the semi-sync status, read
    from every server pod's exporter by a pod in the cluster, as Prometheus does (pod IP, port 9104):
    an HTTP/1.0 GET through bash's /dev/tcp in a pod of the server image. (busybox-static's wget
    crashes in these pods, and nc's half-close after the request makes the exporter cancel it.)"""
    ips = {pod.metadata.name: pod.status.pod_ip for pod in release.kube.pods(release.namespace)
           if pod.metadata.name in release.pods()}  # fmt: skip
    wanted = "^(mysql_up|mysql_slave_status_|mysql_global_status_rpl_semi_sync)"
    script = "".join(
        f'echo "# pod {pod}"; exec 3<>/dev/tcp/{ip}/{EXPORTER_PORT}; '
        f'printf "GET /metrics HTTP/1.0\\r\\n\\r\\n" >&3; grep -E "{wanted}" <&3; exec 3<&-; '
        for pod, ip in sorted(ips.items())
    )
    result = run_client_pod(
        release.cluster, release.namespace, ["bash", "-c", script],
        image=release.server_image(), uid=MYSQL_UID, name_prefix="scrape",
    )  # fmt: skip
    series: dict[str, dict[str, float]] = {}
    pod = ""
    for line in result.ok().lines:
        if line.startswith("# pod "):
            pod = line.removeprefix("# pod ")
            series[pod] = {}
        elif line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            series[pod][name_labels.split("{", 1)[0]] = float(value)
    return series


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


def test_since_install_no_commit_on_the_primary_went_unacknowledged(release: Release) -> None:
    """Semi-sync from the first write on: the primary's sidecar writes only once a replica is
    connected to acknowledge, so no commit waited out the timeout and fell back to asynchronous
    replication (its counter of unacknowledged commits is 0). It did at every install before: the
    first write timed out while the first replica was still cloning from the primary."""
    status = "Rpl_semi_sync_source_no_tx" if release.flavor.name == "mysql" else "Rpl_semi_sync_master_no_tx"
    assert release.db.query(release.primary, f"SHOW GLOBAL STATUS LIKE '{status}'") == [(status, "0")]


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
    release.wait_replicas_applied(gtid)
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
    """`helm test mysql` (write through mysql-primary, read on every replica) succeeds, with a root
    password full of quotes, `#`, `;` and shell expansions."""
    assert release.secret_value(ROOT_PASSWORD_KEY) == ROOT_PASSWORD
    result = release.test()
    assert result.returncode == 0, f"helm test failed:\n{result.stdout}\n{result.stderr}"
    assert "replication verified on 4 replica(s)" in result.stdout, result.stdout


def test_every_exporter_serves_what_the_alert_rules_read_on_a_healthy_release(release: Release) -> None:
    """Each pod's mysqld_exporter answers; the series the rendered alert rules read are the ones
    this flavor's exporter exports, and they say: every server up, both replication threads running
    and no lag on each replica, semi-sync on on the primary."""
    rules = release.template({"metrics.prometheusRule.enabled": "true"},
                             "--show-only", "templates/prometheusrule.yaml")  # fmt: skip
    names = EXPORTED[release.flavor.name]
    assert all(name in rules for name in [*names.values(), "mysql_up"]), rules
    series = scrape(release)
    assert sorted(series) == sorted(release.pods())
    for pod, got in series.items():
        assert got.get("mysql_up") == 1, f"{pod}: {got}"
    assert series[release.primary].get(names["semi_sync"]) == 1, series[release.primary]
    for pod in release.replicas():
        got = series[pod]
        assert (got.get(names["io"]), got.get(names["sql"])) == (1, 1), f"{pod}: {got}"
        assert 0 <= got.get(names["lag"], -1) <= 30, f"{pod}: {got}"


def test_a_stopped_sql_thread_shows_in_the_exporter_and_comes_back(release: Release) -> None:
    """STOP REPLICA SQL_THREAD on mysql-2: its exporter reports the SQL thread stopped (what
    MySQLReplicationStopped fires on) and the I/O thread running; started again, mysql-2 is Ready."""
    names, pod = EXPORTED[release.flavor.name], release.pod(2)
    release.db.query(pod, "STOP REPLICA SQL_THREAD")
    try:
        got = scrape(release)[pod]
        assert (got.get(names["io"]), got.get(names["sql"])) == (1, 0), got
    finally:
        release.db.query(pod, "START REPLICA SQL_THREAD")
    core = release.kube.core
    wait_until(lambda: pod_is_ready(core.read_namespaced_pod(pod, release.namespace)) or Pending("not ready"),
               timeout=TIMEOUTS.pod_ready, what=f"{pod} Ready again")  # fmt: skip
    assert scrape(release)[pod].get(names["sql"]) == 1


def test_every_replica_replicates_over_tls_verifying_the_primarys_certificate(release: Release) -> None:
    """tls.enabled: each replica's channel requires TLS and verifies the primary's certificate
    against the release's CA (and its name, mysql-0.mysql.NAMESPACE.svc), and its I/O thread runs;
    MariaDB's clones to mysql-3 and mysql-4 streamed inside verified TLS."""
    for pod in release.replicas():
        assert release.db.channel_tls(pod) == VERIFIED_CHANNEL, pod
        status = release.db.replica_status(pod)
        assert status[release.flavor.io_running] == "Yes", f"{pod}: {status[release.flavor.last_error]}"
    if release.flavor.name == "mariadb":
        # mysql-3 and mysql-4 cloned by `helm upgrade` in the first test: the stream ran inside TLS.
        for pod in (release.pod(3), release.pod(4)):
            log = release.kube.core.read_namespaced_pod_log(pod, release.namespace, container="clone")
            assert "(mariadb-backup stream over verified TLS)" in log and "stream complete" in log, log


def test_a_client_trusting_the_release_ca_verifies_each_server_by_name_not_address(release: Release) -> None:
    """Every server presents the release's certificate: a client that trusts only the release's CA
    and checks the host name connects to mysql-N.mysql.NAMESPACE.svc, and is refused when it asks for a pod by
    its IP address, which the certificate does not name (verification is real)."""
    verify = (["--ssl", "--ssl-verify-server-cert"] if release.flavor.name == "mariadb"
              else ["--ssl-mode=VERIFY_IDENTITY"])  # fmt: skip
    client = " ".join([release.flavor.client, "-uroot", "-N", "-B", *verify, "--ssl-ca=/dev/shm/ca.crt"])
    primary_ip = release.kube.core.read_namespaced_pod(release.primary, release.namespace).status.pod_ip
    # The certificate's wildcard *.mysql.NAMESPACE.svc: OpenSSL matches no wildcard against mysql-N.mysql.
    hosts = [f"{release.host(i)}.{release.namespace}.svc" for i in range(len(release.pods()))]
    script = 'printf "%s\\n" "$CA" >/dev/shm/ca.crt; ' + "".join(
        f'echo "{host} $({client} -h {host} -e "SELECT 1" 2>&1 | tr "\\n" " ")"; '
        for host in [*hosts, primary_ip]
    )
    result = run_client_pod(
        release.cluster, release.namespace, ["bash", "-c", script],
        image=release.server_image(), uid=MYSQL_UID, name_prefix="tls-client",
        secret_env={"CA": ("mysql-tls", "ca.crt"), "MYSQL_PWD": (release.name, ROOT_PASSWORD_KEY)},
        labels=release.client_labels,
    ).ok()  # fmt: skip
    answers = {host: answer.strip() for host, answer in (line.split(" ", 1) for line in result.lines)}
    assert {host: answers[host] for host in hosts} == dict.fromkeys(hosts, "1"), result.stdout
    # 2026: the TLS handshake failed (MySQL: certificate verify failed; MariaDB: hostname verification)
    assert "ERROR 2026" in answers[primary_ip], answers[primary_ip]


def test_helm_upgrade_to_the_other_flavor_is_refused_before_anything_changes(release: Release) -> None:
    """`helm upgrade --set flavor=<other>` on the running release fails at render, naming the flavor
    the volumes hold; the StatefulSet and the ConfigMap are untouched and the release stays deployed."""
    other = "mariadb" if release.flavor.name == "mysql" else "mysql"
    core, namespace = release.kube.core, release.namespace
    generation = release.statefulset().metadata.generation
    config_version = core.read_namespaced_config_map(release.name, namespace).metadata.resource_version
    proc = release.try_upgrade({"flavor": other})
    assert proc.returncode != 0, f"helm upgrade to {other} succeeded:\n{proc.stdout}"
    assert f'runs flavor "{release.flavor.name}"' in proc.stderr, proc.stderr
    assert "a flavor cannot change in place" in proc.stderr, proc.stderr
    assert release.statefulset().metadata.generation == generation
    assert (
        core.read_namespaced_config_map(release.name, namespace).metadata.resource_version == config_version
    )
    status = json.loads(release.helm("status", release.name, "--output", "json").stdout)
    assert status["info"]["status"] == "deployed", status["info"]


def test_the_server_holds_no_password_and_reads_no_file_of_the_pod(release: Release) -> None:
    """On every pod the server's environment (/proc/1/environ of the server container, where mysqld
    is PID 1) holds none of the release's passwords or the token, and root cannot read a file of the
    pod through the server (LOAD_FILE gives NULL: MySQL's secure-file-priv NULL, MariaDB's empty
    directory)."""
    secret = release.kube.core.read_namespaced_secret(release.name, release.namespace)
    values = {key: release.secret_value(key) for key in secret.data}
    for pod in release.pods():
        environ = exec_in_pod(
            release.kube, release.namespace, pod, ["cat", "/proc/1/environ"], container="mysql"
        ).ok()  # fmt: skip
        process = exec_in_pod(
            release.kube, release.namespace, pod, ["cat", "/proc/1/comm"], container="mysql"
        ).ok()  # fmt: skip
        assert process.lines == [release.flavor.server], f"{pod}: PID 1 is {process.lines}"
        leaked = sorted(key for key, value in values.items() if value in environ.stdout)
        assert leaked == [], f"{pod}: the server's environment holds {leaked}"
        for path in ("/proc/1/environ", "/etc/passwd", "/var/lib/mysql/data/auto.cnf"):
            assert release.db.scalar(pod, "SELECT LOAD_FILE(%s)", (path,)) is None, f"{pod} read {path}"


def test_a_changed_configmap_reaches_no_running_pod(release: Release) -> None:
    """A new chart version's scripts reach a pod only when it is replaced: with the release's
    ConfigMap changed and the kubelet's copy of it on mysql-1's node refreshed, the scripts mysql-1
    runs are still the ones it started with."""
    core, namespace, pod = release.kube.core, release.namespace, release.pod(1)
    config = core.read_namespaced_config_map(release.name, namespace)
    original = config.data["probe.sh"]
    marker = f"# changed by the e2e suite {uuid.uuid4().hex[:8]}"
    live = core.read_namespaced_pod(pod, namespace)
    on_node = (
        f"/var/lib/kubelet/pods/{live.metadata.uid}/volumes/kubernetes.io~configmap/chart-files/probe.sh"
    )
    core.patch_namespaced_config_map(
        release.name, namespace, {"data": {"probe.sh": f"{original}\n{marker}\n"}}
    )
    try:
        # A change to the pod makes the kubelet sync it, and with it its ConfigMap volumes, at once.
        core.patch_namespaced_pod(pod, namespace, {"metadata": {"annotations": {"e2e/touched": marker[-8:]}}})
        wait_until(
            lambda: marker in release.cluster.on_node(live.spec.node_name, 'cat "$1"', on_node, timeout=30),
            timeout=150,
            what=f"the kubelet's copy of the ConfigMap for {pod} on {live.spec.node_name} refreshed",
        )
        for container in ("mysql", "sidecar"):
            running = exec_in_pod(
                release.kube, namespace, pod, ["cat", "/opt/mysql-chart/probe.sh"], container=container
            ).ok()  # fmt: skip
            assert marker not in running.stdout, f"{pod}/{container} runs the changed probe.sh"
            assert running.stdout == original, f"{pod}/{container} runs another probe.sh"
    finally:
        core.patch_namespaced_config_map(release.name, namespace, {"data": {"probe.sh": original}})


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


def clone_accounts(release: Release) -> dict[str, int]:
    """pod -> how many `clone` accounts its server has."""
    sql = "SELECT COUNT(*) FROM mysql.user WHERE user = 'clone'"
    return {pod: int(release.db.scalar(pod, sql)) for pod in release.pods()}


def test_the_primary_recreates_a_missing_clone_account_for_every_pod(release: Release) -> None:
    """MySQL: a datadir without `clone@%` (made before the chart cloned with the plugin): once the
    primary's sidecar restarts it creates the account, BACKUP_ADMIN only, TLS required, and
    replication brings it to every pod. (MariaDB streams mariadb-backup and has no such account.)"""
    if release.flavor.name != "mysql":
        pytest.skip("the clone account belongs to MySQL's clone plugin; MariaDB streams mariadb-backup")
    db, core, namespace = release.db, release.kube.core, release.namespace
    db.query(release.primary, "DROP USER 'clone'@'%'")
    release.wait_replicas_applied()
    assert set(clone_accounts(release).values()) == {0}

    primary = core.read_namespaced_pod(release.primary, namespace)
    sidecar = container_status(primary, "sidecar")
    release.cluster.kill_container(primary.spec.node_name, sidecar.container_id)

    # The kubelet reports the restart a little after the new container runs (the account may be
    # back on every pod first), so wait for both conditions rather than read the count once.
    def sidecar_restarts() -> int:
        return container_status(core.read_namespaced_pod(release.primary, namespace), "sidecar").restart_count

    wait_until(
        lambda: sidecar_restarts() > sidecar.restart_count,
        timeout=120,
        what="the primary's sidecar restarted",
    )
    wait_until(
        lambda: set(clone_accounts(release).values()) == {1},
        timeout=180,
        what="the clone account back on every pod",
        transient=DB_TRANSIENT,
    )
    grants = [row[0] for row in db.query(release.primary, "SHOW GRANTS FOR 'clone'@'%'")]
    assert grants == ["GRANT USAGE ON *.* TO `clone`@`%`", "GRANT BACKUP_ADMIN ON *.* TO `clone`@`%`"], grants
    ssl = db.scalar(release.primary, "SELECT ssl_type FROM mysql.user WHERE user = 'clone'")
    assert ssl == "ANY", f"clone@% does not require TLS: ssl_type {ssl!r}"
