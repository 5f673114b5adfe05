"""The two flavors: images per container, server config per role, the air-gapped values."""

from __future__ import annotations

import pytest

from .render import AIRGAP_VALUES, CHART, Doc, container, containers, find, pod_specs, render

pytestmark = pytest.mark.render


def images(docs: list[Doc]) -> dict[str, tuple[str, str]]:
    """container name -> (image, pullPolicy) over every pod of the release."""
    return {
        f"{pod}/{c['name']}": (c["image"], c["imagePullPolicy"])
        for pod, spec in pod_specs(docs)
        for c in containers(spec)
    }


def test_mysql_flavor_runs_mysql_8_4_and_xtrabackup_8_4_pinned(mysql_docs: list[Doc]) -> None:
    """Server, init-config and the test use mysql:8.4.x; clone and sidecar use XtraBackup 8.4."""
    found = images(mysql_docs)
    for name in ("mysql/mysql", "mysql/init-config", "mysql-test-replication/test"):
        assert found[name][0].startswith("mysql:8.4."), found[name]
    for name in ("mysql/clone", "mysql/sidecar"):
        assert found[name][0].startswith("percona/percona-xtrabackup:8.4."), found[name]


def test_mariadb_flavor_runs_mariadb_11_4_pinned_everywhere(mariadb_docs: list[Doc]) -> None:
    """The MariaDB image carries mariadb-backup, so every container uses it."""
    found = images(mariadb_docs)
    assert len(found) == 5
    for name, (image, _policy) in found.items():
        assert image.startswith("mariadb:11.4."), f"{name} runs {image}"


def test_airgap_values_use_the_local_image_never_pulled_for_every_container() -> None:
    """`helm install mysql ./chart -f ci/values-airgap.yaml` pulls nothing, helm test included."""
    docs = render(files=[AIRGAP_VALUES])
    found = images(docs)
    assert set(found) == {
        "mysql/init-config",
        "mysql/clone",
        "mysql/mysql",
        "mysql/sidecar",
        "mysql-test-replication/test",
    }
    assert set(found.values()) == {("mysql-chart.local/mariadb:10.11", "Never")}
    spec = dict(pod_specs(docs))["mysql"]
    assert {e["value"] for c in containers(spec) for e in c["env"] if e["name"] == "FLAVOR"} == {"mariadb"}


def config_files(docs: list[Doc]) -> dict[str, str]:
    return find(docs, "ConfigMap", "mysql")["data"]


def test_mysql_replicas_run_super_read_only(mysql_docs: list[Doc]) -> None:
    """No account, root included, writes on a MySQL replica."""
    data = config_files(mysql_docs)
    assert "super_read_only = ON" in data["replica.cnf"]
    assert "super_read_only = OFF" in data["primary.cnf"]
    assert "gtid_mode = ON" in data["server.cnf"]
    assert "relay_log_recovery = ON" in data["server.cnf"]


def test_mariadb_replicas_run_read_only_and_accounts_lose_read_only_admin(mariadb_docs: list[Doc]) -> None:
    """MariaDB has no super_read_only: read_only plus REVOKE READ_ONLY ADMIN from root."""
    data = config_files(mariadb_docs)
    assert "read_only = ON" in data["replica.cnf"]
    assert "super_read_only" not in data["replica.cnf"].replace("no super_read_only", "")
    assert "REVOKE READ_ONLY ADMIN ON *.* FROM 'root'@'localhost', 'root'@'%';" in data["server.sh"]


@pytest.mark.parametrize("flavor", ["mysql", "mariadb"])
def test_scripts_ship_untemplated_and_are_run_with_bash(flavor: str) -> None:
    """Every container runs a chart script via bash; the ConfigMap holds the files verbatim."""
    docs = render({"flavor": flavor})
    data = config_files(docs)
    for script in sorted((CHART / "files").glob("*.sh")):
        assert data[script.name] == script.read_text(), script.name
    for _pod, spec in pod_specs(docs):
        for c in containers(spec):
            assert c["command"][:2] == ["bash", f"/opt/mysql-chart/{c['command'][1].rsplit('/', 1)[-1]}"]
            assert c["command"][1].endswith(".sh")
    volumes = {v["name"]: v for v in dict(pod_specs(docs))["mysql"]["volumes"]}
    assert volumes["scripts"]["configMap"]["defaultMode"] == 0o555


def test_sidecar_replicates_from_pod_zero_and_serves_backups_on_3307(mysql_docs: list[Doc]) -> None:
    """Replicas point at mysql-0.mysql; the sidecar listens on the backup port."""
    spec = dict(pod_specs(mysql_docs))["mysql"]
    sidecar = container(spec, "sidecar")
    assert {e["name"]: e.get("value") for e in sidecar["env"]}["PRIMARY_HOST"] == "mysql-0.mysql"
    assert sidecar["ports"] == [{"name": "backup", "containerPort": 3307}]
    assert [c["name"] for c in spec["initContainers"]] == ["init-config", "clone"]
    assert [c["name"] for c in spec["containers"]] == ["mysql", "sidecar"]


def test_extra_config_and_initial_database_reach_the_pods() -> None:
    """values.config lands last in the option file; auth.database/username become env."""
    docs = render(
        {"config": "[mysqld]\nmax_connections = 300\n", "auth": {"database": "app", "username": "app"}}
    )
    assert "max_connections = 300" in config_files(docs)["extra.cnf"]
    server = container(dict(pod_specs(docs))["mysql"], "mysql")
    env = {e["name"]: e for e in server["env"]}
    assert env["MYSQL_DATABASE"]["value"] == "app"
    assert env["MYSQL_USER"]["value"] == "app"
    assert env["MYSQL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "mysql-password"


def test_metrics_exporter_is_off_by_default_and_complete_when_on(mysql_docs: list[Doc]) -> None:
    """Exporter sidecar, Service, ServiceMonitor and PrometheusRule only on request."""
    assert "metrics" not in [c["name"] for c in dict(pod_specs(mysql_docs))["mysql"]["containers"]]
    docs = render(
        {
            "metrics": {
                "enabled": True,
                "serviceMonitor": {"enabled": True},
                "prometheusRule": {"enabled": True},
            }
        }
    )
    exporter = container(dict(pod_specs(docs))["mysql"], "metrics")
    assert exporter["ports"][0]["containerPort"] == 9104
    find(docs, "Service", "mysql-metrics")
    find(docs, "ServiceMonitor", "mysql")
    rule = find(docs, "PrometheusRule", "mysql")
    assert {r["alert"] for r in rule["spec"]["groups"][0]["rules"]} >= {
        "MySQLDown",
        "MySQLReplicationLagging",
    }
