"""A steady in-cluster write and read load on a release, and the ledger that judges it after a fault.

Two long-lived pods of the server image (restartPolicy Never, Pod Security `restricted`, uid 999,
root password through secretKeyRef), connecting as applications do, through the Services:

- the writer inserts ids base+1, base+2, ... into `faults.writes` through `<release>-primary`, one
  autocommitted INSERT per client run, and prints one line per attempt:
  `ack <id> <epoch.ns>` (stamped when the acknowledgement arrived) or
  `fail <id> <epoch.ns> <exit code> <first error line>`;
- the reader runs `SELECT MAX(id) FROM faults.writes` through `<release>-read` and prints
  `read <epoch.ns> <max id or NULL>` (stamped when the query was sent) or `rerr <epoch.ns> <message>`.

The logs are read through the API (read_namespaced_pod_log) and parsed into a Ledger. Pods on one
kind cluster share the host's clock with the test process, so the pods' timestamps and the test's
time.time() are comparable.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from pathlib import Path

from kubernetes.client import V1Pod
from kubernetes.client.exceptions import ApiException

from harness.helm import MYSQL_UID, ROOT_PASSWORD_KEY, Release
from harness.kube import (
    RESTRICTED_CONTAINER_SECURITY,
    RESTRICTED_POD_SECURITY,
    TIMEOUTS,
    Pending,
    pod_summary,
    wait_until,
)

log = logging.getLogger(__name__)

DATABASE = "faults"
TABLE = f"{DATABASE}.writes"
# Non-unique id, so that an insert applied twice shows as a duplicate instead of an error.
SCHEMA = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
    f"CREATE TABLE IF NOT EXISTS {TABLE} (seq BIGINT AUTO_INCREMENT PRIMARY KEY, id BIGINT NOT NULL, "
    "at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (id))",
)
# Each writer run owns ids base+1 .. base+RANGE-1; bases grow with time, so runs never collide.
RANGE = 1_000_000

# $1 client, $2 host, $3 base id. One INSERT per client run: a new connection each time, as a
# restarted application would make; `timeout` bounds a client stuck on a dead peer.
WRITER_SCRIPT = r"""
client=$1 host=$2 base=$3 i=0
while :; do
  i=$((i + 1)); id=$((base + i))
  out=$(timeout 10 "$client" -h "$host" -uroot --connect-timeout=3 -N -B \
    -e "INSERT INTO faults.writes (id) VALUES ($id)" 2>&1)
  rc=$?; now=$(date +%s.%N)
  if ((rc == 0)); then
    echo "ack $id $now"
  else
    msg=$(printf '%s\n' "$out" | grep -m1 '^ERROR') || msg=$(printf '%s\n' "$out" | head -n1)
    echo "fail $id $now $rc ${msg:-no output}"
  fi
  sleep 0.05
done
"""

# $1 client, $2 host. Stamped when the query is sent: any write acknowledged before then must show.
READER_SCRIPT = r"""
client=$1 host=$2
while :; do
  now=$(date +%s.%N)
  out=$(timeout 10 "$client" -h "$host" -uroot --connect-timeout=3 -N -B \
    -e "SELECT MAX(id) FROM faults.writes" 2>&1)
  rc=$?
  if ((rc == 0)); then
    echo "read $now ${out:-NULL}"
  else
    msg=$(printf '%s\n' "$out" | grep -m1 '^ERROR') || msg=$(printf '%s\n' "$out" | head -n1)
    echo "rerr $now exit $rc: ${msg:-no output}"
  fi
  sleep 0.2
done
"""

# $1 client, $2 host, $3 connections, $4 seconds. Opens the connections at once, each holding a
# SLEEP until the end, as an application with a leaking pool would; a refused one retries every
# second, so a connection freed by anyone else is soon taken again. Prints `refused N <error>` on a
# connection's first refusal and `held N` when it ends; exits after `seconds`.
HOG_SCRIPT = r"""
client=$1 host=$2 count=$3 hold=$4
end=$((SECONDS + hold))
for ((i = 1; i <= count; i++)); do
  (
    refused=0
    while ((SECONDS < end)); do
      sql="SELECT SLEEP($((end - SECONDS)))"
      if out=$("$client" -h "$host" -uroot --connect-timeout=5 -N -B -e "$sql" 2>&1); then
        echo "held $i"
        exit 0
      fi
      ((refused++)) || echo "refused $i $(printf '%s\n' "$out" | head -n1)"
      sleep 1
    done
  ) &
