"""The fault matrix: one fault per test on a 3-pod release, under a steady write and read load.

Each scenario: start the writer (through `mysql-primary`) and the reader (through `mysql-read`),
wait until writes are acknowledged and reads answer, inject the fault, wait for full recovery
(StatefulSet rolled out, every pod Ready, replication running on every replica), let the writer
acknowledge more, stop the load, then check every server: every acknowledged id exactly once, no
duplicates, no id whose write provably failed, the same GTID set everywhere. The figures go to
artifacts/faults.md (one row per fault and flavor) before anything is asserted.

The tests run in file order; the destructive-to-the-primary's-data one comes last.
Fixed defects each have their fault: f (errant transactions undetected), g (stale pid file deadlock in
a rebuild), h (an empty primary taking writes).
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pymysql
import pytest
from kubernetes.client import V1Pod
from kubernetes.client.exceptions import ApiException

from harness.cluster import ARTIFACTS, Settings
from harness.db import DB_TRANSIENT
from harness.helm import Release
from harness.kube import (
    TIMEOUTS,
    CommandResult,
    Pending,
    WaitTimeout,
    container_status,
    exec_in_pod,
    pod_is_ready,
    pod_recreated_and_ready,
    pod_summary,
    ready_condition,
    statefulset_rolled_out,
    wait_until,
)
from harness.workload import TABLE, Ledger, Outcome, Workload, connection_hog, record_row

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

RESULTS = ARTIFACTS / "faults.md"
PODS = 3
ACKS = 20  # acknowledged writes wanted before the fault and again after recovery
RECOVERY_TIMEOUT = 420.0
# The release's max_connections (few, so that one client pod can take them all) and how old a
# replica's data may be before it leaves mysql-read (seconds).
MAX_CONNECTIONS = 40
MAX_LAG_SECONDS = 10
# How long the connection hog holds every connection of the primary.
HOG_HOLD_SECONDS = 45
# Clones capped (MiB/s) so that a fault lands mid-copy, and abandoned after this long without progress.
CLONE_MAX_BANDWIDTH_MIB = 4
CLONE_STALL_SECONDS = 20
# A replica whose primary cannot serve it for a reason other than purged binlogs (error 1236, e.g.
# it holds GTIDs the primary lacks) is left to a human by the chart: give up after this long.
STUCK_REPLICATION_SECONDS = 90.0
# Longest stretch without a successful read while a replica's node is lost (and not yet seen so):
# each read that picks the dead pod costs the reader's 3 s connect timeout; 8 in a row at 1/3 each
# is unlikely (0.015 %) over the ~15 reads of that window.
NODE_LOSS_READ_GAP = 25.0

Predicate = Callable[[], object]


@pytest.fixture(scope="module")
def release_values() -> dict[str, str]:
    """A primary and two replicas, few connections, a short lag bound, slow clones with a short stall."""
    return {
        "replicaCount": str(PODS),
        "config": f"[mysqld]\nmax_connections = {MAX_CONNECTIONS}",
        "readiness.maxLagSeconds": str(MAX_LAG_SECONDS),
        "clone.maxBandwidthMiB": str(CLONE_MAX_BANDWIDTH_MIB),
        "clone.stallSeconds": str(CLONE_STALL_SECONDS),
    }


class ReplicationStuck(AssertionError):
    """A replica's replication failed in a way the chart does not repair by itself."""


# --- faults: each injects, and returns the predicate "the fault happened and its pod is back" -------


def kill_server(release: Release, ordinal: int) -> Predicate:
    """SIGKILL mysqld (PID 1 of the `mysql` container) of pod `ordinal`; back once restarted and Ready."""
    core, namespace, name = release.kube.core, release.namespace, release.pod(ordinal)
    pod = core.read_namespaced_pod(name, namespace)
    server = container_status(pod, "mysql")
    release.cluster.kill_container(pod.spec.node_name, server.container_id)

    def restarted() -> object:
        now = core.read_namespaced_pod(name, namespace)
        restarts = container_status(now, "mysql").restart_count
        if restarts > server.restart_count and pod_is_ready(now):
            return True
        return Pending(f"{pod_summary(now)}, server restarts {restarts} (was {server.restart_count})")

    return restarted


def errant_write(release: Release, ordinal: int) -> bool:
    """Try to write on replica `ordinal` as root; True when the write went in (an errant transaction).

    MySQL: root lifts super_read_only and inserts. MariaDB refuses every way root has (the chart
    revokes READ_ONLY ADMIN from every account, and root cannot grant it back): an INSERT, lifting
    read_only, and granting ALL ON *.* through the primary are each asserted to fail.
    """
    db, pod = release.db, release.pod(ordinal)
    db.query(release.primary, "CREATE TABLE IF NOT EXISTS faults.errant (id INT PRIMARY KEY)")
    db.wait_for_gtid(pod, db.gtid_executed(release.primary))
    if db.flavor.name == "mysql":
        with db.connect(pod) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL super_read_only = OFF")
            cur.execute("INSERT INTO faults.errant VALUES (1)")
            cur.execute("SET GLOBAL super_read_only = ON")
        return True
    refused = {}
    for target, sql in (
        (pod, "INSERT INTO faults.errant VALUES (1)"),
        (pod, "SET GLOBAL read_only = OFF"),
        (release.primary, "GRANT ALL ON *.* TO 'root'@'%'"),
    ):
        with pytest.raises(pymysql.err.MySQLError) as error:
            db.query(target, sql)
        refused[sql] = error.value.args[0]
    log.info("MariaDB refused every errant write: %s", refused)
    return False


def run_readiness_probe(release: Release, ordinal: int) -> CommandResult:
    """Pod `ordinal`'s readiness probe, run now in its server container, as the kubelet runs it."""
    return exec_in_pod(
        release.kube, release.namespace, release.pod(ordinal),
        ["bash", "/opt/mysql-chart/probe.sh", "readiness"], container="mysql",
    )  # fmt: skip


def readiness_says(release: Release, ordinal: int, *words: str) -> object:
    """Predicate value: the pod's readiness probe fails and says one of `words`."""
    result = run_readiness_probe(release, ordinal)
    if result.rc != 0 and any(w in result.stderr for w in words):
        return result.stderr.strip()
    return Pending(f"probe rc {result.rc}: {result.stderr.strip()[-300:]}")


# The sidecar rebuilds a replica after 3 checks 10 s apart that saw purged binlogs. mysql-1 and
# mysql-2 start receiving together, so once mysql-2's rebuild is over, mysql-1's would have begun:
# it is watched this much longer for a rebuild that must not come.
REBUILD_WINDOW_SECONDS = 15


def ready_again(release: Release, ordinal: int, same_pod: str | None = None) -> Predicate:
    """Predicate: pod `ordinal` is Ready (again); with same_pod (a uid), it must still be that pod:
    restarted where it was, not recreated."""

    def ready() -> object:
        pod = release.kube.core.read_namespaced_pod(release.pod(ordinal), release.namespace)
        recreated = same_pod is not None and pod.metadata.uid != same_pod
        assert not recreated, f"{pod.metadata.name} was recreated, not restarted on its node"
        return pod_is_ready(pod) or Pending(f"{pod_summary(pod)}: not ready again")

    return ready


def container_log(release: Release, ordinal: int, container: str) -> str:
    """The log of a container of pod `ordinal` (empty while it has not started)."""
    argv = ["logs", release.pod(ordinal), "-c", container, "-n", release.namespace]
    return release.cluster.kubectl(*argv, check=False).stdout


