"""The chart's alert rules, as rendered, evaluated by `promtool test rules` on series named as
mysqld_exporter and the kubelet export them: MySQL 8.4 and later (Replica_* / Seconds_Behind_Source
columns, rpl_semi_sync_source_*) and MariaDB (Slave_* / Seconds_Behind_Master, rpl_semi_sync_master_*).
Each fault fires its alert, with the alert's labels; a healthy release fires none.

promtool comes from Debian's prometheus package (`bash ci/tools.sh promtool`, part of `make unit`).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .render import find, render

pytestmark = pytest.mark.render

SERVICE = 'namespace="default", service="mysql-metrics"'
CLAIM = 'namespace="default", persistentvolumeclaim="data-mysql-1"'
# The release's default readiness.maxLagSeconds, which the lag alert uses.
MAX_LAG = 30


@dataclass(frozen=True)
class Fault:
    """Series (name{labels} -> promtool values, one sample a minute) and the alert they fire by
    minute `at`, with the labels it must carry besides the series' own."""

    series: dict[str, str]
    alert: str
    at: str
    labels: dict[str, str]


def replica(metric: str) -> str:
    return f'{metric}{{{SERVICE}, pod="mysql-1"}}'


FAULTS = {
    "a server down (mysql_up 0)": Fault(
        {f'mysql_up{{{SERVICE}, pod="mysql-2"}}': "1 0x5"}, "MySQLDown", "4m", {"severity": "critical"}
    ),
    "MySQL: SQL thread stopped": Fault(
        {replica("mysql_slave_status_replica_io_running"): "1x8",
         replica("mysql_slave_status_replica_sql_running"): "1 0x8"},
        "MySQLReplicationStopped", "7m", {"severity": "critical"},
    ),
    "MySQL: I/O thread stopped": Fault(
        {replica("mysql_slave_status_replica_io_running"): "1 0x8",
         replica("mysql_slave_status_replica_sql_running"): "1x8"},
        "MySQLReplicationStopped", "7m", {"severity": "critical"},
    ),
    "MariaDB: SQL thread stopped": Fault(
        {replica("mysql_slave_status_slave_io_running"): "1x8",
         replica("mysql_slave_status_slave_sql_running"): "1 0x8"},
        "MySQLReplicationStopped", "7m", {"severity": "critical"},
    ),
    "MySQL: lag over maxLagSeconds": Fault(
        {replica("mysql_slave_status_seconds_behind_source"): f"0 {MAX_LAG * 3}x8"},
        "MySQLReplicationLagging", "7m", {"severity": "warning"},
    ),
    "MariaDB: lag over maxLagSeconds": Fault(
        {replica("mysql_slave_status_seconds_behind_master"): f"0 {MAX_LAG * 3}x8"},
        "MySQLReplicationLagging", "7m", {"severity": "warning"},
    ),
    "MySQL: the primary fell back to asynchronous replication": Fault(
        {f'mysql_global_status_rpl_semi_sync_source_status{{{SERVICE}, pod="mysql-0"}}': "1 0x5"},
        "MySQLSemiSyncOff", "4m", {"severity": "warning"},
    ),
    "MariaDB: the primary fell back to asynchronous replication": Fault(
        {f'mysql_global_status_rpl_semi_sync_master_status{{{SERVICE}, pod="mysql-0"}}': "1 0x5"},
        "MySQLSemiSyncOff", "4m", {"severity": "warning"},
    ),
    "a volume 90% full": Fault(
        {f"kubelet_volume_stats_available_bytes{{{CLAIM}}}": "50 10x8",
         f"kubelet_volume_stats_capacity_bytes{{{CLAIM}}}": "100x8"},
        "MySQLVolumeFilling", "7m", {"severity": "warning"},
    ),
}  # fmt: skip

# Every series of a healthy three-pod release, both namings: no alert fires.
HEALTHY = {
    **{f'mysql_up{{{SERVICE}, pod="mysql-{i}"}}': "1x10" for i in range(3)},
    **{replica(f"mysql_slave_status_{name}"): "1x10"
       for name in ("replica_io_running", "replica_sql_running", "slave_io_running", "slave_sql_running")},
    replica("mysql_slave_status_seconds_behind_source"): f"0 {MAX_LAG}x10",
    replica("mysql_slave_status_seconds_behind_master"): f"0 {MAX_LAG}x10",
    f'mysql_global_status_rpl_semi_sync_source_status{{{SERVICE}, pod="mysql-0"}}': "1x10",
    f"kubelet_volume_stats_available_bytes{{{CLAIM}}}": "50x10",
    f"kubelet_volume_stats_capacity_bytes{{{CLAIM}}}": "100x10",
}  # fmt: skip


def series_labels(series: str) -> dict[str, str]:
    """The labels written in a series selector, e.g. {pod: mysql-1, ...}."""
    body = series[series.index("{") + 1 : series.rindex("}")]
    pairs = (part.split("=", 1) for part in body.split(", "))
    return {key: value.strip('"') for key, value in pairs}


@functools.cache
def rule_groups() -> list[dict]:
    """The rendered PrometheusRule's groups (metrics and alerts on, the default replicaCount 3),
    rendered once per run."""
    values = {"metrics": {"enabled": True, "prometheusRule": {"enabled": True}}}
    return find(render(values), "PrometheusRule", "mysql")["spec"]["groups"]


def rule_alerts() -> list[dict]:
    return [r for group in rule_groups() for r in group["rules"]]


def promtool_test(tmp_path: Path, tests: list[dict]) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of the rendered rules against tests."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: bash ci/tools.sh promtool (make unit runs it)"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    spec = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    argv = [promtool, "test", "rules", "tests.yaml"]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)


def annotations(alert: str, labels: dict[str, str]) -> dict[str, str]:
    """The alert's annotations as Prometheus fills them in: each {{ $labels.NAME }} replaced by the
    label (a label the alert lacks fails the test here, not a page with '<no value>' in it)."""
    rule = next(r for r in rule_alerts() if r["alert"] == alert)
    fill = re.compile(r"\{\{ \$labels\.(\w+) \}\}")
    return {key: fill.sub(lambda m: labels[m[1]], text) for key, text in rule["annotations"].items()}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_fires_its_alert(fault: str, tmp_path: Path) -> None:
    case = FAULTS[fault]
    labels = series_labels(next(iter(case.series))) | case.labels
    expected = {"exp_labels": labels, "exp_annotations": annotations(case.alert, labels)}
    test = {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
        "alert_rule_test": [{"eval_time": case.at, "alertname": case.alert, "exp_alerts": [expected]}],
    }
    result = promtool_test(tmp_path, [test])
    assert result.returncode == 0, f"{fault}:\n{result.stdout}{result.stderr}"


def test_a_healthy_release_fires_no_alert(tmp_path: Path) -> None:
    names = sorted({r["alert"] for r in rule_alerts()})
    assert {f.alert for f in FAULTS.values()} == set(names), names
    test = {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in HEALTHY.items()],
        "alert_rule_test": [{"eval_time": "10m", "alertname": name, "exp_alerts": []} for name in names],
    }
    result = promtool_test(tmp_path, [test])
    assert result.returncode == 0, result.stdout + result.stderr
