"""Database access from the test process: pymysql over `kubectl port-forward`, GTID and checksum helpers.

Per-flavor SQL differences live in FLAVORS and nowhere else.
"""

from __future__ import annotations

import logging
import re
import select
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pymysql
from kubernetes.client.exceptions import ApiException
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_fixed

from harness.cluster import Cluster, stop_process
from harness.kube import TIMEOUTS, wait_until

log = logging.getLogger(__name__)
T = TypeVar("T")

PORT = 3306
# ER_OPTION_PREVENTS_STATEMENT: "--read-only" / "--super-read-only" refuses the statement.
READ_ONLY_ERRORS = frozenset({1290})
# What "the server cannot be reached yet" looks like through pymysql.
DB_TRANSIENT: tuple[type[BaseException], ...] = (
    pymysql.err.OperationalError,
    pymysql.err.InterfaceError,
    ApiException,
    OSError,
)


# The replica status fields that say how a channel uses TLS (after Source_ / Master_).
TLS_STATUS_FIELDS = ("SSL_Allowed", "SSL_Verify_Server_Cert", "SSL_CA_File")
# Where the chart mounts the release's CA; a channel that verifies the primary against it.
TLS_CA_FILE = "/etc/mysql-chart-tls/ca.crt"
VERIFIED_CHANNEL = {"SSL_Allowed": "Yes", "SSL_Verify_Server_Cert": "Yes", "SSL_CA_File": TLS_CA_FILE}


@dataclass(frozen=True)
class Flavor:
    """The SQL and client names that differ between MariaDB and MySQL."""

    name: str
    client: str  # client binary in the server image
    server: str  # server binary, the server container's PID 1
    gtid_executed: str  # the server's executed GTID set / position
    wait_for_gtid: str  # (gtid, timeout_s) -> 0 when reached
    replica_status: str
    io_running: str
    sql_running: str
    last_error: str

    def normalize_gtid(self, value: str) -> frozenset[str]:
        """Return a GTID set/position as a set of comparable parts (order and whitespace ignored)."""
        return frozenset(part.strip() for part in re.split(r",", value or "") if part.strip())

    def position_contains(self, a: str, b: str) -> bool:
        """MariaDB: position a is at or past b in every replication domain of b (domain-server-seq)."""
        have = {}
        for part in self.normalize_gtid(a):
            domain, _server, seq = part.split("-")
            have[domain] = int(seq)
        for part in self.normalize_gtid(b):
            domain, _server, seq = part.split("-")
            if have.get(domain, -1) < int(seq):
                return False
        return True


FLAVORS = {
    "mariadb": Flavor(
        name="mariadb",
        client="mariadb",
        server="mariadbd",
        gtid_executed="SELECT @@GLOBAL.gtid_current_pos",
        wait_for_gtid="SELECT MASTER_GTID_WAIT(%s, %s)",
        replica_status="SHOW SLAVE STATUS",
        io_running="Slave_IO_Running",
        sql_running="Slave_SQL_Running",
        last_error="Last_Error",
    ),
    "mysql": Flavor(
        name="mysql",
        client="mysql",
        server="mysqld",
        gtid_executed="SELECT @@GLOBAL.gtid_executed",
        wait_for_gtid="SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)",
        replica_status="SHOW REPLICA STATUS",
        io_running="Replica_IO_Running",
        sql_running="Replica_SQL_Running",
        last_error="Last_Error",
    ),
}


def _handshake_lost(error: BaseException) -> bool:
    """True for pymysql's "Lost connection" (2013), which during connect means no statement ran."""
    return isinstance(error, pymysql.err.OperationalError) and bool(error.args) and error.args[0] == 2013


