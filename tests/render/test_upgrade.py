"""Upgrades: config changes roll the pods; immutable StatefulSet fields never change; PVCs kept."""

from __future__ import annotations

import pytest

from .render import Doc, container, containers, find, pod_specs, render, sts_spec

pytestmark = pytest.mark.render


def sts(docs: list[Doc]) -> Doc:
    return find(docs, "StatefulSet", "mysql")


def test_config_change_changes_the_pod_template_checksum(mysql_docs: list[Doc]) -> None:
    """Extra server settings reach running pods through a rolling update."""
    before = sts(mysql_docs)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    after = sts(render({"config": "[mysqld]\nmax_connections = 500\n"}))["spec"]["template"]["metadata"][
        "annotations"
    ]["checksum/config"]
    assert before != after


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCount": 5},
        {"config": "[mysqld]\nmax_connections = 500\n"},
        {"resources": {"server": {"requests": {"cpu": "1"}}}},
        {"metrics": {"enabled": True}},
        {"readiness": {"maxLagSeconds": 5}},
    ],
)
def test_upgrades_keep_selector_service_name_and_claim_templates(mysql_docs: list[Doc], values: dict) -> None:
    """helm upgrade never hits the StatefulSet's immutable fields."""
    old, new = sts(mysql_docs)["spec"], sts(render(values))["spec"]
    for field in ("selector", "serviceName", "volumeClaimTemplates", "podManagementPolicy"):
        assert old[field] == new[field], field


def test_claims_are_retained_by_default_and_sized_by_values(mysql_docs: list[Doc]) -> None:
    """Scale-down and uninstall keep the data; class and size come from persistence.*."""
    spec = sts(mysql_docs)["spec"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    claim = sts(render({"persistence": {"storageClass": "fast", "size": "20Gi"}}))["spec"][
        "volumeClaimTemplates"
    ][0]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"


def test_replica_count_and_scheduling_values_reach_the_statefulset() -> None:
    """replicaCount, nodeSelector, tolerations, priority class and default soft anti-affinity."""
    spec = sts(
        render(
            {
                "replicaCount": 1,
                "nodeSelector": {"disk": "ssd"},
                "tolerations": [{"key": "db", "operator": "Exists", "effect": "NoSchedule"}],
                "priorityClassName": "db-critical",
            }
        )
    )["spec"]
    assert spec["replicas"] == 1
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert pod["tolerations"][0]["key"] == "db"
    assert pod["priorityClassName"] == "db-critical"
    soft = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert soft[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def test_pdb_allows_one_pod_down_by_default(mysql_docs: list[Doc]) -> None:
    """Voluntary disruptions take at most one pod at a time."""
    assert find(mysql_docs, "PodDisruptionBudget", "mysql")["spec"]["maxUnavailable"] == 1
    pdb = find(render({"podDisruptionBudget": {"minAvailable": 2}}), "PodDisruptionBudget", "mysql")
    assert pdb["spec"] == {**pdb["spec"], "minAvailable": 2} and "maxUnavailable" not in pdb["spec"]


def test_values_reused_from_a_release_without_the_clone_key_still_render() -> None:
    """`helm upgrade --reuse-values` from 0.1.0 starts from that release's values: no `clone` map."""
    render({"clone": None, "mysql": {"backupImage": None}})


def test_every_container_requests_a_little_and_limits_nothing_by_default() -> None:
    """Default requests on every container of the pods and the helm test (not BestEffort), no limits
    (a memory limit kills the server); a user's null clears a request, a user's value replaces it."""
    docs = render({"metrics": {"enabled": True}})
    for name, spec in pod_specs(docs):
        for c in containers(spec):
            resources = c.get("resources", {})
            assert set(resources.get("requests", {})) == {"cpu", "memory"}, f"{name}/{c['name']}: {resources}"
            assert "limits" not in resources, f"{name}/{c['name']}: {resources}"
    cleared = sts_spec(render({"resources": {"server": {"requests": None}}}))
    assert "resources" not in container(cleared, "mysql")
    assert container(cleared, "sidecar")["resources"]["requests"] == {"cpu": "10m", "memory": "64Mi"}
    sized = sts_spec(
        render({"resources": {"server": {"requests": {"memory": "4Gi"}, "limits": {"cpu": "2"}}}})
    )
    assert container(sized, "mysql")["resources"] == {
        "requests": {"cpu": "100m", "memory": "4Gi"},
        "limits": {"cpu": "2"},
    }