done
wait
"""


class Outcome(StrEnum):
    """What a write attempt is known to have done."""

    ACK = "acknowledged"
    FAILED = "failed"  # provably never executed
    INDETERMINATE = "indeterminate"  # may or may not have been applied


# Client errors raised before any statement reaches a server: cannot connect, unknown host, TLS
# handshake failed (2026, only raised while connecting).
CONNECT_ERRORS = frozenset({2002, 2003, 2005, 2026})
# Server refusals that prove the INSERT did not run: access denied, too many connections, host
# blocked/not allowed, read-only, unknown database or table.
REFUSED_ERRORS = frozenset({1040, 1044, 1045, 1049, 1129, 1130, 1146, 1290})
ERROR_CODE = re.compile(r"^ERROR (\d+)")


def classify(rc: int, message: str) -> Outcome:
    """The outcome of a failed attempt from the client's exit code and first error line.

    `failed` only when the error proves the statement never ran: no connection (2002/2003/2005/2026),
    a refusal before the statement (see REFUSED_ERRORS), or 2013 "Lost connection ... at '<stage>'",
    which the client library reports only while connecting (handshake, initial communication
    packet, authentication). Everything else is `indeterminate`: 2013 "during query", 2006 server
    gone during the query, `timeout`'s 124, anything unknown.
    """
    if rc == 124:
        return Outcome.INDETERMINATE
    match = ERROR_CODE.match(message)
    if not match:
        return Outcome.INDETERMINATE
    code = int(match.group(1))
    if code in CONNECT_ERRORS or code in REFUSED_ERRORS:
        return Outcome.FAILED
    if code == 2013 and (" at '" in message or "handshake" in message or "initial communication" in message):
        return Outcome.FAILED
    return Outcome.INDETERMINATE


@dataclass(frozen=True)
class Attempt:
    """One INSERT attempt of the writer."""

    id: int
    at: float
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class Read:
    """One read attempt of the reader: max id seen (None: NULL), or the error."""

    at: float
    max_id: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def parse_writer_log(text: str) -> list[Attempt]:
    """The writer's attempts, in order, from its log (a truncated last line is ignored)."""
    attempts = []
    for line in text.splitlines():
        parts = line.split(" ", 4)
        try:
            if parts[0] == "ack" and len(parts) >= 3:
                attempts.append(Attempt(int(parts[1]), float(parts[2]), Outcome.ACK))
            elif parts[0] == "fail" and len(parts) >= 4:
                detail = f"exit {parts[3]}: {parts[4] if len(parts) > 4 else ''}".strip()
                outcome = classify(int(parts[3]), parts[4] if len(parts) > 4 else "")
                attempts.append(Attempt(int(parts[1]), float(parts[2]), outcome, detail))
        except ValueError:
            log.warning("writer log line not understood: %r", line)
    return attempts


def parse_reader_log(text: str) -> list[Read]:
    """The reader's attempts, in order, from its log."""
    reads = []
    for line in text.splitlines():
        parts = line.split(" ", 2)
        try:
            if parts[0] == "read" and len(parts) == 3:
                value = parts[2].strip()
                reads.append(Read(float(parts[1]), None if value == "NULL" else int(value)))
            elif parts[0] == "rerr" and len(parts) >= 2:
                reads.append(Read(float(parts[1]), None, parts[2] if len(parts) > 2 else "error"))
        except ValueError:
            log.warning("reader log line not understood: %r", line)
    return reads


CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


@dataclass
class WorkloadPod:
    """A long-lived client pod of the release's server image running one bash loop."""

    release: Release
    role: str
    name: str
    script: str
    args: list[str]

    def start(self) -> None:
        """Create the pod through the API and wait until it runs."""
        release = self.release
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "labels": {**release.client_labels, "mysql-chart-test/workload": self.role},
            },
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                # On the control plane: the node faults drain and stop workers, never the clients.
                "nodeSelector": {CONTROL_PLANE: ""},
                "tolerations": [{"key": CONTROL_PLANE, "operator": "Exists", "effect": "NoSchedule"}],
                "securityContext": {
                    **RESTRICTED_POD_SECURITY,
                    "runAsUser": MYSQL_UID,
                    "runAsGroup": MYSQL_UID,
                },
                "containers": [
                    {
                        "name": "load",
                        "image": release.server_image(),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["bash", "-c"],
                        "args": [self.script, self.name, *self.args],
                        "env": [
                            {
                                "name": "MYSQL_PWD",
                                "valueFrom": {
                                    "secretKeyRef": {"name": release.name, "key": ROOT_PASSWORD_KEY}
                                },
                            }
                        ],
                        "securityContext": RESTRICTED_CONTAINER_SECURITY,
                        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }
                ],
                "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
            },
        }
        core = release.kube.core
        core.create_namespaced_pod(release.namespace, body)
        log.info("started %s %s: %s", self.role, self.name, " ".join(self.args))

        def running() -> V1Pod | Pending:
            pod = core.read_namespaced_pod(self.name, release.namespace)
            if pod.status.phase in ("Succeeded", "Failed"):
                raise AssertionError(f"{self.name} exited: {pod_summary(pod)}\n{self.log()}")
            return pod if pod.status.phase == "Running" else Pending(pod_summary(pod))

        wait_until(running, timeout=TIMEOUTS.pod_ready, interval=1, what=f"{self.name} running")

    def log(self) -> str:
        """The pod's whole log so far."""
        return self.release.kube.core.read_namespaced_pod_log(
            self.name, self.release.namespace, container="load"
        )

    def delete(self) -> None:
        """Delete the pod at once (grace 0); a pod already gone is fine."""
        try:
            self.release.kube.core.delete_namespaced_pod(
                self.name, self.release.namespace, grace_period_seconds=0
            )
        except ApiException as e:
            if e.status != 404:
                raise