def sidecar_log(release: Release, ordinal: int) -> str:
    return container_log(release, ordinal, "sidecar")


def log_says(text: str, needle: str) -> bool | Pending:
    """True when a log's text holds needle; else Pending with the log's last line."""
    return needle in text or Pending(f"not yet {needle!r}; last line: {text.strip().splitlines()[-1:]}")


def errant_then_discarded(release: Release, load: Workload) -> Predicate:
    """An errant write on mysql-1: it turns unready naming the transaction. Then mysql-1 and mysql-2
    stop receiving while the primary purges the binlogs they need next; receiving again, both get
    'purged' errors: mysql-2's sidecar rebuilds it in place, not from mysql-1 (its first choice of
    donor); mysql-1's refuses to rebuild it (that would discard the errant transaction, perhaps the
    only copy of that data). Last, mysql-1's copy is discarded the documented way (claim and pod
    deleted) and it re-clones a healthy peer."""
    db, core, namespace = release.db, release.kube.core, release.namespace
    if not errant_write(release, 1):
        return lambda: True
    said = wait_until(
        lambda: readiness_says(release, 1, "errant transactions"),
        timeout=120, what="mysql-1's readiness naming its errant transactions", transient=DB_TRANSIENT,
    )  # fmt: skip
    log.info("mysql-1: %s", said)
    assert "transactions the primary lacks" in sidecar_log(release, 1), sidecar_log(release, 1)[-2000:]

    mysql2_uid = core.read_namespaced_pod(release.pod(2), namespace).metadata.uid
    for ordinal in (1, 2):
        db.query(release.pod(ordinal), "STOP REPLICA IO_THREAD")
    load.wait_for_acks(5, since=time.time(), timeout=120)
    wait_until(lambda: purge_binlogs(release), timeout=120, what="the primary's binlogs purged")
    for ordinal in (1, 2):
        db.query(release.pod(ordinal), "START REPLICA IO_THREAD")

    wait_until(
        rebuilt_in_place(release, 2, mysql2_uid), timeout=RECOVERY_TIMEOUT, what="mysql-2 rebuilt in place",
        transient=DB_TRANSIENT,
    )  # fmt: skip
    rebuild_log = sidecar_log(release, 2)
    assert f"datadir cloned from {release.host(1)}" not in rebuild_log, rebuild_log[-3000:]
    assert not db_has_errant_row(release, 2), "mysql-2 cloned the errant write"

    deadline = time.monotonic() + REBUILD_WINDOW_SECONDS
    while time.monotonic() < deadline:  # an observation window: no rebuild may start in it
        assert "shutting the server down for the rebuild" not in sidecar_log(release, 1), "mysql-1 rebuilt"
        time.sleep(5)
    assert db_has_errant_row(release, 1), "mysql-1 lost its errant write"
    assert "not rebuilding it" in sidecar_log(release, 1), sidecar_log(release, 1)[-2000:]
    return release.delete_claim_and_pod(1)


def db_has_errant_row(release: Release, ordinal: int) -> bool:
    return bool(release.db.query(release.pod(ordinal), "SELECT id FROM faults.errant"))


def server_started(release: Release, ordinal: int) -> V1Pod | Pending:
    """The pod, once its server container has started (it has a container id)."""
    for pod in release.kube.pods(release.namespace):
        if pod.metadata.name == release.pod(ordinal):
            started = [c for c in pod.status.container_statuses or [] if c.name == "mysql" and c.container_id]
            return pod if started else Pending(pod_summary(pod))
    return Pending(f"{release.pod(ordinal)} does not exist yet")


def claim_host_path(release: Release, ordinal: int) -> str:
    """Where pod `ordinal`'s volume lives on its node (local-path provisioner: a hostPath PV)."""
    core = release.kube.core
    claim = core.read_namespaced_persistent_volume_claim(f"data-{release.pod(ordinal)}", release.namespace)
    pv = core.read_persistent_volume(claim.spec.volume_name)
    source = pv.spec.host_path or pv.spec.local
    assert source is not None, f"{pv.metadata.name} is neither hostPath nor local"
    return str(source.path)


def purge_binlogs(release: Release) -> str | Pending:
    """Rotate the primary's binlog and purge every older one; the current file once none is left.

    A server keeps a file a connected replica is still reading (MariaDB says so only in a warning):
    the caller retries until the replica has moved on.
    """
    status = "SHOW MASTER STATUS" if release.db.flavor.name == "mariadb" else "SHOW BINARY LOG STATUS"
    with release.db.connect(release.primary) as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        cur.execute(status)
        current = cur.fetchone()[0]
        cur.execute(f"PURGE BINARY LOGS TO '{current}'")
        cur.execute("SHOW BINARY LOGS")
        files = [row[0] for row in cur.fetchall()]
    return current if files == [current] else Pending(f"binlogs left: {files}")


def purge_binlogs_while_down_then_kill_during_rebuild(release: Release, load: Workload) -> Predicate:
    """mysql-2 stops (scale to 2, claim kept); the primary rotates and purges its binlogs while
    writes go on; mysql-2 returns, finds them purged, and its sidecar rebuilds it; the moment the
    rebuild starts, mysql-2's server is killed with -9 (a stale pid file is left behind). The rebuild
    must still finish, and mysql-2 hold every write."""
    namespace = release.namespace
    scale(release, PODS - 1)
    load.wait_for_acks(5, since=time.time(), timeout=120)
    current = wait_until(lambda: purge_binlogs(release), timeout=120, what="the primary's binlogs purged")
    log.info("purged the primary's binlogs up to %s", current)
    mark = f"{claim_host_path(release, 2)}/reclone-requested"
    release.cluster.kubectl("scale", "statefulset", release.name, "-n", namespace, f"--replicas={PODS}")
    pod = wait_until(lambda: server_started(release, 2), timeout=300, what="mysql-2's server started")
    server = container_status(pod, "mysql")
    release.cluster.kill_container_when_file_appears(pod.spec.node_name, server.container_id, mark)
    return rebuilt_in_place(release, 2, pod.metadata.uid)


def rebuilt_in_place(release: Release, ordinal: int, uid: str) -> Predicate:
    """True once pod `ordinal` (still the pod with `uid`: rebuilt in place, not recreated) has
    logged a finished rebuild and is ready again."""

    def rebuilt() -> object:
        now = release.kube.core.read_namespaced_pod(release.pod(ordinal), release.namespace)
        assert now.metadata.uid == uid, f"{now.metadata.name} was recreated instead of rebuilt in place"
        return log_says(sidecar_log(release, ordinal), "replica rebuilt") and (
            pod_is_ready(now) or Pending(pod_summary(now))
        )

    return rebuilt


