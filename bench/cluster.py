"""What the bench does on the cluster: setups (the chart, a single server, the tutorial), the
bench pod that runs sysbench/fio/iperf3 inside the cluster, and timed waits.

Built on the test harness (tests/harness): its kind cluster, Helm release and Kubernetes waits.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from kubernetes.client import ApiClient, CoreV1Api, DiscoveryV1Api

from harness.cluster import Cluster
from harness.db import FLAVORS
from harness.helm import Release
from harness.kube import CommandResult, Kube, Pending, delete_namespace, exec_in_pod, pod_is_ready, wait_until

log = logging.getLogger("bench")

BENCH = Path(__file__).resolve().parent
TUTORIAL = BENCH / "tutorial"
BENCH_IMAGE = "mysql-chart.local/bench:trixie-1"
TUTORIAL_IMAGE = {"airgap": "mysql-chart.local/mariadb:11.8", "registry": "mariadb:11.8"}
# The account every setup gets for the load (never root: the chart's root password stays in its Secret).
USER, PASSWORD = "bench", "bench-load-only"
SELECTOR = "app.kubernetes.io/name=mysql"


def seconds_until_settled(kube: Kube, namespace: str, replicas: int, start: float) -> float:
    """Seconds from `start` (time.monotonic) until the namespace has exactly `replicas` server pods,
    every one Ready (polled every 0.5 s)."""

    def settled() -> bool | Pending:
        pods = [p for p in kube.pods(namespace, SELECTOR) if p.metadata.name.startswith("mysql-")]
        ready = sum(pod_is_ready(p) for p in pods)
        return (len(pods) == replicas and ready == replicas) or Pending(f"{ready}/{len(pods)} Ready")

    wait_until(settled, timeout=1200, interval=0.5, what=f"{namespace} at {replicas} Ready pods")
    return time.monotonic() - start


# Log lines of the chart's clone container that split its time into the copy and what surrounds it
# (donor checks before; prepare, for MariaDB, after): event -> (container, regex).
CHART_MARKERS = {
    "copy start": ("clone", r"receiving the stream|cloning from .*clone plugin"),
    "copy end": ("clone", r"stream complete|clone from \S+ complete"),
}


def timed_log(kube: Kube, namespace: str, pod: str, container: str) -> list[tuple[datetime, str]]:
    """A container's log as (kubelet timestamp, line) pairs."""
    text = kube.core.read_namespaced_pod_log(pod, namespace, container=container, timestamps=True)
    pairs = []
    for line in text.splitlines():
        stamp, _, rest = line.partition(" ")
        if stamp:
            pairs.append((datetime.fromisoformat(stamp.replace("Z", "+00:00")), rest))
    return pairs


def pod_timeline(
    kube: Kube,
    namespace: str,
    pod: str,
    start: datetime,
    markers: dict[str, tuple[str, str]] | None = None,
) -> dict[str, float]:
    """When each step of a pod's start happened, seconds after `start`: created, scheduled, every
    init container's start and end, the server container's start, the server's last "ready for
    connections" line (log timestamps, sub-second), each of `markers` found, and Ready. Kubernetes'
    own times are whole seconds."""
    p = kube.core.read_namespaced_pod(pod, namespace)

    def rel(t: datetime | None) -> float | None:
        return None if t is None else round((t - start).total_seconds(), 1)

    events: dict[str, float | None] = {"created": rel(p.metadata.creation_timestamp)}
    conditions = {c.type: c for c in p.status.conditions or [] if c.status == "True"}
    events["scheduled"] = rel(getattr(conditions.get("PodScheduled"), "last_transition_time", None))
    for s in p.status.init_container_statuses or []:
        if s.state.terminated is not None:
            events[f"{s.name} start"] = rel(s.state.terminated.started_at)
            events[f"{s.name} end"] = rel(s.state.terminated.finished_at)
    logs: dict[str, list[tuple[datetime, str]]] = {}  # each container's log, read once

    def log_of(container: str) -> list[tuple[datetime, str]]:
        if container not in logs:
            logs[container] = timed_log(kube, namespace, pod, container)
        return logs[container]

    for event, (container, pattern) in (markers or {}).items():
        if any(s.name == container for s in p.status.init_container_statuses or []):
            events[event] = rel(next((t for t, line in log_of(container) if re.search(pattern, line)), None))
    for s in p.status.container_statuses or []:
        if s.name == "mysql" and s.state.running is not None:
            events["mysql start"] = rel(s.state.running.started_at)
    accepting = [t for t, line in log_of("mysql") if "ready for connections" in line]
    if accepting:
        events["accepting"] = rel(accepting[-1])
    events["ready"] = rel(getattr(conditions.get("Ready"), "last_transition_time", None))
    return {k: v for k, v in events.items() if v is not None}