@dataclass
class Ledger:
    """What the writer and reader saw, and what the servers hold afterwards."""

    base: int
    attempts: list[Attempt]
    reads: list[Read]
    injected_at: float | None = None
    ended_at: float | None = None
    counts: dict[str, dict[int, int]] = field(default_factory=dict)  # pod -> id -> rows

    @property
    def range(self) -> tuple[int, int]:
        """This run's id range, inclusive."""
        return self.base + 1, self.base + RANGE - 1

    def ids(self, outcome: Outcome) -> list[int]:
        return [a.id for a in self.attempts if a.outcome is outcome]

    @property
    def acked(self) -> list[int]:
        return self.ids(Outcome.ACK)

    @property
    def acks(self) -> list[Attempt]:
        return [a for a in self.attempts if a.outcome is Outcome.ACK]

    def acked_since(self, since: float) -> int:
        return sum(1 for a in self.acks if a.at > since)

    @property
    def successful_reads(self) -> list[Read]:
        return [r for r in self.reads if r.ok]

    # --- after the final check: counts holds every pod's rows of this run ------------------------

    def lost(self) -> dict[str, list[int]]:
        """pod -> acknowledged ids it does not hold."""
        acked = self.acked
        return {
            pod: missing
            for pod, rows in self.counts.items()
            if (missing := [i for i in acked if i not in rows])
        }

    def duplicated(self) -> dict[str, list[int]]:
        """pod -> ids it holds more than once."""
        return {
            pod: dup
            for pod, rows in self.counts.items()
            if (dup := sorted(i for i, n in rows.items() if n > 1))
        }

    def phantoms(self) -> dict[str, list[int]]:
        """pod -> ids the writer was told failed (provably never ran) that it holds anyway."""
        failed = self.ids(Outcome.FAILED)
        return {
            pod: found for pod, rows in self.counts.items() if (found := [i for i in failed if i in rows])
        }

    # --- availability and staleness -----------------------------------------------------------

    def _longest_gap(self, times: Iterable[float]) -> float:
        """Longest interval without an event between injection and the end (both ends count)."""
        assert self.injected_at is not None and self.ended_at is not None
        inside = sorted(t for t in times if self.injected_at < t <= self.ended_at)
        points = [self.injected_at, *inside, self.ended_at]
        return max(b - a for a, b in pairwise(points))

    def seconds_without_writes(self) -> float:
        """Longest gap between consecutive acknowledgements from injection until the end."""
        return self._longest_gap(a.at for a in self.acks)

    def seconds_without_reads(self) -> float:
        """Longest gap between successful reads from injection until the end."""
        return self._longest_gap(r.at for r in self.successful_reads)

    def worst_staleness(self) -> float:
        """Max over successful reads (at t, max m) of t - ack time of the oldest acked id > m acked before t.

        The writer is sequential, so acknowledged ids grow with their ack times: the oldest acked
        id above m is the first ack above m.
        """
        acks = sorted(self.acks, key=lambda a: a.id)
        ids = [a.id for a in acks]
        worst = 0.0
        for read in self.successful_reads:
            m = read.max_id if read.max_id is not None else -1
            k = bisect_left(ids, m + 1)
            if k < len(acks) and acks[k].at < read.at:
                worst = max(worst, read.at - acks[k].at)
        return worst

    def errors(self) -> Counter[str]:
        """How often each distinct failure was seen: writer `<outcome>: <detail>`, reader `read: <error>`."""
        seen: Counter[str] = Counter(
            f"{a.outcome.value}: {a.detail}" for a in self.attempts if a.outcome is not Outcome.ACK
        )
        seen.update(f"read: {r.error}" for r in self.reads if not r.ok)
        return seen

    def summary(self) -> dict[str, int]:
        return {
            "acknowledged": len(self.acked),
            "failed": len(self.ids(Outcome.FAILED)),
            "indeterminate": len(self.ids(Outcome.INDETERMINATE)),
            "reads": len(self.successful_reads),
            "read errors": len(self.reads) - len(self.successful_reads),
        }


