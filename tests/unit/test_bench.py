"""The bench's arithmetic, without a cluster: sysbench's report, lag percentiles, the headline ratios
and the Markdown table (bench/cluster.py, bench/run.py, bench/report.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bench.cluster import lag_stats, log_span, parse_sysbench, timed_log
from bench.report import steps, table, timelines
from bench.run import ratios

pytestmark = pytest.mark.unit

# The end of a `sysbench oltp_write_only run` report (sysbench 1.0.20).
SYSBENCH_REPORT = """
SQL statistics:
    queries performed:
        read:                            0
        write:                           19600
        other:                           9800
        total:                           29400
    transactions:                        4900   (489.79 per sec.)
    queries:                             29400  (2938.75 per sec.)
    ignored errors:                      2      (0.20 per sec.)
    reconnects:                          0      (0.00 per sec.)

Latency (ms):
         min:                                    2.10
         avg:                                   16.32
         max:                                  120.43
         95th percentile:                       39.65
         sum:                                79968.36
"""


def test_sysbench_report_gives_rates_latency_and_errors() -> None:
    assert parse_sysbench(SYSBENCH_REPORT) == {"tps": 489.79, "qps": 2938.75, "p95_ms": 39.65, "errors": 2.0}


def test_a_report_without_figures_is_an_error_not_a_zero() -> None:
    with pytest.raises(RuntimeError, match="transactions"):
        parse_sysbench("FATAL: unable to connect to MySQL server")


def test_lag_percentiles_pool_every_replica() -> None:
    ages = {"mysql-1.mysql": [0.01 * i for i in range(1, 101)], "mysql-2.mysql": [5.0]}
    stats = lag_stats(ages)
    assert stats["samples"] == 101
    assert stats["max"] == 5.0
    assert stats["p50"] == pytest.approx(0.51)
    assert 0.99 <= stats["p99"] <= 5.0


def test_no_lag_samples_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        lag_stats({"mysql-1.mysql": []})


def results() -> dict:
    chart = {
        "install_seconds": 40.0,
        "scale": {
            "seconds": 30.0,
            "primary_datadir_bytes": 2e9,
            "clones": [{"pod": "mysql-3", "bytes_per_s": 80e6}, {"pod": "mysql-4", "bytes_per_s": 60e6}],
        },
        "writes_semisync": {
            "saturated": {"tps": 350.0, "p95_ms": 30.0},
            "lag": {"50%": {"p50": 0.1, "p99": 0.4, "max": 0.9, "ages": {}}},
        },
        "writes_async": {"saturated": {"tps": 450.0, "p95_ms": 20.0}},
        "reads": {"1": 1000.0, "3": 2000.0, "5": 2500.0},
    }
    return {
        "timestamp": "20261203T000000Z",
        "quick": True,
        "seconds": 540,
        "plan": {"tables": 2, "rows": 50_000},
        "environment": {"cores": 2, "memory_gib": 23.5, "kubernetes": "v1.34.4", "mode": "airgap"},
        "limits": {"disk_bytes_per_s": 200e6, "network_bytes_per_s": 100e6, "limit_bytes_per_s": 100e6},
        "figures": {
            "mariadb": {
                "chart-mariadb": chart,
                "tutorial": {"install_seconds": 50.0, "scale": {"seconds": 40.0, "clones": []}},
                "single-mariadb": {"writes": {"saturated": {"tps": 500.0, "p95_ms": 15.0}}},
            }
        },
    }


def test_ratios_are_the_chart_over_its_baselines() -> None:
    r = results()
    assert ratios(r) == {
        "install_vs_tutorial": 0.8,
        "scale_vs_tutorial": 0.75,
        "clone_vs_limit": 0.6,  # the slower clone against the smaller limit
        "semisync_vs_single": 0.7,
        "lag_p99_seconds_at_50pct": 0.4,
    }


def test_a_missing_baseline_gives_no_ratio() -> None:
    r = results()
    del r["figures"]["mariadb"]["tutorial"]
    assert ratios(r)["install_vs_tutorial"] is None


def test_the_table_shows_headlines_and_figures() -> None:
    r = results()
    r["ratios"] = ratios(r)
    text = table(r)
    assert "| `install_vs_tutorial` | 0.800 | <= 0.8 |" in text
    assert "| scale 3 → 5 (s) | 30.0 | 40.0 | - |" in text
    assert "| lag at 50%: p50 / p99 / max (s) | 0.100 / 0.400 / 0.900 | - | - |" in text
    assert "volume writes 200 MB/s (fio), pod to pod 100 MB/s (iperf3)" in text


def test_the_table_says_what_cpu_the_servers_had() -> None:
    r = results()
    r["ratios"] = ratios(r)
    assert "capped" not in table(r)  # a run from before the cap
    r["environment"]["server_cpu"] = "500m"
    assert "rows for the scale-out; every server capped at 500m CPU for writes and reads." in table(r)


TIMELINE = {
    "created": 16.0,
    "scheduled": 20.0,
    "init-config start": 22.0,
    "init-config end": 23.0,
    "clone start": 24.0,
    "clone end": 25.0,
    "mysql start": 26.0,
    "accepting": 29.3,
    "ready": 31.0,
}


def test_a_pods_start_splits_into_its_steps() -> None:
    assert steps(TIMELINE) == {
        "scheduling": 4.0,
        "to first container": 2.0,
        "init-config": 1.0,
        "clone": 1.0,
        "server start": 3.3,
        "probes to Ready": 1.7,
        "total": 15.0,
    }


def test_a_step_the_pod_did_not_log_is_unknown_not_zero() -> None:
    timeline = {k: v for k, v in TIMELINE.items() if k != "accepting"}
    assert steps(timeline)["server start"] is None
    r = results()
    r["figures"]["mariadb"]["chart-mariadb"]["install_timeline"] = {"mysql-1": timeline}
    assert "| mysql-1 | 4.0 | 2.0 | 1.0 | 1.0 | - | - | 15.0 |" in timelines(r)


def test_the_charts_clone_shows_its_copy() -> None:
    timeline = {**TIMELINE, "copy start": 24.2, "copy end": 24.7}
    assert steps(timeline)["clone: copy"] == 0.5
    assert "copy" not in steps(timeline)  # the copy is a step of the clone, not an init container


def test_a_pod_without_a_copy_keeps_the_copy_column_in_place() -> None:
    primary = {**TIMELINE}
    replica = {**TIMELINE, "copy start": 24.2, "copy end": 24.7}
    results = {
        "figures": {
            "mariadb": {"chart-mariadb": {"install_timeline": {"mysql-0": primary, "mysql-1": replica}}}
        }
    }
    header = next(line for line in timelines(results).splitlines() if line.startswith("| pod |"))
    assert header.index("clone: copy") < header.index("server start"), header


class LogOnly:
    """The one API call the log readers make, answering with a fixed log."""

    def __init__(self, text: str) -> None:
        self.text = text

    def read_namespaced_pod_log(self, *_: Any, **__: Any) -> str:
        return self.text


CLONE_LOG = "2026-12-03T23:41:56.250000000Z cloning from mysql-2\n2026-12-03T23:42:07.750000000Z complete\n"


def test_a_log_reads_as_timed_lines_and_spans_first_to_last() -> None:
    kube: Any = SimpleNamespace(core=LogOnly(CLONE_LOG))
    pairs = timed_log(kube, "ns", "mysql-3", "clone")
    assert [line for _, line in pairs] == ["cloning from mysql-2", "complete"]
    assert log_span(kube, "ns", "mysql-3", "clone") == 11.5


def test_a_one_line_log_has_no_span() -> None:
    kube: Any = SimpleNamespace(core=LogOnly(CLONE_LOG.splitlines()[0]))
    with pytest.raises(RuntimeError, match="1 lines"):
        log_span(kube, "ns", "mysql-3", "clone")