class _KubectlPortForward:
    """Fallback transport: `kubectl port-forward pod/NAME :3306`, the local port parsed from its stdout."""

    def __init__(self, cluster: Cluster, namespace: str, pod: str, timeout: float = 30) -> None:
        self.proc = subprocess.Popen(
            ["kubectl", "--context", cluster.context, "--namespace", namespace, "port-forward",
             "--address", "127.0.0.1", f"pod/{pod}", f":{PORT}"],
            env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.proc.stdout.readline()
            match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                return
            if not line:
                break
        self.close()
        raise OSError(f"kubectl port-forward to {namespace}/{pod} did not start: {line.strip()}")

    def close(self) -> None:
        stop_process(self.proc)


class Database:
    """The servers of one release, reached from the test process as root through `kubectl port-forward`.

    Each connection gets its own `kubectl port-forward pod/NAME :3306` (about 0.1 s). The websocket
    port-forward of the kubernetes client (`kubernetes.stream.portforward` + pymysql on its socket)
    was tried first and measured on the kind cluster: about 4 connections in 100 lost the server's
    greeting and stalled until the server's 10 s connect_timeout reset them; kubectl's port-forward
    lost none of 100.
    """

    def __init__(self, cluster: Cluster, namespace: str, flavor: Flavor, password: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.flavor = flavor
        self._password = password

    def __repr__(self) -> str:
        return f"Database({self.namespace}, {self.flavor.name})"

    @contextmanager
    def connect(
        self,
        pod: str,
        *,
        database: str | None = None,
        autocommit: bool = True,
        user: str = "root",
        password: str | None = None,
    ) -> Iterator[pymysql.Connection]:
        """Yield a pymysql connection to pod's server (as root unless told); closed on exit.

        A handshake lost in the forward (error 2013 before any statement ran) is retried twice with
        a new forward: it happens now and then on 2 busy cores while the server is fine.
        """
        for attempt in Retrying(
            stop=stop_after_attempt(3),
            retry=retry_if_exception(_handshake_lost),
            before_sleep=lambda state: log.info(
                "connecting to %s: %s; retrying", pod, state.outcome.exception()
            ),
            reraise=True,
        ):
            with attempt:
                forward = _KubectlPortForward(self.cluster, self.namespace, pod)
                try:
                    conn = pymysql.connect(
                        host="127.0.0.1", port=forward.port, user=user,
                        password=self._password if password is None else password,
                        database=database, autocommit=autocommit, connect_timeout=10, charset="utf8mb4",
                    )  # fmt: skip
                except BaseException:
                    forward.close()
                    raise
        try:
            yield conn
        finally:
            if conn.open:
                conn.close()
            forward.close()

    def query(self, pod: str, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement on pod and return its rows."""
        with self.connect(pod) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def scalar(self, pod: str, sql: str, args: Sequence[Any] | None = None) -> Any:
        """Run one statement on pod and return the first column of its first row."""
        rows = self.query(pod, sql, args)
        return rows[0][0] if rows else None

    def wait_reachable(self, pod: str) -> None:
        """Wait until pod's server accepts a root connection."""
        wait_until(
            lambda: self.scalar(pod, "SELECT 1") == 1,
            timeout=TIMEOUTS.pod_ready,
            what=f"{pod} accepts connections",
            transient=DB_TRANSIENT,
        )

    def server_id(self, pod: str) -> int:
        """Return pod's @@server_id."""
        return int(self.scalar(pod, "SELECT @@server_id"))

    def gtid_executed(self, pod: str) -> str:
        """Return the GTID set (MySQL) or position (MariaDB) pod has executed, as the server prints it."""
        return str(self.scalar(pod, self.flavor.gtid_executed) or "")

    def replica_status(self, pod: str) -> dict[str, Any]:
        """Return pod's replica status row as a dict (empty on a server that is no replica)."""
        with self.connect(pod) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(self.flavor.replica_status)
            return dict(cur.fetchone() or {})

    def channel_tls(self, pod: str) -> dict[str, str]:
        """Return how pod's replication channel uses TLS: SSL_Allowed, SSL_Verify_Server_Cert and
        SSL_CA_File of its status (Source_… on MySQL, Master_… on MariaDB)."""
        status, prefix = self.replica_status(pod), "Master" if self.flavor.name == "mariadb" else "Source"
        return {key: str(status.get(f"{prefix}_{key}", "")) for key in TLS_STATUS_FIELDS}

    def replication_running(self, pod: str) -> bool:
        """True when pod's replication IO and SQL threads both run."""
        status = self.replica_status(pod)
        return status.get(self.flavor.io_running) == "Yes" and status.get(self.flavor.sql_running) == "Yes"

    def wait_for_gtid(self, pod: str, gtid: str, timeout: float = TIMEOUTS.gtid) -> None:
        """Wait until replica pod has applied gtid: MASTER_GTID_WAIT / WAIT_FOR_EXECUTED_GTID_SET.

        The wait happens in the server; on timeout the AssertionError shows the replica's position
        and replication threads.
        """
        start = time.monotonic()
        log.info("waiting for %s to apply GTID %s (up to %.0fs)", pod, gtid, timeout)
        result = self.scalar(pod, self.flavor.wait_for_gtid, (gtid, timeout))
        if result != 0:
            status = self.replica_status(pod)
            keys = (self.flavor.io_running, self.flavor.sql_running, self.flavor.last_error, "Last_IO_Error")
            raise AssertionError(
                f"{pod} did not apply {gtid} within {timeout:.0f}s (result {result}); it has "
                f"{self.gtid_executed(pod)!r}; replication: { {k: status.get(k) for k in keys} }"
            )
        log.info("%s applied GTID %s after %.0fs", pod, gtid, time.monotonic() - start)

    def gtid_contains(self, pod: str, a: str, b: str) -> bool:
        """True when GTID set a contains b (MySQL: GTID_SUBSET, asked of pod; MariaDB: positions)."""
        if self.flavor.name == "mariadb":
            return self.flavor.position_contains(a, b)
        return self.scalar(pod, "SELECT GTID_SUBSET(%s, %s)", (b, a)) == 1

    def checksum(self, pod: str, table: str) -> int | None:
        """Return CHECKSUM TABLE for `db.table` on pod (None when the table does not exist)."""
        return self.query(pod, f"CHECKSUM TABLE {table} EXTENDED")[0][1]

    def is_read_only_error(self, error: pymysql.err.MySQLError) -> bool:
        """True when error is the server refusing a write because it is read-only."""
        return bool(error.args) and error.args[0] in READ_ONLY_ERRORS


def connection_lost(error: BaseException) -> bool:
    """True when the statement never reached a server: the port-forward or the connection failed
    (OSError; pymysql 2003 "Can't connect", 2013 "Lost connection")."""
    if isinstance(error, pymysql.err.OperationalError):
        return bool(error.args) and error.args[0] in (2003, 2013)
    return isinstance(error, OSError)


def retry_db(action: Callable[[], T], *, what: str, timeout: float = TIMEOUTS.gtid) -> T:
    """Run an idempotent database action, retrying only while connections are lost (connection_lost).

    Right after an upgrade the port-forward can drop on 2 busy cores while the server is fine. A
    server's own answer is returned or raised at once: read-only (1290), access denied (1045) and
    an empty read are findings, never "not yet".
    """
    for attempt in Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(3),
        retry=retry_if_exception(connection_lost),
        before_sleep=lambda state: log.info("%s: %s; retrying", what, state.outcome.exception()),
        reraise=True,
    ):
        with attempt:
            return action()
    raise AssertionError("unreachable: tenacity re-raises the last error")
