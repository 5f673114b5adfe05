"""values.schema.json and validate.yaml reject bad values before anything is created."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .render import CHART, HELM3, render, render_error

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
            {"mariadb": {"image": {"tag": "11.4.8", "pullpolicy": "Never"}}}, "pullpolicy", id="typo-deep"
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
