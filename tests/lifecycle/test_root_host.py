"""Root narrowed to the pod network (`auth.rootHost`): pods of the namespace connect as root and
`helm test` passes; a connection from outside the pattern (kubectl port-forward arrives from
127.0.0.1 inside the pod) is refused; the chart itself needs no remote root (replication, probes);
an upgrade that would change the host is refused before anything changes.

One release of 2 pods; the tests run in file order.
"""

from __future__ import annotations

import ipaddress

import pymysql
import pytest

from harness.helm import Release
from harness.kube import Kube

pytestmark = [pytest.mark.lifecycle, pytest.mark.slow]


@pytest.fixture(scope="module")
def pod_network(kube: Kube) -> str:
    """The pods' addresses as a host pattern, e.g. '10.244.%': the first two octets of every node's
    podCIDR (a /16 split into one range per node)."""
    prefixes = {
        ".".join(str(ipaddress.ip_network(node.spec.pod_cidr).network_address).split(".")[:2])
        for node in kube.core.list_node().items
    }
    assert len(prefixes) == 1, f"the nodes' pod ranges share no /16: {prefixes}"
    return f"{prefixes.pop()}.%"


@pytest.fixture(scope="module")
def release_values(pod_network: str) -> dict[str, str]:
    """A primary and one replica; root's network account only for the pod network."""
    return {"replicaCount": "2", "auth.rootHost": pod_network}


def test_helm_test_passes_with_root_narrowed_to_the_pod_network(release: Release) -> None:
    """`helm test` (root, from its pod: write through mysql-primary, read on the replica) passes:
    the sidecar started replication and the probes made both pods Ready without remote root."""
    result = release.test()
    assert result.returncode == 0, f"helm test failed:\n{result.stdout}\n{result.stderr}"
    assert "replication verified on 1 replica(s)" in result.stdout, result.stdout


def test_a_pod_connects_as_root_through_the_narrowed_account(release: Release, pod_network: str) -> None:
    """A client pod (on the pod network) is root@'<pod network>' on the primary and the replica."""
    for host in (release.host(0), release.host(1)):
        result = release.client(host, "SELECT CURRENT_USER()").ok()
        assert result.lines == [f"root@{pod_network}"], result.stdout


def test_root_from_outside_the_pattern_is_refused(release: Release) -> None:
    """kubectl port-forward reaches the server from 127.0.0.1, outside the pattern: root's
    password is refused there (1045), on every pod."""
    for pod in release.pods():
        with pytest.raises(pymysql.err.OperationalError) as refused:
            release.db.query(pod, "SELECT 1")
        assert refused.value.args[0] == 1045, refused.value


def test_an_upgrade_changing_root_host_is_refused_before_anything_changes(
    release: Release, pod_network: str
) -> None:
    """The account lives in the datadir: `helm upgrade --set auth.rootHost=%` fails at render time
    naming the current account and how to rename it; the StatefulSet is untouched."""
    generation = release.statefulset().metadata.generation
    result = release.try_upgrade({"auth.rootHost": "%"})
    assert result.returncode != 0, result.stdout
    assert f"root network account is root@'{pod_network}'" in result.stderr, result.stderr
    assert "RENAME USER" in result.stderr, result.stderr
    assert release.statefulset().metadata.generation == generation
