"""Replication settings from values: semi-synchronous replication, binlog expiry, MariaDB's strict GTIDs.

The option file is assembled in the pod by init-config.sh; these tests run that script (bash, as
the init container does) on the rendered ConfigMap's files, for the primary and for a replica.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from .render import Doc, container, env, find, render, render_error, sts_spec

pytestmark = pytest.mark.render


def assembled_cnf(docs: list[Doc], hostname: str, tmp_path: Path) -> list[str]:
    """Run the rendered init-config.sh for pod `hostname` with the init container's env; its option lines."""
    scripts = tmp_path / f"scripts-{hostname}"
    scripts.mkdir()
    for name, text in find(docs, "ConfigMap", "mysql")["data"].items():
        (scripts / name).write_text(text)
    init = env(container(sts_spec(docs), "init-config"))
    cnf = tmp_path / f"{hostname}.cnf"
    run_env = {k: v["value"] for k, v in init.items() if "value" in v}
    pod_scripts = tmp_path / f"pod-scripts-{hostname}"
    pod_scripts.mkdir()
    run_env |= {"PATH": os.environ["PATH"], "HOSTNAME": hostname, "SCRIPTS": str(scripts), "MY_CNF": str(cnf),
                "POD_SCRIPTS": str(pod_scripts)}  # fmt: skip
    subprocess.run(["bash", str(scripts / "init-config.sh")], env=run_env, check=True, capture_output=True)
    return [line.strip() for line in cnf.read_text().splitlines()]


@pytest.mark.parametrize(
    ("flavor", "primary", "replica"),
    [
        (
            "mysql",
            ["loose-rpl_semi_sync_source_enabled = ON", "loose-rpl_semi_sync_source_timeout = 10000",
             "loose-rpl_semi_sync_source_wait_point = AFTER_SYNC", "loose-rpl_semi_sync_source = FORCE",
             "plugin-load-add = semisync_source.so"],
            ["loose-rpl_semi_sync_replica_enabled = ON", "plugin-load-add = semisync_replica.so"],
        ),
        (
            "mariadb",
            ["loose-rpl_semi_sync_master_enabled = ON", "loose-rpl_semi_sync_master_timeout = 10000",
             "loose-rpl_semi_sync_master_wait_point = AFTER_SYNC"],
            ["loose-rpl_semi_sync_slave_enabled = ON"],
        ),
    ],
)  # fmt: skip
def test_semi_sync_is_on_by_default_primary_waits_replicas_acknowledge(
    flavor: str, primary: list[str], replica: list[str], tmp_path: Path
) -> None:
    """Three pods: the primary waits (10 s, then asynchronous) for a replica to have each commit."""
    docs = render({"flavor": flavor})
    on_primary = assembled_cnf(docs, "mysql-0", tmp_path)
    on_replica = assembled_cnf(docs, "mysql-1", tmp_path)
    assert set(primary) <= set(on_primary), on_primary
    assert set(replica) <= set(on_replica), on_replica
    assert not [line for line in on_replica if "semi_sync_source_enabled" in line or "master_enabled" in line]
    assert not [line for line in on_primary if "replica_enabled" in line or "slave_enabled" in line]


@pytest.mark.parametrize("values", [{"replicaCount": 1}, {"replication": {"semiSync": {"enabled": False}}}])
def test_semi_sync_is_off_without_replicas_or_when_disabled(values: dict, tmp_path: Path) -> None:
    """One pod has no replica to acknowledge: no semi-sync (a commit would wait out the timeout)."""
    docs = render(values)
    assert env(container(sts_spec(docs), "init-config"))["SEMI_SYNC"]["value"] == "off"
    assert not [line for line in assembled_cnf(docs, "mysql-0", tmp_path) if "rpl_semi" in line]


def test_semi_sync_timeout_and_binlog_expiry_come_from_values(tmp_path: Path) -> None:
    """replication.semiSync.timeoutSeconds and replication.binlogExpireSeconds reach the option file."""
    docs = render({"replication": {"semiSync": {"timeoutSeconds": 3}, "binlogExpireSeconds": 86400}})
    lines = assembled_cnf(docs, "mysql-0", tmp_path)
    assert "loose-rpl_semi_sync_source_timeout = 3000" in lines
    assert "binlog_expire_logs_seconds = 86400" in lines