def exhaust_connections(release: Release, load: Workload) -> Predicate:
    """A client pod takes every connection of the primary (more than max_connections, as root: the
    one the server keeps for admins too) and holds them HOG_HOLD_SECONDS. No pod may leave its
    Service meanwhile: the probes and the primary's heartbeat do not need those connections."""
    core, namespace = release.kube.core, release.namespace
    hog = connection_hog(release, MAX_CONNECTIONS + 5, HOG_HOLD_SECONDS)
    started_at = int(time.time())
    hog.start()
    try:
        wait_until(
            lambda: log_says(hog.log(), "Too many connections"),
            timeout=60, what="the primary refusing connections (error 1040)",
        )  # fmt: skip

        def released() -> object:
            pod = core.read_namespaced_pod(hog.name, namespace)
            return pod.status.phase in ("Succeeded", "Failed") or Pending(pod_summary(pod))

        wait_until(released, timeout=HOG_HOLD_SECONDS + 60, what="the hog's connections released")
        outcome = hog.log().split()
        log.info(
            "hog: %d connections held, %d refused at first", outcome.count("held"), outcome.count("refused")
        )
    finally:
        hog.delete()
    refused = [a for a in load.ledger().attempts if a.at >= started_at and "Too many connections" in a.detail]
    assert refused, "the writer was never refused: the primary's connections were not all taken"
    log.info("the writer was refused %d times (too many connections)", len(refused))
    left = {}
    for name in release.pods():
        ready = ready_condition(core.read_namespaced_pod(name, namespace))
        if ready.status != "True" or ready.last_transition_time.timestamp() >= started_at:
            left[name] = f"Ready {ready.status} since {ready.last_transition_time}"
    assert not left, f"pods left their Service while the primary's connections were exhausted: {left}"
    return lambda: True


# Seconds between readiness checks (the chart's default) and how much later than maxLagSeconds plus
# one of them a stale replica may still answer through mysql-read: the heartbeat's own second, the
# probe's run, and the Service's endpoints following the pod's readiness.
PROBE_PERIOD = 5
STALE_SLACK = 5


def not_ready_since(release: Release, ordinal: int) -> float | Pending:
    """When pod `ordinal` turned unready (its Ready condition's transition), once it is."""
    pod = release.kube.core.read_namespaced_pod(release.pod(ordinal), release.namespace)
    ready = ready_condition(pod)
    if ready.status == "True":
        return Pending(pod_summary(pod))
    return ready.last_transition_time.timestamp()


def leaves_mysql_read(
    release: Release,
    ordinal: int,
    cause_at: float,
    *because: str,
    why: Callable[[], str | Pending] | None = None,
) -> str:
    """Pod `ordinal` turns unready within MAX_LAG_SECONDS + PROBE_PERIOD (+ slack) of `cause_at`,
    its readiness probe saying one of `because` (or `why` returning how it went out); returns that."""
    bound = MAX_LAG_SECONDS + PROBE_PERIOD + STALE_SLACK
    since = wait_until(
        lambda: not_ready_since(release, ordinal), timeout=bound + 30, interval=1,
        what=f"mysql-{ordinal} out of mysql-read",
    )  # fmt: skip
    said = wait_until(
        why or (lambda: readiness_says(release, ordinal, *because)), timeout=60,
        what=f"why mysql-{ordinal} went out ({because or why})", transient=DB_TRANSIENT,
    )  # fmt: skip
    log.info("mysql-%d unready %.0fs after the fault: %s", ordinal, since - cause_at, said)
    assert since - cause_at <= bound, (
        f"mysql-{ordinal} left mysql-read {since - cause_at:.0f}s after the fault"
    )
    return said


def partition_from_primary(release: Release, ordinal: int) -> Predicate:
    """Every packet between replica `ordinal` and the primary dropped, silently (its I/O thread keeps
    saying Yes; clients still reach it): it leaves mysql-read once its data is MAX_LAG_SECONDS old;
    the link is then restored, and it reconnects and catches up on its own."""
    core, namespace = release.kube.core, release.namespace
    primary_ip = core.read_namespaced_pod(release.primary, namespace).status.pod_ip
    pod = core.read_namespaced_pod(release.pod(ordinal), namespace)
    server = container_status(pod, "mysql")
    release.cluster.drop_packets(pod.spec.node_name, server.container_id, primary_ip)
    cut_at = time.time()
    try:
        leaves_mysql_read(release, ordinal, cut_at, "old (max")
    finally:
        release.cluster.drop_packets(pod.spec.node_name, server.container_id, primary_ip, drop=False)
    return ready_again(release, ordinal)


def stop_sql_thread(release: Release, ordinal: int) -> Predicate:
    """Replica `ordinal`'s SQL thread stopped (by hand, or an error in a transaction): it leaves
    mysql-read at its next probe, naming the thread; the chart leaves the thread to a human (it may
    be stopped on purpose); started again, the replica catches up."""
    stop, start = (
        ("STOP SLAVE SQL_THREAD", "START SLAVE SQL_THREAD")
        if release.db.flavor.name == "mariadb"
        else ("STOP REPLICA SQL_THREAD", "START REPLICA SQL_THREAD")
    )
    pod = release.pod(ordinal)
    release.db.query(pod, stop)
    stopped_at = time.time()
    leaves_mysql_read(release, ordinal, stopped_at, "SQL thread is not running")
    release.db.query(pod, start)
    return ready_again(release, ordinal)


# Shell run on the node. $1: a volume's directory, $2: MiB of room. Moves the volume's content onto a
# tmpfs of its size plus the room, mounted over the directory (owner and mode kept): a small disk.
SHRINK_VOLUME = """
dir=$1 room=$2 keep=/var/tmp/faults-volume
used=$(du -sm "$dir" | cut -f1)
owner=$(stat -c %u:%g "$dir") mode=$(stat -c %a "$dir")
rm -rf "$keep" && mkdir -p "$keep" && cp -a "$dir/." "$keep/"
mount -t tmpfs -o "size=$((used + room))m,mode=$mode" tmpfs "$dir"
chown "$owner" "$dir"
cp -a "$keep/." "$dir/" && rm -rf "$keep"
df -m "$dir" | tail -n1
"""
# $1: the directory. Moves the content back onto the node's disk, in place of what the directory
# held before the shrink (files the server deleted meanwhile, old redo log files say, must not
# come back: InnoDB refuses a redo log with a stale file in it).
RESTORE_VOLUME = """
dir=$1 keep=/var/tmp/faults-volume
rm -rf "$keep" && mkdir -p "$keep" && cp -a "$dir/." "$keep/"
umount "$dir"
find "$dir" -mindepth 1 -delete
cp -a "$keep/." "$dir/" && rm -rf "$keep"
"""
# $1: the directory. Takes every free byte.
FILL_VOLUME = """
free=$(df -k "$1" | tail -n1 | awk '{print $4}')
fallocate -l "$((free * 1024))" "$1/faults-filler" || fallocate -l "$(((free - 4) * 1024))" "$1/faults-filler"
df -k "$1" | tail -n1
"""


def scale(release: Release, pods: int) -> None:
    """kubectl scale the StatefulSet to `pods` and wait until exactly those pods run, Ready."""
    release.cluster.kubectl(
        "scale", "statefulset", release.name, "-n", release.namespace, f"--replicas={pods}"
    )

    wanted = [release.pod(i) for i in range(pods)]

    def settled() -> object:
        names = sorted(p.metadata.name for p in release.kube.pods(release.namespace))
        servers = [n for n in names if re.fullmatch(rf"{release.name}-\d+", n)]
        return servers == wanted or Pending(f"pods: {servers}")

    wait_until(settled, timeout=300, what=f"{pods} pods")
    if pods:
        release.wait_rolled_out(replicas=pods)


def shrink_volume(release: Release, ordinal: int, room_mib: int) -> tuple[str, str]:
    """Put the last pod's volume on a small disk (room_mib free): the pod stops meanwhile.
    Returns (node, directory) for fill and restore."""
    assert ordinal == PODS - 1, "only the last pod can be stopped alone"
    node = node_of(release, ordinal)
    path = claim_host_path(release, ordinal)
    scale(release, PODS - 1)
    log.info(
        "volume of %s: %s",
        release.pod(ordinal),
        release.cluster.on_node(node, SHRINK_VOLUME, path, str(room_mib)).strip(),
    )
    scale(release, PODS)
    return node, path


