"""The two flavors: images per container, how replicas clone, server config, the air-gapped values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .render import (
    AIRGAP_MARIADB_VALUES,
    AIRGAP_VALUES,
    CHART,
    MYSQL_8_4_VALUES,
    Doc,
    container,
    containers,
    env,
    find,
    pod_specs,
    render,
    render_text,
    sts_spec,
)

pytestmark = pytest.mark.render


def images(docs: list[Doc]) -> dict[str, tuple[str, str]]:
    """container name -> (image, pullPolicy) over every pod of the release."""
    return {
        f"{pod}/{c['name']}": (c["image"], c["imagePullPolicy"])
        for pod, spec in pod_specs(docs)
        for c in containers(spec)
    }


POD_CONTAINERS = {
    "mysql/init-config",
    "mysql/clone",
    "mysql/mysql",
    "mysql/sidecar",
    "mysql-test-replication/test",
}


def test_mysql_flavor_runs_mysql_9_7_pinned_everywhere(mysql_docs: list[Doc]) -> None:
    """MySQL 9.7 LTS in every container: the clone plugin is in the server, no backup image."""
    found = images(mysql_docs)
    assert set(found) == POD_CONTAINERS
    for name, (image, _policy) in found.items():
        assert image.startswith("mysql:9.7."), f"{name} runs {image}"
    assert len({image for image, _policy in found.values()}) == 1
    assert "percona" not in render_text()


def test_mysql_8_4_tag_runs_the_same_pods_with_mysql_8_4_everywhere(mysql_docs: list[Doc]) -> None:
    """MySQL 8.4 LTS stays supported: an 8.4 tag changes the image of every container, nothing else."""
    docs = render(files=[MYSQL_8_4_VALUES])
    assert set(images(docs).values()) == {("mysql:8.4.7", "IfNotPresent")}
    default = images(mysql_docs)["mysql/mysql"][0]

    def without_secrets(objects: list[Doc]) -> list[Doc]:
        return [d for d in objects if d["kind"] != "Secret"]

    swapped = json.loads(json.dumps(without_secrets(docs)).replace('"mysql:8.4.7"', f'"{default}"'))
    assert swapped == without_secrets(mysql_docs)


def test_mariadb_flavor_runs_mariadb_11_8_pinned_everywhere(mariadb_docs: list[Doc]) -> None:
    """The MariaDB image carries mariadb-backup, so every container uses it."""
    found = images(mariadb_docs)
    assert set(found) == POD_CONTAINERS
    for name, (image, _policy) in found.items():
        assert image.startswith("mariadb:11.8."), f"{name} runs {image}"


@pytest.mark.parametrize(
    ("values_file", "image", "flavor"),
    [
        pytest.param(AIRGAP_VALUES, "mysql-chart.local/mysql:9.7", "mysql", id="values-airgap"),
        pytest.param(
            AIRGAP_MARIADB_VALUES, "mysql-chart.local/mariadb:11.8", "mariadb", id="values-airgap-mariadb"
        ),
    ],
)
def test_airgap_values_use_the_local_image_never_pulled_for_every_container(
    values_file: Path, image: str, flavor: str
) -> None:
    """`helm install mysql ./chart -f ci/values-airgap*.yaml` pulls nothing, helm test included."""
    docs = render(files=[values_file])
    found = images(docs)
    assert set(found) == POD_CONTAINERS
    assert set(found.values()) == {(image, "Never")}
    for pod, spec in pod_specs(docs):
        for c in containers(spec):
            assert env(c)["FLAVOR"]["value"] == flavor, f"{pod}/{c['name']}"


@pytest.mark.parametrize("values_file", [AIRGAP_VALUES, AIRGAP_MARIADB_VALUES], ids=lambda p: p.stem)
def test_airgap_values_run_the_locally_built_exporter_when_metrics_are_on(values_file: Path) -> None:
    """metrics.enabled=true on the air-gapped cluster runs the exporter built from Debian's package."""
    docs = render({"metrics": {"enabled": True}}, files=[values_file])
    spec = find(docs, "StatefulSet", "mysql")["spec"]["template"]["spec"]
    exporter = next(c for c in spec["containers"] if c["name"] == "metrics")
    image = ("mysql-chart.local/mysqld-exporter:0.17.2", "Never")
    assert (exporter["image"], exporter["imagePullPolicy"]) == image


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
    assert "REVOKE READ_ONLY ADMIN ON *.* FROM 'root'@'localhost', 'root'@'$root_host';" in data["server.sh"]


@pytest.mark.parametrize("flavor", ["mysql", "mariadb"])
def test_scripts_ship_untemplated_and_are_run_with_bash(flavor: str) -> None:
    """Every container runs a chart script via bash; the ConfigMap holds the files verbatim. Server
    pods run the pod's own copy (init-config runs from the ConfigMap and makes it); the helm test
    pod, new each time, runs the ConfigMap."""
    docs = render({"flavor": flavor})
    data = config_files(docs)
    for script in sorted((CHART / "files").glob("*.sh")):
        assert data[script.name] == script.read_text(), script.name
    for pod, spec in pod_specs(docs):
        for c in containers(spec):
            mounted = "/opt/mysql-chart-release" if c["name"] == "init-config" else "/opt/mysql-chart"
            assert c["command"][:2] == ["bash", f"{mounted}/{c['command'][1].rsplit('/', 1)[-1]}"], pod
            assert c["command"][1].endswith(".sh")
    volumes = {v["name"]: v for v in dict(pod_specs(docs))["mysql"]["volumes"]}
    assert volumes["chart-files"]["configMap"]["defaultMode"] == 0o555
    assert volumes["scripts"] == {"name": "scripts", "emptyDir": {}}