@pytest.mark.parametrize("flavor", ["mysql", "mariadb"])
def test_binary_logs_expire_after_seven_days_by_default(flavor: str, tmp_path: Path) -> None:
    """MariaDB keeps binlogs forever unless told: every pod gets the same expiry (7 days)."""
    docs = render({"flavor": flavor})
    for pod in ("mysql-0", "mysql-1"):
        assert "binlog_expire_logs_seconds = 604800" in assembled_cnf(docs, pod, tmp_path)


def test_mariadb_replicas_refuse_out_of_order_gtids() -> None:
    """gtid_strict_mode: a diverged replica stops instead of applying on top of other history."""
    data = find(render({"flavor": "mariadb"}), "ConfigMap", "mysql")["data"]
    assert "gtid_strict_mode = ON" in data["server.cnf"]


@pytest.mark.parametrize(
    "values",
    [
        {"replication": {"semiSync": {"timeoutSeconds": 0}}},
        {"replication": {"semiSync": {"enabled": "yes"}}},
        {"replication": {"binlogExpireSeconds": 60}},
        {"replication": {"semiSync": {"timeout": 5}}},
    ],
)
def test_schema_rejects_bad_replication_values(values: dict) -> None:
    """A zero timeout, a string boolean, an expiry under an hour, a typo: refused before anything exists."""
    assert "replication" in render_error(values)


def test_values_reused_from_a_release_without_the_replication_key_still_render(tmp_path: Path) -> None:
    """`helm upgrade --reuse-values` from 0.2.0 has no `replication` map: semi-sync on, 7 days expiry."""
    docs = render({"replication": None})
    lines = assembled_cnf(docs, "mysql-0", tmp_path)
    assert "loose-rpl_semi_sync_source_enabled = ON" in lines
    assert "binlog_expire_logs_seconds = 604800" in lines


def alerts(values: dict) -> dict[str, str]:
    """alert name -> expression of the PrometheusRule rendered with metrics and alerts on."""
    metrics = {"metrics": {"enabled": True, "prometheusRule": {"enabled": True}}}
    rule = find(render(metrics | values), "PrometheusRule", "mysql")
    return {r["alert"]: r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]}


def test_alerts_warn_when_the_primary_falls_back_to_async_and_before_a_volume_fills() -> None:
    """MySQLSemiSyncOff watches the primary's semi-sync status (either flavor's name for it);
    MySQLVolumeFilling the free space of the release's claims."""
    rules = alerts({})
    primary = 'namespace="default", service="mysql-metrics", pod="mysql-0"'
    assert f"rpl_semi_sync_source_status{{{primary}}} == 0" in rules["MySQLSemiSyncOff"]
    assert "rpl_semi_sync_master_status" in rules["MySQLSemiSyncOff"]
    assert 'persistentvolumeclaim=~"data-mysql-[0-9]+"' in rules["MySQLVolumeFilling"]
    assert "MySQLSemiSyncOff" not in alerts({"replicaCount": 1})


Paced = tuple[subprocess.CompletedProcess[bytes], float]


def paced_copy(docs: list[Doc], data: bytes, mib_per_second: int) -> Paced:
    """serve-backup.sh's rate_limit, as rendered, copying `data` at `mib_per_second`; result, seconds."""
    script = find(docs, "ConfigMap", "mysql")["data"]["serve-backup.sh"]
    start = script.index("rate_limit() {")
    function = script[start : script.index("\n}\n", start) + 3]
    argv = ["bash", "-c", f"set -euo pipefail\n{function}\nrate_limit {mib_per_second}"]
    began = time.monotonic()
    result = subprocess.run(argv, input=data, capture_output=True, check=False)
    return result, time.monotonic() - began


def test_mariadb_donor_paces_its_stream_to_the_bandwidth_cap(mariadb_docs: list[Doc]) -> None:
    """clone.maxBandwidthMiB: 5 MiB and a bit at 4 MiB/s arrive whole, in no less than 1.25 s (the
    first block goes at once); 0 copies without a cap; so does the last, partial block."""
    data = os.urandom(5 * 2**20 + 123)
    paced, seconds = paced_copy(mariadb_docs, data, 4)
    assert paced.returncode == 0, paced.stderr
    assert paced.stdout == data
    assert seconds >= 5 / 4
    free, _ = paced_copy(mariadb_docs, data, 0)
    assert free.returncode == 0 and free.stdout == data
