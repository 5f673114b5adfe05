"""make bench: the chart against the tutorial it comes from and against the machine's limits.

usage: python bench/run.py [--quick] [--flavors mariadb,mysql] [--out bench/results] [--keep]

Every figure has its baseline measured in the same run on the same cluster, and the headline
figures are ratios to it (see bench/README.md for what each one measures). Writes
bench/results/<timestamp>.json (raw figures, environment, `ratios`), then the Markdown table and
the plots (bench/report.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report
from bench.cluster import (
    BENCH_IMAGE,
    BenchPod,
    Setup,
    chart_release,
    in_parallel,
    lag_stats,
    log,
)
from harness import cluster as harness_cluster
from harness.kube import Kube, delete_namespace

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Plan:
    """How much the run does: the full bench or the quick sanity check."""

    tables: int  # sysbench tables of the scale-out data (sbtest)
    rows: int  # rows per table
    seconds: int  # each load run
    levels: tuple[float, ...]  # fractions of the saturated write rate for the lag figure
    fio_size: str
    threads: int = 8

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls(tables=2, rows=50_000, seconds=10, levels=(0.5,), fio_size="256M")
        # 8 x 600,000 sysbench rows: about 1.1 GB of datadir on the primary.
        return cls(tables=8, rows=600_000, seconds=30, levels=(0.25, 0.5, 1.0), fio_size="1G")


WRITE_TABLES, WRITE_ROWS = 4, 20_000  # sbwrite: the data every write-throughput run uses
# Every database server's CPU during the write and read figures: a quarter of the machine each, so
# that three servers and the load fit in it and a single server gets what one of the chart's gets
# (uncapped, the single server had the replicas' share too: bench/README.md).
SERVER_CPU = f"{(os.cpu_count() or 2) * 250}m"


def environment(cluster: harness_cluster.Cluster) -> dict[str, object]:
    """Cores, memory and versions of what the figures were measured on."""

    def output(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, env=cluster.env).stdout

    server = [
        ln for ln in output("kubectl", "--context", cluster.context, "version").splitlines() if "Server" in ln
    ]
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal")))
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "mode": cluster.settings.mode,
        "kubernetes": server[0].split(":", 1)[1].strip() if server else "unknown",
        "helm": output("helm", "version", "--short").strip(),
        "bench_image": BENCH_IMAGE,
        "server_cpu": SERVER_CPU,
    }


def measure_limits(kube: Kube, namespace: str, plan: Plan) -> dict[str, float]:
    """Raw volume write throughput (fio, a claim of the default StorageClass) and raw pod-to-pod
    throughput (iperf3 between pods on two nodes), bytes/s."""
    claim = {
        "metadata": {"name": "fio"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "4Gi"}}},
    }
    kube.core.create_namespaced_persistent_volume_claim(namespace, claim)
    fio = BenchPod(kube, namespace, "fio").create(claim="fio")
    out = fio.run(
        [
            "fio",
            "--name=seqwrite",
            "--directory=/data",
            "--rw=write",
            "--bs=1M",
            f"--size={plan.fio_size}",
            "--ioengine=psync",
            "--direct=1",  # the disk, not the page cache (which took 0.3-2.2 GB/s run to run)
            "--end_fsync=1",
            "--output-format=json",
        ]
    )
    disk = json.loads(out)["jobs"][0]["write"]["bw_bytes"]
    server = BenchPod(kube, namespace, "iperf-server").create(labels={"bench": "iperf"})
    client = BenchPod(kube, namespace, "iperf-client").create(anti_affinity="iperf")
    ip = server.ip()

    def send() -> str:
        time.sleep(2)  # the server listening first
        return client.run(["iperf3", "-c", ip, "-t", "10", "-J"], timeout=120)

    # iperf3 -s -1 serves one test, then exits
    result = in_parallel(lambda: server.run(["iperf3", "-s", "-1"], timeout=120), send)
    net = json.loads(str(result[1]))["end"]["sum_received"]["bits_per_second"] / 8
    log.info("limits: disk %.0f MB/s (fio), pod-to-pod %.0f MB/s (iperf3)", disk / 1e6, net / 1e6)
    return {"disk_bytes_per_s": disk, "network_bytes_per_s": net, "limit_bytes_per_s": min(disk, net)}


def scale_out(setup: Setup) -> dict[str, object]:
    """`kubectl scale` 3 -> 5 with the data in place: seconds, and each clone's throughput."""
    primary_bytes = setup.datadir_bytes(0)
    seconds = setup.scale(5)
    clones = []
    for ordinal in (3, 4):
        copied, took = setup.datadir_bytes(ordinal), setup.clone_seconds(ordinal)
        clones.append(
            {"pod": f"mysql-{ordinal}", "bytes": copied, "seconds": took, "bytes_per_s": copied / took}
        )
    timeline = setup.timeline((3, 4))
    log.info("%s: scale 3 -> 5 in %.1fs; clones %s; %s", setup.name, seconds, clones, timeline)
    return {
        "primary_datadir_bytes": primary_bytes,
        "seconds": seconds,
        "clones": clones,
        "timeline": timeline,
    }