def log_span(kube: Kube, namespace: str, pod: str, container: str) -> float:
    """Seconds between the first and the last line a container logged (kubelet timestamps, ns)."""
    stamps = [t for t, _ in timed_log(kube, namespace, pod, container)]
    if len(stamps) < 2:
        raise RuntimeError(f"{namespace}/{pod} {container} logged {len(stamps)} lines: no span to time")
    return (stamps[-1] - stamps[0]).total_seconds()


@dataclass
class Setup:
    """One replicated (or single) server set in its own namespace, as the bench drives it."""

    name: str  # e.g. "chart-mariadb", "tutorial"
    cluster: Cluster
    kube: Kube
    namespace: str
    datadir: str  # the server's datadir inside its `mysql` container
    clone_container: str  # the init container that copies a peer's data
    release: Release | None = None  # the chart's release; None for the tutorial
    started: datetime = field(default_factory=lambda: datetime.now(UTC))  # the last install or scale

    def host(self, ordinal: int) -> str:
        return f"mysql-{ordinal}.mysql"

    # --- lifecycle ---------------------------------------------------------------------------------

    def create_namespace(self) -> None:
        delete_namespace(self.kube, self.namespace)
        self.kube.core.create_namespace({"metadata": {"name": self.namespace}})

    def install(self) -> float:
        """Create the servers; returns seconds until 3 (or the release's count) pods are Ready."""
        start, self.started = time.monotonic(), datetime.now(UTC)
        if self.release is not None:
            self.release.helm(
                "install", self.release.name, str(self.release.chart), *self.release._values_args()
            )
            want = int(self.release.set_values.get("replicaCount", "3"))
        else:
            self.cluster.kubectl(
                "apply", "-n", self.namespace, "-f", "-", input=tutorial_manifests(self.cluster)
            )
            want = 3
        return seconds_until_settled(self.kube, self.namespace, want, start)

    def scale(self, replicas: int) -> float:
        """`kubectl scale` the StatefulSet; returns seconds until `replicas` pods are Ready."""
        start, self.started = time.monotonic(), datetime.now(UTC)
        self.cluster.kubectl("scale", "-n", self.namespace, "statefulset/mysql", f"--replicas={replicas}")
        return seconds_until_settled(self.kube, self.namespace, replicas, start)

    def timeline(self, ordinals: Sequence[int]) -> dict[str, dict[str, float]]:
        """pod_timeline of each pod, after the last install or scale (the chart's with its copy)."""
        markers = CHART_MARKERS if self.release is not None else None
        return {
            f"mysql-{i}": pod_timeline(self.kube, self.namespace, f"mysql-{i}", self.started, markers)
            for i in ordinals
        }

    def wait_read_endpoints(self, pods: int) -> None:
        """Until mysql-read's EndpointSlices list exactly `pods` ready addresses: a scale-in is
        Ready-settled before the Service stops sending connections to the removed pods."""
        discovery = DiscoveryV1Api(self.kube.api)

        def listed() -> bool | Pending:
            slices = discovery.list_namespaced_endpoint_slice(
                self.namespace, label_selector="kubernetes.io/service-name=mysql-read"
            ).items
            ready = sum(
                1
                for sl in slices
                for ep in sl.endpoints or []
                if ep.conditions and ep.conditions.ready and not ep.conditions.terminating
            )
            total = sum(len(sl.endpoints or []) for sl in slices)
            return (ready == total == pods) or Pending(f"{ready} ready of {total} endpoints")

        wait_until(listed, timeout=300, interval=0.5, what=f"{self.namespace} mysql-read at {pods} endpoints")

    def cap_cpu(self, ordinals: Sequence[int], cpu: str) -> None:
        """Caps each pod's server container at `cpu` in place (the pod's resize subresource: no
        restart), and waits until the kubelet has applied it."""
        patch = {"spec": {"containers": [{"name": "mysql", "resources": {"limits": {"cpu": cpu}}}]}}
        for i in ordinals:
            self.cluster.kubectl(
                "patch", "-n", self.namespace, f"pod/mysql-{i}", "--subresource", "resize",
                "-p", json.dumps(patch),
            )  # fmt: skip

        def applied() -> bool | Pending:
            for i in ordinals:
                pod = self.kube.core.read_namespaced_pod(f"mysql-{i}", self.namespace)
                status = next(c for c in pod.status.container_statuses or [] if c.name == "mysql")
                limits = (status.resources.limits if status.resources else None) or {}
                if limits.get("cpu") != cpu:
                    return Pending(f"mysql-{i}: cpu limit {limits.get('cpu')}")
            return True

        wait_until(applied, timeout=120, interval=0.5, what=f"{self.namespace} servers capped at {cpu} CPU")

    def delete(self) -> None:
        delete_namespace(self.kube, self.namespace)

    # --- SQL -------------------------------------------------------------------------------------------

    def admin_sql(self, sql: str) -> None:
        """Run sql as root on the primary (the chart's root password never leaves its Secret)."""
        if self.release is not None:
            for statement in filter(None, (s.strip() for s in sql.split(";"))):
                self.release.db.query(self.release.primary, statement)
        else:
            self.exec_server(0, ["mariadb", "-e", sql])

    def exec_server(self, ordinal: int, argv: Sequence[str], timeout: float = 300) -> CommandResult:
        return exec_in_pod(
            self.kube, self.namespace, f"mysql-{ordinal}", argv, container="mysql", timeout=timeout
        ).ok()

    def prepare_accounts(self) -> None:
        """The bench account and the heartbeat table, created on the primary and replicated."""
        auth = "IDENTIFIED WITH caching_sha2_password BY" if self.flavor == "mysql" else "IDENTIFIED BY"
        self.admin_sql(
            f"CREATE USER IF NOT EXISTS '{USER}'@'%' {auth} '{PASSWORD}';"
            "CREATE DATABASE IF NOT EXISTS sbtest; CREATE DATABASE IF NOT EXISTS sbwrite;"
            "CREATE DATABASE IF NOT EXISTS bench;"
            f"GRANT ALL ON sbtest.* TO '{USER}'@'%'; GRANT ALL ON sbwrite.* TO '{USER}'@'%';"
            f"GRANT ALL ON bench.* TO '{USER}'@'%';"
            "CREATE TABLE IF NOT EXISTS bench.heartbeat (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL);"
            "REPLACE INTO bench.heartbeat VALUES (1, NOW(6))"
        )

    @property
    def flavor(self) -> str:
        return self.release.flavor.name if self.release is not None else "mariadb"

    def datadir_bytes(self, ordinal: int) -> int:
        out = self.exec_server(ordinal, ["du", "-sb", self.datadir]).stdout
        return int(out.split()[0])

    def clone_seconds(self, ordinal: int) -> float:
        return log_span(self.kube, self.namespace, f"mysql-{ordinal}", self.clone_container)