@dataclass
class Workload:
    """A writer through `<release>-primary` and a reader through `<release>-read`, with one id range."""

    release: Release
    base: int = field(default_factory=lambda: int(time.time()) * RANGE)
    writer: WorkloadPod = field(init=False)
    reader: WorkloadPod = field(init=False)

    def __post_init__(self) -> None:
        release, suffix = self.release, uuid.uuid4().hex[:5]
        client = release.flavor.client
        self.writer = WorkloadPod(
            release,
            "writer",
            f"{release.name}-faults-writer-{suffix}",
            WRITER_SCRIPT,
            [client, f"{release.name}-primary", str(self.base)],
        )
        self.reader = WorkloadPod(
            release,
            "reader",
            f"{release.name}-faults-reader-{suffix}",
            READER_SCRIPT,
            [client, f"{release.name}-read"],
        )

    def create_schema(self) -> None:
        """The writer's database and table, on the primary (replication brings them to the replicas)."""
        with self.release.db.connect(self.release.primary) as conn, conn.cursor() as cur:
            for sql in SCHEMA:
                cur.execute(sql)

    def start(self) -> None:
        """Create the schema, then start the writer and the reader."""
        self.create_schema()
        self.writer.start()
        self.reader.start()

    def ledger(self) -> Ledger:
        """What the writer and reader logged so far."""
        return Ledger(self.base, parse_writer_log(self.writer.log()), parse_reader_log(self.reader.log()))

    def stop(self) -> Ledger:
        """Read both logs, then delete both pods; return the final ledger (its end: the last attempt)."""
        ledger = self.ledger()
        self.writer.delete()
        self.reader.delete()
        ends = [a.at for a in ledger.attempts[-1:]] + [r.at for r in ledger.reads[-1:]]
        ledger.ended_at = max(ends, default=time.time())
        log.info("workload stopped: %s", ledger.summary())
        for error, count in ledger.errors().most_common():
            log.info("  %4d x %s", count, error)
        return ledger

    def wait_for_acks(
        self, count: int, *, since: float = 0.0, timeout: float = 300, reads: bool = False
    ) -> Ledger:
        """Wait until the writer has acknowledged `count` ids after `since` (and the reader has read)."""

        def enough() -> Ledger | Pending:
            ledger = self.ledger()
            acked = ledger.acked_since(since)
            read = bool(ledger.successful_reads) or not reads
            if acked >= count and read:
                return ledger
            last = ledger.attempts[-1] if ledger.attempts else None
            return Pending(
                f"{acked}/{count} acknowledged, {len(ledger.successful_reads)} reads; last attempt: "
                f"{last.outcome.value + ' ' + last.detail if last else 'none'}"
            )

        return wait_until(enough, timeout=timeout, interval=2, what=f"{count} writes acknowledged")


def connection_hog(release: Release, connections: int, hold_seconds: int) -> WorkloadPod:
    """A pod (not started yet) opening `connections` to `<release>-primary` as root, each held
    `hold_seconds`, then exiting."""
    return WorkloadPod(
        release,
        "hog",
        f"{release.name}-faults-hog-{uuid.uuid4().hex[:5]}",
        HOG_SCRIPT,
        [release.flavor.client, f"{release.name}-primary", str(connections), str(hold_seconds)],
    )


# --- the results table ------------------------------------------------------------------------------

COLUMNS = (
    "fault",
    "flavor",
    "acknowledged",
    "lost",
    "duplicated",
    "indeterminate",
    "seconds without writes",
    "seconds without reads",
    "worst staleness (s)",
    "seconds to full recovery",
)


def record_row(path: Path, row: Mapping[str, object]) -> None:
    """Insert or replace row (keyed by fault + flavor) in the Markdown table at path, keeping the others."""
    rows: list[dict[str, str]] = []
    if path.exists():
        for line in path.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if (
                line.startswith("|")
                and len(cells) == len(COLUMNS)
                and cells[0] not in ("fault", "")
                and not set(cells[0]) <= {"-", ":"}
            ):
                rows.append(dict(zip(COLUMNS, cells, strict=True)))
    new = {c: str(row.get(c, "")) for c in COLUMNS}
    key = (new["fault"], new["flavor"])
    for i, existing in enumerate(rows):
        if (existing["fault"], existing["flavor"]) == key:
            rows[i] = new
            break
    else:
        rows.append(new)
    lines = [
        "# Fault matrix under write load (`make faults`)",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if c in ("fault", "flavor") else "---:" for c in COLUMNS) + "|",
        *("| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
