"""The mission, typed the way users type it: write through mysql-0.mysql, scale to 5, read on mysql-3.mysql.

One release for the whole story; the tests run in file order and each step builds on the one before.
MariaDB starts on the previous LTS series, so that the image patch is the LTS upgrade users make
(10.11 -> 11.8); MySQL's patch swaps in a genuinely different build of the same release.
"""

from __future__ import annotations

import json

import pytest

from harness.cluster import Cluster
from harness.helm import Release
from harness.kube import container_status, exec_in_pod, pod_is_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CREATE_AND_INSERT = (
    "CREATE DATABASE IF NOT EXISTS test; "
    "CREATE TABLE test.messages (message VARCHAR(250)); "
    "INSERT INTO test.messages VALUES ('hello')"
)


@pytest.fixture(scope="module")
def release_values(kind_cluster: Cluster) -> dict[str, str]:
    """Install with the image the update starts from (MariaDB: the previous LTS series)."""
    return kind_cluster.image_update().install_values


def server_image_ids(release: Release) -> dict[str, str]:
    """pod -> the image ID its server container runs (what the node resolved, not the tag)."""
    core, namespace = release.kube.core, release.namespace
    return {
        pod: container_status(core.read_namespaced_pod(pod, namespace), "mysql").image_id
        for pod in release.pods()
    }


def test_client_pod_creates_test_messages_and_inserts_hello_through_mysql_0(release: Release) -> None:
    """`kubectl run mysql-client -i --rm --restart=Never -- mysql -h mysql-0.mysql` writes `hello`."""
    release.client(release.host(0), CREATE_AND_INSERT).ok()
    assert release.client(release.host(0), "SELECT message FROM test.messages").ok().lines == ["hello"]


def test_kubectl_scale_to_5_clones_mysql_3_and_mysql_4_and_makes_them_ready(release: Release) -> None:
    """`kubectl scale statefulset mysql --replicas=5`: mysql-3 and mysql-4 clone, replicate, get Ready."""
    release.cluster.kubectl(
        "scale", "statefulset", release.name, "--replicas=5", "--namespace", release.namespace
    )
    release.wait_rolled_out(replicas=5)
    for pod in (release.pod(3), release.pod(4)):
        assert pod_is_ready(release.kube.core.read_namespaced_pod(pod, release.namespace)), (
            f"{pod} is not Ready"
        )
        assert release.db.replication_running(pod), (
            f"{pod} does not replicate: {release.db.replica_status(pod)}"
        )
        assert release.db.query(pod, "SELECT message FROM test.messages") == [("hello",)]


def test_read_on_mysql_3_returns_hello(release: Release) -> None:
    """`mysql -h mysql-3.mysql -e "SELECT * FROM test.messages"` returns hello."""
    assert release.client(release.host(3), "SELECT * FROM test.messages").ok().lines == ["hello"]


def test_helm_test_after_kubectl_scale_checks_the_5_pods_that_run(release: Release) -> None:
    """`helm test` after the bare `kubectl scale` (the release still says replicaCount=3) checks the
    4 replicas that run, and says that the next `helm upgrade` sets 3 again."""
    result = release.test()
    assert result.returncode == 0, f"helm test failed:\n{result.stdout}\n{result.stderr}"
    assert "replication verified on 4 replica(s)" in result.stdout, result.stdout
    assert "replicaCount=3 (scaled outside helm?)" in result.stdout, result.stdout


def test_kubectl_patch_image_rolls_every_pod_and_keeps_data_and_replication(
    release: Release, table: str
) -> None:
    """`kubectl patch` of containers[0].image puts every pod on another image (replicas first, the
    primary last); hello stays, GTID sets and checksums agree, new writes replicate. MariaDB: the
    10.11 -> 11.8 upgrade, each pod's system tables upgraded by the chart."""
    core, namespace = release.kube.core, release.namespace
    release.db.query(release.primary, f"CREATE TABLE {table} (id INT PRIMARY KEY, body VARCHAR(64))")
    release.db.query(release.primary, f"INSERT INTO {table} VALUES (1, 'before the update'), (2, 'x')")
    old_uids = {pod: core.read_namespaced_pod(pod, namespace).metadata.uid for pod in release.pods()}
    old_ids = server_image_ids(release)
    image = release.cluster.image_update().image
    assert image != release.server_image(), f"the update image is the installed one: {image}"
    patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]
    release.cluster.kubectl(
        "patch",
        "statefulset",
        release.name,
        "--namespace",
        namespace,
        "--type=json",
        f"-p={json.dumps(patch)}",
    )
    release.wait_rolled_out(replicas=5)

    new_ids = server_image_ids(release)
    started = {}
    for pod, old_uid in old_uids.items():
        live = core.read_namespaced_pod(pod, namespace)
        assert live.metadata.uid != old_uid, f"{pod} was not replaced"
        assert live.spec.containers[0].image == image, f"{pod} runs {live.spec.containers[0].image}"
        assert new_ids[pod] != old_ids[pod], f"{pod} still runs image {old_ids[pod]}"
        assert release.db.query(pod, "SELECT message FROM test.messages") == [("hello",)], pod
        started[pod] = live.status.start_time
    assert max(started, key=lambda pod: started[pod]) == release.primary, f"pods started at {started}"

    if release.flavor.name == "mariadb":
        for pod in release.pods():
            version = str(release.db.scalar(pod, "SELECT VERSION()")).split("-")[0]
            marker = exec_in_pod(
                release.kube, namespace, pod, ["cat", "/var/lib/mysql/data/chart-server-version"],
                container="mysql",
            ).ok()  # fmt: skip
            assert marker.lines == [version], f"{pod}: system tables of {marker.lines}, server {version}"
    release.db.query(release.primary, f"UPDATE {table} SET body = 'after the update' WHERE id = 2")
    release.assert_replicas_match_primary(table)

    release.db.query(release.primary, "INSERT INTO test.messages VALUES ('after the rollout')")
    release.wait_replicas_applied()
    for pod in release.replicas():
        rows = release.db.query(pod, "SELECT message FROM test.messages ORDER BY message")
        assert rows == [("after the rollout",), ("hello",)], pod
    assert release.client(release.host(4), "SELECT COUNT(*) FROM test.messages").ok().lines == ["2"]
