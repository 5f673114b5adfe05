"""Probes: exec scripts; startup budget configurable; readiness bound to replication lag."""

from __future__ import annotations

import pytest

from .render import Doc, container, env, find, pod_specs, render, sts_spec

pytestmark = pytest.mark.render


def server(docs: list[Doc]) -> Doc:
    return container(dict(pod_specs(docs))["mysql"], "mysql")


def configmap(docs: list[Doc]) -> dict[str, str]:
    """The chart's files as the ConfigMap holds them."""
    return find(docs, "ConfigMap", "mysql")["data"]


@pytest.mark.parametrize("flavor", ["mysql", "mariadb"])
def test_all_three_probes_are_exec_scripts_without_credentials_in_argv(flavor: str) -> None:
    """startup/liveness/readiness run probe.sh MODE; the password comes from env."""
    c = server(render({"flavor": flavor}))
    for kind, mode in (
        ("startupProbe", "startup"),
        ("livenessProbe", "liveness"),
        ("readinessProbe", "readiness"),
    ):
        assert c[kind]["exec"]["command"] == ["bash", "/opt/mysql-chart/probe.sh", mode]
    env = {e["name"]: e for e in c["env"]}
    assert env["MYSQL_PROBE_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "mysql-probe-password"


def test_startup_budget_is_configurable_for_long_crash_recovery() -> None:
    """periodSeconds x failureThreshold is the time a slow recovery gets before a restart."""
    c = server(
        render({"probes": {"startup": {"periodSeconds": 15, "timeoutSeconds": 5, "failureThreshold": 240}}})
    )
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] == 3600


def test_default_startup_budget_is_ten_minutes(mysql_docs: list[Doc]) -> None:
    """Generous default so a first clone adoption or recovery is not killed."""
    probe = server(mysql_docs)["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == 600


def test_a_started_server_is_noticed_within_two_seconds(mysql_docs: list[Doc]) -> None:
    """Pods start one after another: every second between a server answering and its startup
    probe passing is added to an install or scale-out once per pod (make bench: 10 s cost ~4 s)."""
    assert server(mysql_docs)["startupProbe"]["periodSeconds"] <= 2


def test_readiness_lag_bound_reaches_the_probe() -> None:
    """readiness.maxLagSeconds is the bound probe.sh applies to Seconds_Behind_*."""
    env = {e["name"]: e.get("value") for e in server(render({"readiness": {"maxLagSeconds": 7}}))["env"]}
    assert env["MAX_LAG_SECONDS"] == "7"


def test_probe_script_checks_freshness_threads_and_primary_writability(mysql_docs: list[Doc]) -> None:
    """The readiness logic: SQL thread Yes, heartbeat age within bound (threads and numeric lag without
    a heartbeat); primary not read-only."""
    script = next(d for d in mysql_docs if d["kind"] == "ConfigMap")["data"]["probe.sh"]
    for needle in (
        "[[ $io == Yes ]]",
        "[[ $sqlt == Yes ]]",
        "((lag <= max))",
        "((age <= max))",
        "FROM $HEARTBEAT_TABLE WHERE id = 1",
        "SELECT @@global.read_only;",
    ):
        assert needle in script


@pytest.mark.parametrize(
    ("flavor", "lines"),
    [
        ("mysql", ["admin_address = 127.0.0.1", "admin_port = 33062"]),
        ("mariadb", ["extra_port = 33062", "extra_max_connections = 16"]),
    ],
)
def test_servers_keep_a_port_outside_max_connections_for_probes(flavor: str, lines: list[str]) -> None:
    """MySQL's admin interface on loopback / MariaDB's extra_port: the probes' way in when the
    application holds every connection."""
    cnf = configmap(render({"flavor": flavor}))["server.cnf"].splitlines()
    for line in lines:
        assert line in cnf


@pytest.mark.parametrize("flavor", ["mysql", "mariadb"])
def test_probes_sidecar_and_exporter_connect_through_the_admin_port(flavor: str) -> None:
    """probe.sh and the sidecar go through lib.sh's local_sql/local_ping (admin port, socket as a
    fallback); the exporter scrapes 127.0.0.1:33062; the probe account exists on 127.0.0.1 too."""
    docs = render({"flavor": flavor, "metrics": {"enabled": True}})
    files = configmap(docs)
    assert '--port="$ADMIN_PORT"' in files["lib.sh"] and "ADMIN_PORT=${ADMIN_PORT:-33062}" in files["lib.sh"]
    probe = files["probe.sh"]
    assert 'local_ping "$PROBE_USER"' in probe
    assert 'sql "$PROBE_USER"' not in probe.replace('local_sql "$PROBE_USER"', "")
    assert "local_sql root" in files["sidecar.sh"]
    assert "'probe'@'127.0.0.1'" in files["lib.sh"]
    exporter = container(sts_spec(docs), "metrics")
    assert "--mysqld.address=127.0.0.1:33062" in exporter["args"]


def test_a_stale_replica_leaves_after_one_failed_readiness_check(mysql_docs: list[Doc]) -> None:
    """failureThreshold 1: out of mysql-read within maxLagSeconds plus one period."""
    assert server(mysql_docs)["readinessProbe"]["failureThreshold"] == 1


@pytest.mark.parametrize("flavor", ["mysql", "mariadb"])
def test_clone_stall_timeout_reaches_the_clone_and_the_sidecar(flavor: str) -> None:
    """clone.stallSeconds: how long a copy may move no data before the next donor is tried."""
    spec = sts_spec(render({"flavor": flavor, "clone": {"stallSeconds": 45}}))
    for name in ("clone", "sidecar"):
        assert env(container(spec, name))["CLONE_STALL_SECONDS"]["value"] == "45"