def restore_volume(release: Release, node: str, path: str) -> None:
    """Back onto the node's disk; every pod Ready again."""
    scale(release, PODS - 1)
    release.cluster.on_node(node, RESTORE_VOLUME, path)
    scale(release, PODS)


def fill_volume(release: Release, ordinal: int, node: str, path: str) -> Predicate:
    """Replica `ordinal`'s volume fills up: its server waits for room instead of failing, it leaves
    mysql-read once its data is MAX_LAG_SECONDS old; room is then made, and it catches up."""
    log.info("filled: %s", release.cluster.on_node(node, FILL_VOLUME, path).strip())
    filled_at = time.time()
    try:
        # MariaDB's SHOW SLAVE STATUS waits while the I/O thread waits for room: the probe gives up.
        leaves_mysql_read(
            release, ordinal, filled_at, "old (max", "server does not answer", "SQL thread is not running"
        )
    finally:
        release.cluster.on_node(node, 'rm -f "$1/faults-filler"', path)
    return ready_again(release, ordinal)


# A table the primary fills with BULK_MIB rows of 1 MiB for the applier's fault, dropped after it:
# the replica holds it three times (relay log, table, binlog) within the small disk's 64 MiB.
BULK_TABLE = "faults.bulk"
BULK_MIB = 4


def received_by(release: Release, pod: str, gtid: str) -> bool | Pending:
    """Replica `pod` has `gtid` in its relay log or its data (MySQL: Retrieved_Gtid_Set with
    gtid_executed; MariaDB: Gtid_IO_Pos)."""
    db = release.db
    if db.flavor.name == "mariadb":
        have = str(db.replica_status(pod).get("Gtid_IO_Pos") or "")
    else:
        parts = [str(db.replica_status(pod).get("Retrieved_Gtid_Set") or ""), db.gtid_executed(pod)]
        have = ",".join(part for part in parts if part)
    return db.gtid_contains(pod, have, gtid) or Pending(f"{pod} received {have!r}, not yet {gtid!r}")


def applier_stopped_or_server_down(release: Release, ordinal: int, restarts: int) -> str | Pending:
    """How replica `ordinal` went out: its probe naming the stopped SQL thread (MySQL), or, on
    MariaDB, its server container restarting (the server exited on the full volume, and starts
    again only once there is room) or its server not answering (it waits for room, holding the
    connections it has: both seen, from one run to the next)."""
    pod = release.kube.core.read_namespaced_pod(release.pod(ordinal), release.namespace)
    now = container_status(pod, "mysql").restart_count
    if now > restarts:
        return f"server container restarted ({restarts} -> {now} restarts)"
    if release.db.flavor.name == "mariadb":
        return readiness_says(release, ordinal, "SQL thread is not running", "server does not answer")
    return readiness_says(release, ordinal, "SQL thread is not running")


def fill_volume_under_the_applier(
    release: Release, ordinal: int, node: str, path: str, seen: dict[str, str]
) -> Predicate:
    """Replica `ordinal`'s volume fills up while a large transaction waits in its relay log: InnoDB
    cannot grow the table. MySQL stops the SQL thread on that error (the table is full): the
    replica leaves mysql-read saying so and the sidecar says the volume is full; MariaDB's server
    exits, or waits for room without answering. Room is then made, and (MySQL) the sidecar starts
    the thread again, (MariaDB) the server starts or goes on again: the replica catches up with
    nobody touching it. seen["how"]: which way it went out."""
    pod, mariadb = release.pod(ordinal), release.db.flavor.name == "mariadb"
    release.db.query(release.primary, f"CREATE TABLE {BULK_TABLE} (id INT PRIMARY KEY, pad LONGBLOB)")
    release.db.wait_for_gtid(pod, release.db.gtid_executed(release.primary))
    release.db.query(pod, "STOP SLAVE SQL_THREAD" if mariadb else "STOP REPLICA SQL_THREAD")
    rows = ", ".join(f"({i}, REPEAT('x', 1 << 20))" for i in range(BULK_MIB))
    release.db.query(release.primary, f"INSERT INTO {BULK_TABLE} VALUES {rows}")
    gtid = release.db.gtid_executed(release.primary)
    wait_until(lambda: received_by(release, pod, gtid), timeout=60, what=f"{pod} receiving the bulk insert")
    restarts = container_status(release.kube.core.read_namespaced_pod(pod, release.namespace), "mysql")
    log.info("filled: %s", release.cluster.on_node(node, FILL_VOLUME, path).strip())
    filled_at = time.time()
    try:
        release.db.query(pod, "START SLAVE SQL_THREAD" if mariadb else "START REPLICA SQL_THREAD")
        seen["how"] = leaves_mysql_read(
            release, ordinal, filled_at,
            why=lambda: applier_stopped_or_server_down(release, ordinal, restarts.restart_count),
        )  # fmt: skip
        if "SQL thread" in seen["how"]:
            wait_until(
                lambda: log_says(sidecar_log(release, ordinal), "the volume is full"), timeout=60,
                what=f"{pod}'s sidecar saying its volume is full",
            )  # fmt: skip
    finally:
        release.cluster.on_node(node, 'rm -f "$1/faults-filler"', path)
    return ready_again(release, ordinal)


# --- donors failing mid-clone --------------------------------------------------------------------------


def pod_or_absent(release: Release, ordinal: int) -> V1Pod | Pending:
    """Pod `ordinal`, or Pending when it does not exist (between a deletion and its replacement)."""
    try:
        return release.kube.core.read_namespaced_pod(release.pod(ordinal), release.namespace)
    except ApiException as e:
        if e.status == 404:
            return Pending(f"{release.pod(ordinal)} absent")
        raise


class OtherDonorFirst(Exception):
    """A MariaDB clone got its stream from another donor than the one the fault is aimed at."""


def clone_underway(release: Release, ordinal: int, old_uid: str, donor: int) -> str | Pending:
    """What the clone init container of pod `ordinal` (a new pod: not old_uid) is copying, once data
    moves. MySQL: the stage and bytes the throw-away server the clone runs in reports (through its
    socket, inside the container); MariaDB: pod `donor` accepted and the stream runs (its log).
    Raises OtherDonorFirst when a MariaDB clone got its stream from another donor first: the fault
    would miss it."""
    pod = pod_or_absent(release, ordinal)
    if isinstance(pod, Pending):
        return pod
    clone = [s for s in pod.status.init_container_statuses or [] if s.name == "clone"]
    if pod.metadata.uid == old_uid or not (clone and clone[0].state and clone[0].state.running):
        return Pending(f"no clone running yet: {pod_summary(pod)}")
    if release.db.flavor.name == "mariadb":
        text = container_log(release, ordinal, "clone")
        accepted = [line for line in text.splitlines() if "accepted; receiving the stream" in line]
        if not accepted:
            return Pending(f"clone log: {text.strip().splitlines()[-1:]}")
        if f"donor {release.pod(donor)} accepted" not in accepted[0]:
            raise OtherDonorFirst(
                f"{release.pod(ordinal)}'s clone streamed from another donor first:\n{text[-3000:]}"
            )
        return accepted[0]
    sql = (
        "SELECT CONCAT(STAGE, ' ', DATA) FROM performance_schema.clone_progress "
        "WHERE STATE = 'In Progress' AND STAGE IN ('FILE COPY', 'PAGE COPY') AND DATA > 0"
    )
    argv = ["mysql", "--socket=/tmp/clone-recipient.sock", "-uroot", "-N", "-B", "-e", sql]
    result = exec_in_pod(release.kube, release.namespace, release.pod(ordinal), argv, container="clone")
    stage = result.stdout.strip() if result.rc == 0 else ""
    return stage or Pending(f"no copy yet: {result.stderr.strip()[-200:]}")


