"""The chart's NetworkPolicy (chart/ci/networkpolicy-values.yaml): 3306 for labelled clients and peers, 3307
(MariaDB's backup stream) for peers only.

Marked `netpol`, not `e2e` (`make netpol`, part of `make test`): it needs a CNI that enforces
NetworkPolicy: kindnet where images can be pulled, the air-gapped node image's kube-router (README.md).
On a cluster that enforces none the deny cases fail, as they should.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cluster import CHART
from harness.helm import MYSQL_UID, Release
from harness.kube import run_client_pod

pytestmark = [pytest.mark.netpol, pytest.mark.slow]

SCENARIO = CHART / "ci" / "networkpolicy-values.yaml"
NOT_ENFORCED = "a port the policy closes answered: does this cluster's CNI enforce NetworkPolicy?"


def flatten(values: dict, prefix: str = "") -> dict[str, str]:
    """{"a": {"b": True}} -> {"a.b": "true"}: a values file as `--set` pairs."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return flat


@pytest.fixture(scope="module")
def release_values() -> dict[str, str]:
    """The chart's own NetworkPolicy scenario: policy on, 3306 only from labelled clients."""
    return flatten(yaml.safe_load(Path(SCENARIO).read_text()))


def probe(host: str, port: int) -> str:
    """Shell that prints `<host>:<port> open` or `... closed` after a 5 s connect attempt."""
    return (
        f"timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>/dev/null "
        f'&& echo "{host}:{port} open" || echo "{host}:{port} closed"'
    )


def test_labelled_client_reaches_3306_but_not_the_backup_port_3307(release: Release) -> None:
    """A pod labelled `mysql-client=true` connects to mysql-0.mysql:3306, and (MariaDB) not to its
    backup port 3307, where the sidecar listens. MySQL serves clones from the server on 3306 and
    nothing listens on 3307, so that half would pass on any cluster: it is MariaDB's alone."""
    host = release.host(0)
    ports = [3306, 3307] if release.db.flavor.name == "mariadb" else [3306]
    lines = release.client_script("; ".join(probe(host, port) for port in ports)).ok().lines
    expected = [f"{host}:3306 open"] + [f"{host}:{port} closed" for port in ports[1:]]
    assert lines == expected, NOT_ENFORCED


def test_unlabelled_pod_cannot_reach_3306(release: Release) -> None:
    """A pod without the client label gets no connection to mysql-0.mysql:3306 or to mysql-read."""
    targets = [(release.host(0), 3306), (f"{release.name}-read", 3306)]
    script = "; ".join(probe(host, port) for host, port in targets)
    result = run_client_pod(
        release.cluster, release.namespace, ["sh", "-c", script],
        image=release.server_image(), uid=MYSQL_UID, name_prefix="unlabelled", labels={},
    ).ok()  # fmt: skip
    assert result.lines == [f"{host}:{port} closed" for host, port in targets], NOT_ENFORCED


def test_peers_still_clone_and_replicate_under_the_policy(release: Release) -> None:
    """Under the policy, `helm upgrade --set replicaCount=4` clones mysql-3 (MariaDB: stream on 3307, MySQL:
    clone plugin on 3306); `helm test` passes."""
    release.db.query(release.primary, "CREATE DATABASE IF NOT EXISTS test")
    release.db.query(release.primary, "CREATE TABLE test.netpol (id INT PRIMARY KEY)")
    release.db.query(release.primary, "INSERT INTO test.netpol VALUES (1)")
    release.upgrade({"replicaCount": "4"})
    assert release.db.replication_running(release.pod(3))
    assert release.db.query(release.pod(3), "SELECT id FROM test.netpol") == [(1,)]
    result = release.test()
    assert result.returncode == 0, f"helm test failed:\n{result.stdout}\n{result.stderr}"