def tutorial_manifests(cluster: Cluster) -> str:
    """The three tutorial manifests as one stream, with this mode's MariaDB image."""
    image = TUTORIAL_IMAGE[cluster.settings.mode]
    docs = []
    for name in ("mysql-configmap.yaml", "mysql-services.yaml", "mysql-statefulset.yaml"):
        for doc in yaml.safe_load_all((TUTORIAL / name).read_text()):
            if doc["kind"] == "StatefulSet":
                spec = doc["spec"]["template"]["spec"]
                for c in spec["initContainers"] + spec["containers"]:
                    c["image"] = image
                    if cluster.settings.mode == "airgap":
                        c["imagePullPolicy"] = "Never"
            docs.append(doc)
    return yaml.safe_dump_all(docs)


# --- the bench pod: sysbench, heartbeat, fio, iperf3 inside the cluster ------------------------------


@dataclass
class BenchPod:
    """A pod of the bench image in a setup's namespace; commands run in it through exec."""

    kube: Kube
    namespace: str
    name: str = "bench"

    def create(
        self,
        *,
        labels: dict[str, str] | None = None,
        claim: str | None = None,
        anti_affinity: str | None = None,
    ) -> BenchPod:
        self.kube.core.create_namespaced_config_map(
            self.namespace,
            {
                "metadata": {"name": f"{self.name}-files"},
                "data": {"heartbeat.py": (BENCH / "files" / "heartbeat.py").read_text()},
            },
        )
        volumes = [{"name": "files", "configMap": {"name": f"{self.name}-files"}}]
        mounts = [{"name": "files", "mountPath": "/bench"}]
        if claim:
            volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim}})
            mounts.append({"name": "data", "mountPath": "/data"})
        spec: dict[str, object] = {
            "securityContext": {"runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 65534},
            "containers": [
                {
                    "name": "bench",
                    "image": BENCH_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "infinity"],
                    "volumeMounts": mounts,
                    "env": [
                        {"name": "BENCH_USER", "value": USER},
                        {"name": "BENCH_PASSWORD", "value": PASSWORD},
                    ],
                }
            ],
            "volumes": volumes,
            "terminationGracePeriodSeconds": 1,
        }
        if anti_affinity:
            spec["affinity"] = {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "labelSelector": {"matchLabels": {"bench": anti_affinity}},
                            "topologyKey": "kubernetes.io/hostname",
                        }
                    ]
                }
            }
        body = {"metadata": {"name": self.name, "labels": labels or {}}, "spec": spec}
        self.kube.core.create_namespaced_pod(self.namespace, body)

        def running() -> bool | Pending:
            pod = self.kube.core.read_namespaced_pod(self.name, self.namespace)
            return pod_is_ready(pod) or Pending(pod.status.phase)

        wait_until(running, timeout=300, interval=1, what=f"bench pod {self.namespace}/{self.name}")
        return self

    def ip(self) -> str:
        return self.kube.core.read_namespaced_pod(self.name, self.namespace).status.pod_ip

    def run(self, argv: Sequence[str], timeout: float = 600) -> str:
        # An API client of its own per command: the exec stream patches the client it runs on,
        # and two at once (load and heartbeat) would leave the shared one patched for good.
        api = ApiClient(configuration=self.kube.api.configuration)
        kube = Kube(api=api, core=CoreV1Api(api), apps=self.kube.apps, networking=self.kube.networking)
        return (
            exec_in_pod(kube, self.namespace, self.name, argv, container="bench", timeout=timeout).ok().stdout
        )

    # --- sysbench ------------------------------------------------------------------------------------

    def sysbench(
        self, host: str, test: str, db: str, *args: str, command: str = "run", timeout: float = 3600
    ) -> str:
        argv = [
            "sysbench",
            test,
            "--db-driver=mysql",
            f"--mysql-host={host}",
            f"--mysql-user={USER}",
            f"--mysql-password={PASSWORD}",
            f"--mysql-db={db}",
            *args,
            command,
        ]
        # No --mysql-ssl: sysbench 1.0 then wants client-key.pem & co. in its working directory.
        out = self.run(argv, timeout=timeout)
        if "FATAL" in out:  # a failed prepare with several threads can still exit 0
            raise RuntimeError(f"sysbench {test} {command} on {host}: {out[-2000:]}")
        return out

    def prepare(self, host: str, db: str, tables: int, rows: int) -> None:
        start = time.monotonic()
        self.sysbench(
            host,
            "oltp_write_only",
            db,
            f"--tables={tables}",
            f"--table-size={rows}",
            "--threads=2",
            command="prepare",
        )
        log.info("%s: %d tables x %d rows into %s in %.0fs", host, tables, rows, db, time.monotonic() - start)

    def load(
        self, host: str, test: str, db: str, seconds: int, threads: int, rate: int = 0, tables: int = 4
    ) -> dict[str, float]:
        """sysbench `test` for `seconds` (at `rate` transactions/s when given): tps, qps, p95 ms."""
        out = self.sysbench(
            host,
            test,
            db,
            f"--tables={tables}",
            f"--threads={threads}",
            f"--time={seconds}",
            f"--rate={rate}",
            "--report-interval=0",
            "--percentile=95",
        )
        return parse_sysbench(out)

    def heartbeat(self, seconds: float, primary: str, replicas: Sequence[str]) -> dict[str, list[float]]:
        out = self.run(
            ["python3", "/bench/heartbeat.py", str(seconds), primary, *replicas], timeout=seconds + 120
        )
        result = json.loads(out)
        if result["errors"]:
            raise RuntimeError(f"heartbeat: {result['errors']}")
        return result["ages"]