# Data every pod holds so that a clone copies for a while: at clone.maxBandwidthMiB (4 MiB/s) these
# 32 MiB take 8 s, which the checks of clone_underway (one a second or two) see. Without it, the
# datadir of m and n can be small enough to clone between two checks (seen once, session 11).
CLONE_FILLER_TABLE = "faults.clone_filler"
CLONE_FILLER_MIB = 32


def ensure_clone_filler(release: Release) -> None:
    """CLONE_FILLER_TABLE on the primary (replicated), once per release."""
    with release.db.connect(release.primary) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {CLONE_FILLER_TABLE} (id INT PRIMARY KEY, pad LONGBLOB)")
        for i in range(CLONE_FILLER_MIB):
            cur.execute(f"INSERT IGNORE INTO {CLONE_FILLER_TABLE} VALUES ({i}, REPEAT('x', 1 << 20))")
    release.wait_replicas_applied()


# Times mysql-2 is re-cloned until its clone streams from mysql-1. The first try can go to mysql-0:
# kube-router rejects (Connection refused) a new pod's first connections to a pod on a node whose
# policy rules do not list its address yet, and the clone moves on to its next donor (seen once,
# session 16: mysql-1 listening, refused 6 s after mysql-2 was created, mysql-0 accepted).
RECLONE_ATTEMPTS = 3


def reclone_until_copying(release: Release) -> tuple[Predicate, V1Pod]:
    """Delete mysql-2's claim and pod; return once its clone copies from mysql-1, its first donor
    (RECLONE_ATTEMPTS times at most). Returns the predicate "mysql-2 back on a new claim" and
    mysql-1 as it was before the fault."""
    ensure_clone_filler(release)
    core, namespace = release.kube.core, release.namespace
    donor = core.read_namespaced_pod(release.pod(1), namespace)
    for attempt in range(1, RECLONE_ATTEMPTS + 1):
        old_uid = core.read_namespaced_pod(release.pod(2), namespace).metadata.uid
        back = release.delete_claim_and_pod(2)
        try:
            stage = wait_until(
                lambda old_uid=old_uid: clone_underway(release, 2, old_uid, donor=1), timeout=300,
                interval=1, what="mysql-2's clone copying data",
            )  # fmt: skip
        except OtherDonorFirst as other:
            if attempt == RECLONE_ATTEMPTS:
                raise AssertionError(f"{RECLONE_ATTEMPTS} attempts: {other}") from other
            log.warning("attempt %d: %s", attempt, other)
            wait_until(back, timeout=TIMEOUTS.pod_ready, what="mysql-2 back on a new claim, to try again")
            continue
        log.info("mysql-2's clone is copying: %s", stage)
        return back, donor
    raise AssertionError("unreachable")


def kill_donor_mid_clone(release: Release) -> Predicate:
    """Every process of mysql-1 (server and sidecar) killed -9 while mysql-2 clones it."""
    back, donor = reclone_until_copying(release)
    for container in ("mysql", "sidecar"):
        release.cluster.kill_container(donor.spec.node_name, container_status(donor, container).container_id)
    return back


def freeze_donor_mid_clone(release: Release) -> Predicate:
    """mysql-1's server and sidecar (every process they started) stopped with SIGSTOP while mysql-2
    clones it: its sockets stay open and silent. It must leave mysql-read at its next readiness
    check (the probe's client gives up on the silent server) and mysql-2's clone move on after
    clone.stallSeconds; mysql-1 is resumed (SIGCONT) once it has."""
    back, donor = reclone_until_copying(release)
    containers = [container_status(donor, name).container_id for name in ("mysql", "sidecar")]
    resume = release.cluster.freeze_containers(donor.spec.node_name, containers)
    frozen_at = time.time()
    try:
        since = wait_until(
            lambda: not_ready_since(release, 1), timeout=60, interval=1,
            what="the frozen mysql-1 out of mysql-read",
        )  # fmt: skip
        log.info("the frozen mysql-1 left mysql-read after %.0fs", since - frozen_at)
        assert since - frozen_at <= 2 * PROBE_PERIOD + STALE_SLACK, (
            f"the frozen mysql-1 left mysql-read {since - frozen_at:.0f}s after the freeze"
        )
        wait_until(
            lambda: log_says(container_log(release, 2, "clone"), f"cloning from {release.host(0)}"),
            timeout=CLONE_STALL_SECONDS + 120, interval=2, what="mysql-2's clone moving on to mysql-0",
        )  # fmt: skip
    finally:
        resume()
    return back


def assert_cloned_around_mysql_1(release: Release) -> None:
    """mysql-2's clone log: it started on mysql-1, saw that copy fail, and cloned mysql-0 instead; its
    datadir's completion marker names mysql-0."""
    text = container_log(release, 2, "clone")
    failed = re.compile(
        rf"(clone|stream) from {re.escape(release.host(1))}\S* "
        r"(failed|ended as|has no|is truncated|is not a full|moved no data)"
    )
    assert f"cloning from {release.host(1)}" in text, text[-3000:]
    assert failed.search(text), f"mysql-2's clone did not fail over from mysql-1:\n{text[-3000:]}"
    assert f"datadir cloned from {release.host(0)}" in text, text[-3000:]
    argv = ["cat", "/var/lib/mysql/data/chart-datadir-complete"]
    marker = exec_in_pod(release.kube, release.namespace, release.pod(2), argv, container="mysql").ok()
    # The donor's name is the pod's DNS name, under the namespace's domain when TLS names peers so.
    donor = rf"cloned from {re.escape(release.host(0))}(\.{re.escape(release.namespace)}\.svc)? "
    assert re.match(donor, marker.lines[0]), marker.lines


# --- the scenario ------------------------------------------------------------------------------------


@dataclass
class Recovery:
    """Full recovery after a fault: when it was reached, or why not."""

    injected_at: float
    recovered_at: float | None = None
    error: AssertionError | None = None
    stuck_since: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        return None if self.recovered_at is None else self.recovered_at - self.injected_at


def fully_recovered(release: Release, pod_back: Predicate, recovery: Recovery) -> Predicate:
    """Predicate: the faulted pod is back, the StatefulSet rolled out, replication runs on every replica.

    Raises ReplicationStuck when a replica has had a replication error 1236 that is not about purged
    binlogs (the only kind the chart's sidecar repairs) for STUCK_REPLICATION_SECONDS.
    """
    rolled_out = statefulset_rolled_out(release.kube, release.namespace, release.name, PODS)
    db, flavor = release.db, release.db.flavor

    def check() -> object:
        back = pod_back()
        if not back:
            return back
        sts = rolled_out()
        if not sts:
            return sts
        waiting = []
        for pod in release.replicas():
            status = db.replica_status(pod)
            if status.get(flavor.io_running) == "Yes" and status.get(flavor.sql_running) == "Yes":
                recovery.stuck_since.pop(pod, None)
                continue
            error = f"{status.get('Last_IO_Errno')} {status.get('Last_IO_Error')}"
            waiting.append(
                f"{pod}: IO {status.get(flavor.io_running)} SQL {status.get(flavor.sql_running)} {error}"
            )
            if status.get("Last_IO_Errno") == 1236 and "purged" not in str(status.get("Last_IO_Error")):
                since = recovery.stuck_since.setdefault(pod, time.monotonic())
                if time.monotonic() - since > STUCK_REPLICATION_SECONDS:
                    raise ReplicationStuck(
                        f"replication stuck for {STUCK_REPLICATION_SECONDS:.0f}s: {waiting[-1]}"
                    )
        return Pending("; ".join(waiting)) if waiting else True

    return check