def wait_replicas_current(setup: Setup, pod: BenchPod, replicas: list[str]) -> None:
    """Until every replica's heartbeat is under a second old (they have applied the data loaded)."""
    for _ in range(600):
        ages = pod.heartbeat(1.5, setup.host(0), replicas)
        if all(a and a[-1] < 1.0 for a in ages.values()):
            return
    raise RuntimeError(f"{setup.name}: replicas did not catch up")


def write_figures(setup: Setup, pod: BenchPod, plan: Plan, *, lag_levels: tuple[float, ...] = ()) -> dict:
    """Saturated write rate and p95 (sysbench oltp_write_only on the primary), then, per level, the
    replicas' data age under that fraction of the saturated rate; every server capped at SERVER_CPU."""
    setup.cap_cpu(range(3), SERVER_CPU)
    primary = setup.host(0)
    saturated = pod.load(
        primary, "oltp_write_only", "sbwrite", plan.seconds, plan.threads, tables=WRITE_TABLES
    )
    log.info("%s: saturated %s", setup.name, saturated)
    figures: dict = {"saturated": saturated, "lag": {}}
    replicas = [setup.host(i) for i in (1, 2)]
    for level in lag_levels:
        rate = max(1, int(saturated["tps"] * level))
        load, ages = in_parallel(
            lambda rate=rate: pod.load(
                primary, "oltp_write_only", "sbwrite", plan.seconds, plan.threads, rate, tables=WRITE_TABLES
            ),
            lambda: pod.heartbeat(plan.seconds, primary, replicas),
        )
        stats = lag_stats(ages)  # type: ignore[arg-type]
        figures["lag"][f"{int(level * 100)}%"] = {"rate": rate, "load": load, **stats, "ages": ages}
        log.info("%s: lag at %d%% (%d tps): %s", setup.name, level * 100, rate, stats)
    return figures


def read_figures(setup: Setup, pod: BenchPod, plan: Plan) -> dict[str, float]:
    """Point selects through mysql-read with 3, 5 and 1 pods (queries/s), every server capped at
    SERVER_CPU."""
    out = {}
    for pods in (3, 5, 1):
        setup.scale(pods)
        setup.cap_cpu(range(pods), SERVER_CPU)
        setup.wait_read_endpoints(pods)
        r = pod.load(
            "mysql-read", "oltp_point_select", "sbwrite", plan.seconds, plan.threads, tables=WRITE_TABLES
        )
        out[str(pods)] = r["qps"]
        log.info("%s: reads through mysql-read with %d pods: %.0f q/s", setup.name, pods, r["qps"])
    return out


def run_flavor(
    cluster: harness_cluster.Cluster, kube: Kube, flavor: str, plan: Plan, tag: str, results: dict
) -> None:
    """Every figure of one flavor: the chart, a single server, and (MariaDB) the tutorial."""
    # The air-gapped values files follow the settings' flavor.
    cluster = dataclasses.replace(cluster, settings=dataclasses.replace(cluster.settings, flavor=flavor))
    values = [str(p) for p in cluster.values_files]
    with_tutorial = flavor == "mariadb"
    setups: list[Setup] = []
    chart = Setup(
        f"chart-{flavor}",
        cluster,
        kube,
        f"bench-{tag}-{flavor}",
        "/var/lib/mysql/data",
        "clone",
        release=chart_release(cluster, kube, f"bench-{tag}-{flavor}", flavor),
    )
    setups.append(chart)
    if with_tutorial:
        setups.append(
            Setup("tutorial", cluster, kube, f"bench-{tag}-tutorial", "/var/lib/mysql", "clone-mysql")
        )
    log.info("values files: %s", values)
    fig: dict = results.setdefault(flavor, {})
    # Install, one setup at a time, each alone on the cluster.
    pods = {}
    for s in setups:
        s.create_namespace()
        fig.setdefault(s.name, {})["install_seconds"] = s.install()
        fig[s.name]["install_timeline"] = s.timeline(range(3))
        log.info(
            "%s: install -> 3 Ready in %.1fs; %s",
            s.name,
            fig[s.name]["install_seconds"],
            fig[s.name]["install_timeline"],
        )
        s.prepare_accounts()
        pods[s.name] = BenchPod(kube, s.namespace).create()
        pods[s.name].prepare(s.host(0), "sbwrite", WRITE_TABLES, WRITE_ROWS)
        pods[s.name].prepare(s.host(0), "sbtest", plan.tables, plan.rows)
        wait_replicas_current(s, pods[s.name], [s.host(1), s.host(2)])
    for s in setups:
        fig[s.name]["scale"] = scale_out(s)
        s.scale(3)
    # Writes: the chart with semi-sync (its default), the tutorial, the chart without semi-sync.
    fig[chart.name]["writes_semisync"] = write_figures(chart, pods[chart.name], plan, lag_levels=plan.levels)
    if with_tutorial:
        tutorial = setups[1]
        fig["tutorial"]["writes"] = write_figures(tutorial, pods["tutorial"], plan)
        fig["tutorial"]["reads"] = read_figures(tutorial, pods["tutorial"], plan)
        tutorial.delete()
    assert chart.release is not None
    chart.release.upgrade({"replication.semiSync.enabled": "false"})
    fig[chart.name]["writes_async"] = write_figures(chart, pods[chart.name], plan)
    fig[chart.name]["reads"] = read_figures(chart, pods[chart.name], plan)
    chart.delete()
    # A single server: the same chart, image and config, replicaCount 1.
    single = Setup(
        f"single-{flavor}",
        cluster,
        kube,
        f"bench-{tag}-{flavor}-single",
        "/var/lib/mysql/data",
        "clone",
        release=chart_release(cluster, kube, f"bench-{tag}-{flavor}-single", flavor, replicaCount="1"),
    )
    single.create_namespace()
    fig.setdefault(single.name, {})["install_seconds"] = single.install()
    single.prepare_accounts()
    pod = BenchPod(kube, single.namespace).create()
    pod.prepare(single.host(0), "sbwrite", WRITE_TABLES, WRITE_ROWS)
    single.cap_cpu([0], SERVER_CPU)
    saturated = pod.load(
        single.host(0), "oltp_write_only", "sbwrite", plan.seconds, plan.threads, tables=WRITE_TABLES
    )
    fig[single.name]["writes"] = {"saturated": saturated}
    log.info("%s: saturated %s", single.name, saturated)
    single.delete()