def parse_sysbench(out: str) -> dict[str, float]:
    """tps, qps, p95 latency (ms) and errors from sysbench's final report."""

    def number(pattern: str) -> float:
        m = re.search(pattern, out)
        if not m:
            raise RuntimeError(f"sysbench output has no {pattern!r}:\n{out[-2000:]}")
        return float(m.group(1))

    return {
        "tps": number(r"transactions:\s+\d+\s+\(([\d.]+) per sec"),
        "qps": number(r"queries:\s+\d+\s+\(([\d.]+) per sec"),
        "p95_ms": number(r"95th percentile:\s+([\d.]+)"),
        "errors": number(r"ignored errors:\s+(\d+)"),
    }


def lag_stats(ages: dict[str, list[float]]) -> dict[str, float]:
    """p50, p99 and max of every replica's samples together (seconds), and the sample count."""
    samples = sorted(a for per in ages.values() for a in per)
    if not samples:
        raise RuntimeError("heartbeat: no samples")
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": q[49], "p99": q[98], "max": samples[-1], "samples": len(samples)}


def in_parallel(*calls: Callable[[], object]) -> list[object]:
    """Run calls in threads; return their results in order (re-raising the first failure)."""
    results: list[object] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], object]) -> None:
        try:
            results[i] = call()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def chart_release(cluster: Cluster, kube: Kube, namespace: str, flavor: str, **values: str) -> Release:
    return Release(
        cluster=cluster, kube=kube, namespace=namespace, flavor=FLAVORS[flavor], set_values=dict(values)
    )