def rows_by_id(release: Release, pod: str, ledger: Ledger) -> dict[int, int]:
    """id -> how many rows pod's server holds, for this run's ids (no table at all: none)."""
    low, high = ledger.range
    sql = f"SELECT id, COUNT(*) FROM {TABLE} WHERE id BETWEEN %s AND %s GROUP BY id"
    try:
        return {int(i): int(n) for i, n in release.db.query(pod, sql, (low, high))}
    except pymysql.err.MySQLError as e:
        if e.args and e.args[0] in (1049, 1146):  # unknown database / table
            log.warning("%s has no %s: %s", pod, TABLE, e)
            return {}
        raise


def final_check(release: Release, ledger: Ledger, gtid_timeout: float) -> list[str]:
    """Every replica applies the primary's GTIDs; every pod's rows go into ledger.counts; no replica
    lacks a transaction of the primary's or holds one the primary lacks.

    Returns the problems found with the GTIDs (the row checks are the caller's).
    """
    problems: list[str] = []
    try:
        release.wait_replicas_applied(timeout=gtid_timeout)
    except (AssertionError, *DB_TRANSIENT) as e:
        problems.append(f"replicas did not apply the primary's GTIDs: {e}")
    for pod in release.pods():
        # wrapped in a tuple: a pod holding no rows ({}) is an answer, not "not yet"
        (ledger.counts[pod],) = wait_until(
            lambda pod=pod: (rows_by_id(release, pod, ledger),),
            timeout=120,
            what=f"{pod}'s rows",
            transient=DB_TRANSIENT,
        )

    def converged() -> object:
        diverged = release.gtid_divergence()
        return Pending(diverged) if diverged else True

    try:
        wait_until(
            converged, timeout=gtid_timeout, what="every replica at the primary's GTID set, none beyond it",
            transient=DB_TRANSIENT,
        )  # fmt: skip
    except WaitTimeout as e:
        problems.append(str(e))
    return problems


def ids_by_pod(found: dict[str, list[int]]) -> str:
    return "; ".join(
        f"{pod}: {len(ids)} ids {ids[:20]}{' ...' if len(ids) > 20 else ''}" for pod, ids in found.items()
    )


def record(fault: str, flavor: str, ledger: Ledger, recovery: Recovery) -> None:
    """Write this fault's row of artifacts/faults.md."""
    lost, duplicated = ledger.lost(), ledger.duplicated()
    lost_ids = {i for ids in lost.values() for i in ids}
    dup_ids = {i for ids in duplicated.values() for i in ids}
    seconds = recovery.seconds
    row = {
        "fault": fault,
        "flavor": flavor,
        "acknowledged": len(ledger.acked),
        "lost": f"{len(lost_ids)}" + (f" (on {', '.join(lost)})" if lost else ""),
        "duplicated": f"{len(dup_ids)}" + (f" (on {', '.join(duplicated)})" if duplicated else ""),
        "indeterminate": len(ledger.ids(Outcome.INDETERMINATE)),
        "seconds without writes": f"{ledger.seconds_without_writes():.1f}",
        "seconds without reads": f"{ledger.seconds_without_reads():.1f}",
        "worst staleness (s)": f"{ledger.worst_staleness():.1f}",
        "seconds to full recovery": f"{seconds:.0f}" if seconds is not None else "not recovered",
    }
    record_row(RESULTS, row)
    log.info("faults.md row: %s", row)


def survive(
    release: Release, settings: Settings, fault: str, inject: Callable[[Workload], Predicate]
) -> Ledger:
    """Run fault under load, record its row, then assert: nothing lost or duplicated, replicas converge.
    Returns the ledger for the fault's own checks."""
    load = Workload(release)
    load.start()
    try:
        load.wait_for_acks(ACKS, reads=True)
        recovery = Recovery(injected_at=time.time())
        log.info("injecting: %s", fault)
        pod_back = inject(load)
        try:
            wait_until(
                fully_recovered(release, pod_back, recovery),
                timeout=RECOVERY_TIMEOUT,
                interval=3,
                what=f"full recovery from: {fault}",
                transient=DB_TRANSIENT,
            )
            recovery.recovered_at = time.time()
            log.info("recovered from %s after %.0fs", fault, recovery.seconds)
            load.wait_for_acks(ACKS, since=recovery.recovered_at, timeout=120)
        except AssertionError as e:
            recovery.error = e
            log.error("no full recovery from %s: %s", fault, e)
    finally:
        ledger = load.stop()
    ledger.injected_at = recovery.injected_at
    problems = final_check(release, ledger, gtid_timeout=180 if recovery.error is None else 30)
    record(fault, settings.flavor, ledger, recovery)
    log.info("ledger: %s; gtid problems: %s", ledger.summary(), problems)

    assert not ledger.lost(), f"acknowledged writes missing after {fault}: {ids_by_pod(ledger.lost())}"
    assert not ledger.duplicated(), (
        f"writes applied more than once after {fault}: {ids_by_pod(ledger.duplicated())}"
    )
    assert not ledger.phantoms(), (
        f"writes reported failed yet present after {fault}: {ids_by_pod(ledger.phantoms())}"
    )
    if recovery.error is not None:
        raise recovery.error
    assert not problems, "\n".join(problems)
    return ledger


def assert_reads_fresh(ledger: Ledger) -> None:
    """No read through mysql-read returned data older than maxLagSeconds plus one probe period (+ slack)."""
    bound = MAX_LAG_SECONDS + PROBE_PERIOD + STALE_SLACK
    assert ledger.worst_staleness() <= bound, (
        f"a read was {ledger.worst_staleness():.1f}s stale (bound {bound}s)"
    )


# --- nodes: drains and lost nodes (marked `nodes`: they reach every namespace, so run alone) -------


def node_of(release: Release, ordinal: int) -> str:
    return release.kube.core.read_namespaced_pod(release.pod(ordinal), release.namespace).spec.node_name


def drain(release: Release, node: str, timeout: int) -> subprocess.CompletedProcess[str]:
    """`kubectl drain NODE` (evictions, so disruption budgets apply); its result, failed or not."""
    return release.cluster.kubectl(
        "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", f"--timeout={timeout}s",
        timeout=timeout + 60, check=False,
    )  # fmt: skip


def uncordon_every_node(release: Release) -> None:
    for node in release.kube.core.list_node().items:
        if node.spec.unschedulable:
            release.cluster.kubectl("uncordon", node.metadata.name)


def unschedulable(release: Release, ordinal: int, old_uid: str | None = None) -> V1Pod | Pending:
    """Pod `ordinal` (a new one, when old_uid is given) waiting for a node: its volume's node is
    cordoned (local volumes bind a pod to its node)."""
    pod = pod_or_absent(release, ordinal)
    if isinstance(pod, Pending):
        return pod
    scheduled = [c for c in pod.status.conditions or [] if c.type == "PodScheduled"]
    if pod.metadata.uid != old_uid and scheduled and scheduled[0].status == "False":
        return pod
    return Pending(pod_summary(pod))


