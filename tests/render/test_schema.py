"""values.schema.json and validate.yaml reject bad values before anything is created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .render import CHART, HELM, HELM3, render, render_error, render_text

pytestmark = pytest.mark.render


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"replicaCount": 0}, "replicaCount", id="replicaCount-below-1"),
        pytest.param({"replicaCount": "3"}, "replicaCount", id="replicaCount-string"),
        pytest.param({"flavor": "postgres"}, "flavor", id="unknown-flavor"),
        pytest.param({"persistence": {"size": "8GB"}}, "size", id="malformed-storage-size"),
        pytest.param({"persistence": {"size": "lots"}}, "size", id="storage-size-words"),
        pytest.param({"replicas": 3}, "replicas", id="unknown-top-level-key"),
        pytest.param({"auth": {"rootPasword": "x"}}, "rootPasword", id="typo-in-auth"),
        pytest.param(
            {"mariadb": {"image": {"tag": "11.8.9", "pullpolicy": "Never"}}}, "pullpolicy", id="typo-deep"
        ),
        pytest.param({"mysql": {"image": {"pullPolicy": "Sometimes"}}}, "pullPolicy", id="bad-pull-policy"),
        pytest.param({"networkPolicy": {"enabled": "yes"}}, "enabled", id="bool-as-string"),
        pytest.param({"readiness": {"maxLagSeconds": -1}}, "maxLagSeconds", id="negative-lag"),
        pytest.param(
            {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"}}, "whenDeleted", id="retention"
        ),
        pytest.param(
            {"probes": {"startup": {"failureThreshold": 0}}}, "failureThreshold", id="zero-threshold"
        ),
        pytest.param({"clone": {"maxBandwidthMiB": -1}}, "maxBandwidthMiB", id="negative-clone-bandwidth"),
        pytest.param({"clone": {"maxBandwidthMiB": "100"}}, "maxBandwidthMiB", id="clone-bandwidth-string"),
        pytest.param({"clone": {"maxBandwidthMiB": 2.5}}, "maxBandwidthMiB", id="clone-bandwidth-fraction"),
        pytest.param({"clone": {"maxBandwidthMib": 100}}, "maxBandwidthMib", id="typo-in-clone"),
        pytest.param({"readiness": {"maxLagSeconds": 0}}, "maxLagSeconds", id="zero-lag-bound"),
        pytest.param({"terminationGracePeriodSeconds": 0}, "terminationGracePeriodSeconds", id="no-grace"),
        pytest.param({"terminationGracePeriodSeconds": 5}, "terminationGracePeriodSeconds", id="short-grace"),
        pytest.param({"podDisruptionBudget": {"maxUnavailable": 0}}, "maxUnavailable", id="pdb-max-0"),
        pytest.param({"podDisruptionBudget": {"maxUnavailable": "0%"}}, "maxUnavailable", id="pdb-max-0%"),
        pytest.param({"podDisruptionBudget": {"minAvailable": "120%"}}, "minAvailable", id="pdb-min-120%"),
        pytest.param({"auth": {"rootHost": "10.0.0.%' OR '1"}}, "rootHost", id="root-host-quote"),
        pytest.param({"auth": {"rootHost": ""}}, "rootHost", id="root-host-empty"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], message: str) -> None:
    """helm template fails with a message naming the offending key (Helm 4 and Helm 3)."""
    assert message in render_error(values)
    assert message in render_error(values, helm=HELM3)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"auth": {"username": "root"}}, "reserved", id="reserved-username"),
        pytest.param(
            {"auth": {"username": "clone"}},
            "reserved",
            id="reserved-clone-username",
        ),
        pytest.param({"auth": {"password": "x"}}, "auth.username is empty", id="password-without-user"),
        pytest.param(
            {"auth": {"rootHost": "localhost"}}, "auth.rootHost: root@localhost", id="root-host-localhost"
        ),
        pytest.param(
            {"auth": {"existingSecret": "s", "rootPassword": "x"}}, "existingSecret", id="secret-and-password"
        ),
        pytest.param(
            {"metrics": {"serviceMonitor": {"enabled": True}}}, "metrics.enabled", id="monitor-no-metrics"
        ),
        pytest.param({"podDisruptionBudget": {"minAvailable": 3}}, "minAvailable", id="pdb-blocks-all"),
        pytest.param(
            {"podDisruptionBudget": {"minAvailable": "100%"}}, "minAvailable 100%", id="pdb-min-100%"
        ),
        # 67 % of 3 pods, rounded up as Kubernetes does, is 3.
        pytest.param({"podDisruptionBudget": {"minAvailable": "67%"}}, "minAvailable 67%", id="pdb-min-67%"),
        pytest.param(
            {"auth": {"username": "app"}},
            'auth.username "app" needs auth.database',
            id="user-without-database",
        ),
        pytest.param(
            {"auth": {"rootPassword": "two\nlines"}},
            "auth.rootPassword contains a line break",
            id="root-newline",
        ),
        pytest.param(
            {"auth": {"username": "app", "database": "app", "password": "cr\rhere"}},
            "auth.password contains a line break",
            id="user-password-carriage-return",
        ),
        pytest.param(
            {"config": "[mysqld]\nserver-id = 7"}, "config sets server-id = 7", id="config-server-id"
        ),
        pytest.param({"config": "[mysqld]\nsuper_read_only=0"}, "super_read_only=0", id="config-read-only"),
        pytest.param({"config": "[mysqld]\n  sync-binlog = 0"}, "sync-binlog = 0", id="config-sync-binlog"),
        pytest.param(
            {"config": "[mysqld]\nloose-gtid_mode=OFF"}, "loose-gtid_mode=OFF", id="config-gtid-mode"
        ),
        pytest.param({"config": "[mysqld]\nskip-log-bin"}, "skip-log-bin", id="config-no-binlog"),
        pytest.param(
            {"flavor": "mariadb", "config": "[mysqld]\ngtid_strict_mode = OFF"},
            "gtid_strict_mode",
            id="config-strict",
        ),
        pytest.param(
            {"flavor": "mariadb", "mariadb": {"backupImage": {"tag": "11.8.8"}}},
            'mariadb.backupImage.tag "11.8.8" differs from mariadb.image.tag',
            id="backup-tag-mismatch",
        ),
    ],
)
def test_render_time_checks_reject_inconsistent_values(values: dict[str, Any], message: str) -> None:
    """templates/validate.yaml fails the render for combinations the schema cannot express."""
    assert message in render_error(values)


def test_a_release_name_too_long_for_the_statefulsets_pods_is_refused_with_the_limit() -> None:
    """Release `<47 characters>` gives objects named `<47>-mysql` (53): the StatefulSet's pods would never
    appear (their controller-revision-hash label would exceed 63), so the render fails and says why;
    46 characters render."""
    assert "is 53 characters; at most 52 fit" in render_error(release="r" * 47)
    assert render_text(release="r" * 46)


@pytest.mark.parametrize(
    "config",
    [
        "[mysqld]\nmax_connections = 500\nlog_bin_trust_function_creators = 1",
        "[mysqld]\nserver_id_bits = 32\ninnodb_buffer_pool_size = 1G",
        "[mysqld]\n# sync_binlog = 0 would be refused; a comment is not\nlong_query_time = 2",
    ],
)
def test_config_that_leaves_the_chart_settings_alone_renders(config: str) -> None:
    """Settings whose names only start like a chart-owned one, and comments, pass the config check."""
    assert config.splitlines()[1] in render_text({"config": config})


# What a values file written for chart 0.1.0 says about MySQL's former backup image.
XTRABACKUP_IMAGE = {
    "repository": "percona/percona-xtrabackup",
    "tag": "8.4.0-5.1",
    "pullPolicy": "IfNotPresent",
}


@pytest.mark.parametrize("helm", [HELM, HELM3], ids=["helm4", "helm3"])
def test_removed_mysql_backup_image_is_refused_with_a_clear_message(helm: Path) -> None:
    """mysql.backupImage (XtraBackup, chart 0.1.0) fails the render, saying why and how to drop it."""
    message = render_error({"mysql": {"backupImage": XTRABACKUP_IMAGE}}, helm=helm)
    assert "mysql.backupImage was removed in chart 0.2.0" in message
    assert "clone plugin" in message
    assert "--set mysql.backupImage=null" in message


def test_nulled_mysql_backup_image_renders_without_it() -> None:
    """The way out the message gives (mysql.backupImage=null) renders the one-image pods."""
    text = render_text({"mysql": {"backupImage": None}})
    assert "percona" not in text


def test_valid_edge_values_render() -> None:
    """The smallest legal values still render: one pod, decimal sizes, PDB by percentage."""
    render(
        {
            "replicaCount": 1,
            "persistence": {"size": "1.5Gi"},
            "podDisruptionBudget": {"maxUnavailable": "50%"},
        }
    )


def test_schema_forbids_unknown_keys_at_every_level_the_chart_owns() -> None:
    """additionalProperties false on every object that is not a pass-through Kubernetes type."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    passthrough = {"affinity", "tolerations", "topologySpreadConstraints", "global", "claims"}
    open_objects: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            if node.get("additionalProperties") is not False:
                open_objects.append(path)
            for key, child in node["properties"].items():
                if key not in passthrough:
                    walk(child, f"{path}.{key}")
        for key, child in node.get("definitions", {}).items():
            walk(child, f"#{key}")

    walk(schema, "")
    assert open_objects == []