def ratios(results: dict) -> dict[str, float | None]:
    m = results["figures"].get("mariadb", {})
    chart, tutorial, single = m.get("chart-mariadb", {}), m.get("tutorial", {}), m.get("single-mariadb", {})
    limit = results["limits"]["limit_bytes_per_s"]
    clones = chart.get("scale", {}).get("clones", [])
    lag = chart.get("writes_semisync", {}).get("lag", {}).get("50%", {})

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    return {
        "install_vs_tutorial": ratio(chart.get("install_seconds"), tutorial.get("install_seconds")),
        "scale_vs_tutorial": ratio(
            chart.get("scale", {}).get("seconds"), tutorial.get("scale", {}).get("seconds")
        ),
        "clone_vs_limit": ratio(min((c["bytes_per_s"] for c in clones), default=None), limit),
        "semisync_vs_single": ratio(
            chart.get("writes_semisync", {}).get("saturated", {}).get("tps"),
            single.get("writes", {}).get("saturated", {}).get("tps"),
        ),
        "lag_p99_seconds_at_50pct": round(lag["p99"], 3) if lag else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, one load level (under 10 minutes)")
    parser.add_argument(
        "--flavors", default=None, help="comma-separated (default: mariadb,mysql; quick: mariadb)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    plan = Plan.of(args.quick)
    flavors = (args.flavors or ("mariadb" if args.quick else "mariadb,mysql")).split(",")
    settings = harness_cluster.Settings.resolve(
        flavor="mariadb", keep=True, kube_context=None, kube_config=None
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        cluster = harness_cluster.up(settings, Path(work))
        subprocess.run(["bash", str(ROOT / "ci" / "db-images.sh"), "bench"], check=True, env=cluster.env)
        subprocess.run(
            ["bash", str(ROOT / "ci" / "db-images.sh"), "load", harness_cluster.KIND_CLUSTER, BENCH_IMAGE],
            check=True,
            env=cluster.env,
        )
        kube = Kube.connect(cluster)
        tag = datetime.now(UTC).strftime("%H%M%S")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        results: dict = {
            "timestamp": stamp,
            "quick": args.quick,
            "plan": plan.__dict__,
            "environment": environment(cluster),
            "figures": {},
        }
        limits = Setup("limits", cluster, kube, f"bench-{tag}-limits", "", "")
        limits.create_namespace()
        results["limits"] = measure_limits(kube, limits.namespace, plan)
        limits.delete()
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{stamp}.json"
        try:
            for flavor in flavors:
                run_flavor(cluster, kube, flavor, plan, tag, results["figures"])
                # Written after each flavor: a later failure keeps what was measured.
                results["ratios"] = ratios(results)
                results["seconds"] = round(time.monotonic() - started)
                path.write_text(json.dumps(results, indent=2) + "\n")
        finally:
            # A failed run leaves no data behind: each run's volumes hold gigabytes.
            for ns in kube.core.list_namespace().items:
                if ns.metadata.name.startswith(f"bench-{tag}-"):
                    delete_namespace(kube, ns.metadata.name)
    log.info("results: %s", path)
    report.write(path)
    print(json.dumps(results["ratios"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