def drain_primarys_node(release: Release) -> Predicate:
    """`kubectl drain` of mysql-0's node while mysql-2 is down (its node cordoned, the pod deleted:
    it waits there, its volume being on that node) is held by the disruption budget and mysql-0
    keeps serving. mysql-2's node uncordoned, mysql-2 back, the drain proceeds: mysql-0 is evicted
    and waits for its node (its volume is there); uncordoned, it comes back with its data."""
    core, namespace = release.kube.core, release.namespace
    primary_node, other_node = node_of(release, 0), node_of(release, 2)
    assert primary_node != other_node, "mysql-0 and mysql-2 share a node"
    release.cluster.kubectl("cordon", other_node)
    old = core.read_namespaced_pod(release.pod(2), namespace).metadata.uid
    core.delete_namespaced_pod(release.pod(2), namespace)
    wait_until(lambda: unschedulable(release, 2, old), timeout=120, what="mysql-2 waiting for its node")

    held = drain(release, primary_node, timeout=30)
    assert held.returncode != 0, f"the drain went through with mysql-2 down:\n{held.stdout}"
    assert "disruption budget" in held.stderr, held.stderr[-2000:]
    assert pod_is_ready(core.read_namespaced_pod(release.pod(0), namespace)), "mysql-0 left during the drain"
    log.info("drain of %s held by the disruption budget while mysql-2 was down", primary_node)

    release.cluster.kubectl("uncordon", other_node)
    wait_until(
        ready_again(release, 2), timeout=RECOVERY_TIMEOUT, what="mysql-2 back on its node",
        transient=(ApiException,),
    )  # fmt: skip
    old = core.read_namespaced_pod(release.pod(0), namespace).metadata.uid
    done = drain(release, primary_node, timeout=180)
    assert done.returncode == 0, f"the drain failed with every pod up:\n{done.stdout}\n{done.stderr}"
    wait_until(lambda: unschedulable(release, 0, old), timeout=120, what="mysql-0 waiting for its node")
    log.info("%s drained; mysql-0 waits for it (its volume is there)", primary_node)
    release.cluster.kubectl("uncordon", primary_node)
    return pod_recreated_and_ready(release.kube, namespace, release.pod(0), old)


def node_ready(release: Release, node: str) -> bool | Pending:
    conditions = release.kube.core.read_node(node).status.conditions or []
    ready = [c.status for c in conditions if c.type == "Ready"]
    return ready == ["True"] or Pending(f"{node} Ready={ready}")


def lose_replicas_node(release: Release) -> Predicate:
    """mysql-1's node stopped (`docker stop`): once Kubernetes sees the node gone, mysql-1 leaves
    mysql-read and the reads go on from the others. The node started again, mysql-1 comes back (the
    same pod, on its volume) and catches up."""
    core, namespace = release.kube.core, release.namespace
    node, uid = node_of(release, 1), core.read_namespaced_pod(release.pod(1), namespace).metadata.uid
    release.cluster.stop_node(node)
    try:
        wait_until(
            lambda: not_ready_since(release, 1), timeout=180, interval=2,
            what="mysql-1 marked unready with its node gone", transient=(ApiException,),
        )  # fmt: skip
        gone = core.read_namespaced_pod(release.pod(1), namespace)
        log.info("mysql-1 out of mysql-read: %s", pod_summary(gone))
    finally:
        release.cluster.start_node(node)
    wait_until(lambda: node_ready(release, node), timeout=180, what=f"{node} Ready again")
    return ready_again(release, 1, same_pod=uid)


def serves_while_primary_lost(release: Release, ordinal: int, since: float) -> str:
    """Replica `ordinal` has been Ready since before `since` (its Ready condition has not moved), and
    its readiness probe passes because no member has fresher data; what the probe said."""
    pod = release.kube.core.read_namespaced_pod(release.pod(ordinal), release.namespace)
    ready = ready_condition(pod)
    probe = run_readiness_probe(release, ordinal)
    said = probe.stderr.strip()[-400:]
    assert ready.status == "True" and ready.last_transition_time.timestamp() < since, (
        f"{pod.metadata.name} left mysql-read: Ready {ready.status} since "
        f"{ready.last_transition_time}; its probe now: rc {probe.rc}, {said}"
    )
    assert probe.rc == 0 and "no member holds fresher data" in said, f"rc {probe.rc}: {said}"
    return said


def lose_primarys_node(release: Release) -> Predicate:
    """mysql-0's node stopped (`docker stop`): writes stop, but mysql-1 and mysql-2, their data
    soon older than maxLagSeconds, stay in mysql-read (each asks the other members, and nobody has
    fresher data) until Kubernetes sees the node gone and longer. Started again, the node brings
    mysql-0 back (the same pod, on its volume) with every acknowledged write; replication resumes."""
    core, namespace = release.kube.core, release.namespace
    node, uid = node_of(release, 0), core.read_namespaced_pod(release.primary, namespace).metadata.uid
    assert node not in (node_of(release, 1), node_of(release, 2)), "a replica shares mysql-0's node"
    release.cluster.stop_node(node)
    stopped_at = time.time()
    try:
        wait_until(
            lambda: not_ready_since(release, 0), timeout=180, interval=2,
            what="mysql-0 marked unready with its node gone", transient=(ApiException,),
        )  # fmt: skip
        # The replicas' data is now far older than maxLagSeconds by the clock: they must still serve.
        assert time.time() - stopped_at > MAX_LAG_SECONDS + 2 * PROBE_PERIOD
        for ordinal in (1, 2):
            said = serves_while_primary_lost(release, ordinal, stopped_at)
            log.info("mysql-%d, mysql-0's node gone: %s", ordinal, said)
    finally:
        release.cluster.start_node(node)
    wait_until(lambda: node_ready(release, node), timeout=180, what=f"{node} Ready again")
    return ready_again(release, 0, same_pod=uid)


# --- the matrix, in order ----------------------------------------------------------------------------


def test_a_kill_9_of_mysqld_on_a_replica(release: Release, settings: Settings) -> None:
    """kill -9 of mysql-1's server: it restarts, recovers, catches up; the writer never notices."""
    survive(release, settings, "a. kill -9 mysqld on replica mysql-1", lambda _: kill_server(release, 1))


def test_b_kill_9_of_mysqld_on_the_primary(release: Release, settings: Settings) -> None:
    """kill -9 of mysql-0's server: writes fail until it restarts; no acknowledged write is lost."""
    survive(release, settings, "b. kill -9 mysqld on primary mysql-0", lambda _: kill_server(release, 0))


def test_c_deleting_a_replica_pod(release: Release, settings: Settings) -> None:
    """`kubectl delete pod mysql-2`: it comes back on its claim and catches up."""
    survive(release, settings, "c. delete pod mysql-2 (replica)", lambda _: release.delete_pod(2))


def test_d_deleting_the_primary_pod(release: Release, settings: Settings) -> None:
    """`kubectl delete pod mysql-0`: writes pause until it is back on its claim; nothing lost."""
    survive(release, settings, "d. delete pod mysql-0 (primary)", lambda _: release.delete_pod(0))


def test_e_deleting_a_replicas_claim_and_pod(release: Release, settings: Settings) -> None:
    """PVC data-mysql-2 and pod mysql-2 deleted: mysql-2 re-clones under load and holds every write."""
    survive(
        release, settings, "e. delete PVC+pod mysql-2 (replica)", lambda _: release.delete_claim_and_pod(2)
    )