def test_mysql_sidecar_replicates_from_pod_zero_and_opens_no_backup_port(mysql_docs: list[Doc]) -> None:
    """Replicas point at mysql-0 by a name the certificate covers (TLS is on by default); MySQL
    donors serve clones on 3306, so no port 3307."""
    spec = sts_spec(mysql_docs)
    sidecar = container(spec, "sidecar")
    assert env(sidecar)["PRIMARY_HOST"]["value"] == "mysql-0.mysql.default.svc"
    assert "ports" not in sidecar
    assert "BACKUP_TOKEN" not in env(sidecar)
    assert [c["name"] for c in spec["initContainers"]] == ["init-config", "clone"]
    assert [c["name"] for c in spec["containers"]] == ["mysql", "sidecar"]


def test_mariadb_sidecar_serves_backups_on_3307_with_the_token(mariadb_docs: list[Doc]) -> None:
    """MariaDB donors stream mariadb-backup from the sidecar, to peers that know the backup token."""
    spec = sts_spec(mariadb_docs)
    sidecar = container(spec, "sidecar")
    assert env(sidecar)["PRIMARY_HOST"]["value"] == "mysql-0.mysql.default.svc"
    assert sidecar["ports"] == [{"name": "backup", "containerPort": 3307}]
    assert env(sidecar)["BACKUP_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "mysql", "key": "backup-token"}
    }
    # The donor paces its stream to clone.maxBandwidthMiB (0: no cap).
    assert env(sidecar)["CLONE_MAX_BANDWIDTH_MIB"]["value"] == "0"
    assert [c["name"] for c in spec["initContainers"]] == ["init-config", "clone"]
    assert [c["name"] for c in spec["containers"]] == ["mysql", "sidecar"]


def test_mysql_clone_logs_in_as_the_clone_account_without_the_backup_token(mysql_docs: list[Doc]) -> None:
    """The clone plugin connects to the donor as `clone` with the backup password; no stream, no token."""
    clone = env(container(sts_spec(mysql_docs), "clone"))
    assert clone["MYSQL_BACKUP_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "mysql", "key": "mysql-backup-password"}
    }
    assert "BACKUP_TOKEN" not in clone
    assert clone["FLAVOR"]["value"] == "mysql"


def test_mariadb_clone_sends_the_backup_token_and_holds_no_donor_password(mariadb_docs: list[Doc]) -> None:
    """The recipient only proves it belongs to the release; the donor's sidecar logs in locally."""
    clone = env(container(sts_spec(mariadb_docs), "clone"))
    assert clone["BACKUP_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "mysql", "key": "backup-token"}}
    # Only the replication account's, which a primary recovering a lost datadir reads peers with.
    assert [name for name in clone if "PASSWORD" in name] == ["MYSQL_REPLICATION_PASSWORD"]
    assert "CLONE_MAX_BANDWIDTH_MIB" not in clone


def test_clone_bandwidth_cap_reaches_the_clone_and_the_sidecar(mysql_docs: list[Doc]) -> None:
    """clone.maxBandwidthMiB (0: no cap) is CLONE_MAX_BANDWIDTH_MIB wherever a clone can run."""
    capped = sts_spec(render({"clone": {"maxBandwidthMiB": 50}}))
    for name in ("clone", "sidecar"):
        assert env(container(sts_spec(mysql_docs), name))["CLONE_MAX_BANDWIDTH_MIB"]["value"] == "0"
        assert env(container(capped, name))["CLONE_MAX_BANDWIDTH_MIB"]["value"] == "50"


def test_mysql_servers_load_the_clone_plugin_and_start_without_the_x_plugin(
    mysql_docs: list[Doc], mariadb_docs: list[Doc]
) -> None:
    """Every MySQL pod can donate a clone; `loose-` lets builds without mysqlx (Debian's) start."""
    lines = [line.strip() for line in config_files(mysql_docs)["server.cnf"].splitlines()]
    assert "plugin-load-add = mysql_clone.so" in lines
    assert "loose-mysqlx = OFF" in lines
    assert "mysqlx = OFF" not in lines
    assert "mysql_clone" not in config_files(mariadb_docs)["server.cnf"]


def test_extra_config_and_initial_database_reach_the_pods() -> None:
    """values.config lands last in the option file; auth.database/username become env."""
    docs = render(
        {"config": "[mysqld]\nmax_connections = 300\n", "auth": {"database": "app", "username": "app"}}
    )
    assert "max_connections = 300" in config_files(docs)["extra.cnf"]
    server = env(container(sts_spec(docs), "mysql"))
    assert server["MYSQL_DATABASE"]["value"] == "app"
    assert server["MYSQL_USER"]["value"] == "app"
    assert server["MYSQL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "mysql-password"


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
