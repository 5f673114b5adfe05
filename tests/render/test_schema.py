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
            {"auth": {"existingSecret": "s", "rootPassword": "x"}}, "existingSecret", id="secret-and-password"
        ),
        pytest.param(
            {"metrics": {"serviceMonitor": {"enabled": True}}}, "metrics.enabled", id="monitor-no-metrics"
        ),
        pytest.param({"podDisruptionBudget": {"minAvailable": 3}}, "minAvailable", id="pdb-blocks-all"),
    ],
)
def test_render_time_checks_reject_inconsistent_values(values: dict[str, Any], message: str) -> None:
    """templates/validate.yaml fails the render for combinations the schema cannot express."""
    assert message in render_error(values)


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