def test_f_an_errant_write_on_a_replica(release: Release, settings: Settings) -> None:
    """A write on mysql-1 the primary never had: mysql-1 leaves mysql-read naming it, is no donor,
    is not rebuilt when the binlogs it needs are purged, and the documented discard (claim and pod
    deleted) brings it back clean. MariaDB refuses the write from every account, which is checked
    instead."""
    survive(
        release, settings, "f. errant write on replica mysql-1",
        lambda load: errant_then_discarded(release, load),
    )  # fmt: skip


def test_g_purged_binlogs_and_kill_9_as_the_rebuild_starts(release: Release, settings: Settings) -> None:
    """mysql-2 down while the primary purges its binlogs: back, it is rebuilt from a peer, even with its
    server killed -9 as the rebuild starts."""
    survive(
        release, settings, "g. binlogs purged while mysql-2 is down; kill -9 as its rebuild starts",
        lambda load: purge_binlogs_while_down_then_kill_during_rebuild(release, load),
    )  # fmt: skip


def test_h_deleting_the_primarys_claim_and_pod(release: Release, settings: Settings) -> None:
    """PVC data-mysql-0 and pod mysql-0 deleted: the primary clones the most advanced replica instead
    of starting empty; every acknowledged write is still there (semi-synchronous replication)."""
    survive(
        release, settings, "h. delete PVC+pod mysql-0 (primary)", lambda _: release.delete_claim_and_pod(0)
    )


def test_i_every_connection_of_the_primary_taken(release: Release, settings: Settings) -> None:
    """A client holds every connection of mysql-0 (max_connections and the admin's spare): writes
    are refused, but mysql-0 stays in mysql-primary and the replicas in mysql-read."""
    survive(
        release, settings, "i. every connection of primary mysql-0 taken",
        lambda load: exhaust_connections(release, load),
    )  # fmt: skip


def test_j_a_replica_silently_cut_off_from_the_primary(release: Release, settings: Settings) -> None:
    """Packets between mysql-2 and mysql-0 dropped: mysql-2 leaves mysql-read within maxLagSeconds
    plus one probe period (reads never older than that), and catches up once the link is back."""
    ledger = survive(
        release, settings, "j. silent partition of replica mysql-2 from the primary",
        lambda _: partition_from_primary(release, 2),
    )  # fmt: skip
    assert_reads_fresh(ledger)


def test_k_a_stopped_sql_thread(release: Release, settings: Settings) -> None:
    """mysql-1's SQL thread stopped: it leaves mysql-read at the next probe; started again, it catches up."""
    ledger = survive(
        release, settings, "k. SQL thread stopped on replica mysql-1", lambda _: stop_sql_thread(release, 1)
    )
    assert_reads_fresh(ledger)


def test_l_a_replicas_volume_full(release: Release, settings: Settings) -> None:
    """mysql-2's volume (a small disk for the test) fills up: it leaves mysql-read, the others go on;
    once room is made it catches up with every write."""
    node, path = shrink_volume(release, 2, room_mib=64)
    try:
        ledger = survive(
            release, settings, "l. volume of replica mysql-2 full",
            lambda _: fill_volume(release, 2, node, path),
        )  # fmt: skip
    finally:
        restore_volume(release, node, path)
    assert_reads_fresh(ledger)


def test_l2_a_replicas_volume_full_under_its_applier(release: Release, settings: Settings) -> None:
    """mysql-2's volume fills up while its SQL thread applies a large transaction: the thread stops
    on the full table (MySQL; MariaDB's server exits), the replica leaves mysql-read; once room is
    made, the sidecar starts the thread again (the server starts again) and the replica catches up
    with every write."""
    node, path = shrink_volume(release, 2, room_mib=64)
    seen: dict[str, str] = {}
    try:
        survive(
            release, settings, "l2. volume of replica mysql-2 full under its applier",
            lambda _: fill_volume_under_the_applier(release, 2, node, path, seen),
        )  # fmt: skip
        if "SQL thread" in seen["how"]:
            assert "starting the SQL thread the full volume stopped" in sidecar_log(release, 2)
    finally:
        release.db.query(release.primary, f"DROP TABLE IF EXISTS {BULK_TABLE}")
        restore_volume(release, node, path)


def test_m_the_donor_killed_mid_clone(release: Release, settings: Settings) -> None:
    """mysql-2 re-clones (claim and pod deleted) and mysql-1, its donor, is killed -9 mid-copy: the
    clone fails over to mysql-0, the half copy never starts, mysql-1 restarts and catches up."""
    restarts = container_status(
        release.kube.core.read_namespaced_pod(release.pod(1), release.namespace), "mysql"
    )
    survive(
        release, settings, "m. donor mysql-1 killed -9 while mysql-2 clones it",
        lambda _: kill_donor_mid_clone(release),
    )  # fmt: skip
    assert_cloned_around_mysql_1(release)
    now = container_status(release.kube.core.read_namespaced_pod(release.pod(1), release.namespace), "mysql")
    assert now.restart_count > restarts.restart_count, "mysql-1's server was not killed"


def test_n_the_donor_frozen_mid_clone(release: Release, settings: Settings) -> None:
    """mysql-2 re-clones and mysql-1, its donor, freezes mid-copy (SIGSTOP of every process, sockets
    open): mysql-1 leaves mysql-read at once, the clone moves on to mysql-0 after
    clone.stallSeconds; thawed, mysql-1 catches up."""
    survive(
        release, settings, "n. donor mysql-1 frozen while mysql-2 clones it",
        lambda _: freeze_donor_mid_clone(release),
    )  # fmt: skip
    assert_cloned_around_mysql_1(release)


@pytest.mark.nodes
def test_o_draining_the_primarys_node(release: Release, settings: Settings) -> None:
    """`kubectl drain` of mysql-0's node is held by the disruption budget while mysql-2 is down, and
    proceeds once it is back; mysql-0 returns, when its node does, with every acknowledged write."""
    try:
        survive(release, settings, "o. drain of the primary's node", lambda _: drain_primarys_node(release))
    finally:
        uncordon_every_node(release)


@pytest.mark.nodes
def test_p_losing_a_replicas_node(release: Release, settings: Settings) -> None:
    """`docker stop` of mysql-1's node: mysql-read keeps serving from mysql-0 and mysql-2 (until the
    node is seen gone, a third of new connections still try mysql-1 and time out after 3 s: no
    longer gap than NODE_LOSS_READ_GAP); started again, the node brings mysql-1 back, caught up."""
    ledger = survive(
        release, settings, "p. node of replica mysql-1 stopped", lambda _: lose_replicas_node(release)
    )
    assert ledger.seconds_without_reads() <= NODE_LOSS_READ_GAP, (
        f"mysql-read served nothing for {ledger.seconds_without_reads():.1f}s with one node lost"
    )


@pytest.mark.nodes
def test_q_losing_the_primarys_node(release: Release, settings: Settings) -> None:
    """`docker stop` of mysql-0's node: writes wait for it, but mysql-read keeps serving the last
    state from mysql-1 and mysql-2 (no longer gap than NODE_LOSS_READ_GAP); started again, the node
    brings mysql-0 back with every acknowledged write, and the replicas catch up."""
    ledger = survive(
        release, settings, "q. node of the primary mysql-0 stopped", lambda _: lose_primarys_node(release)
    )
    assert ledger.seconds_without_reads() <= NODE_LOSS_READ_GAP, (
        f"mysql-read served nothing for {ledger.seconds_without_reads():.1f}s with the primary's node lost"
    )
