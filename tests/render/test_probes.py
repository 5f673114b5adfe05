"""Probes: exec scripts; startup budget configurable; readiness bound to replication lag."""

from __future__ import annotations

import pytest

from .render import Doc, container, pod_specs, render

pytestmark = pytest.mark.render


def server(docs: list[Doc]) -> Doc:
    return container(dict(pod_specs(docs))["mysql"], "mysql")


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
