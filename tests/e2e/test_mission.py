"""The mission, typed the way users type it: write through mysql-0.mysql, scale to 5, read on mysql-3.mysql.

One release for the whole story; the tests run in file order and each step builds on the one before.
"""

from __future__ import annotations

import json

import pytest

from harness.helm import Release
from harness.kube import pod_is_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CREATE_AND_INSERT = (
    "CREATE DATABASE IF NOT EXISTS test; "
    "CREATE TABLE test.messages (message VARCHAR(250)); "
    "INSERT INTO test.messages VALUES ('hello')"
)


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


def test_kubectl_patch_image_rolls_every_pod_and_keeps_data_and_replication(release: Release) -> None:
    """`kubectl patch` of containers[0].image replaces every pod; hello stays and new writes replicate."""
    core, namespace = release.kube.core, release.namespace
    old_uids = {pod: core.read_namespaced_pod(pod, namespace).metadata.uid for pod in release.pods()}
    image = release.cluster.update_image(release.server_image())
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

    for pod, old_uid in old_uids.items():
        live = core.read_namespaced_pod(pod, namespace)
        assert live.metadata.uid != old_uid, f"{pod} was not replaced"
        assert live.spec.containers[0].image == image, f"{pod} runs {live.spec.containers[0].image}"
        assert release.db.query(pod, "SELECT message FROM test.messages") == [("hello",)], pod

    release.db.query(release.primary, "INSERT INTO test.messages VALUES ('after the rollout')")
    gtid = release.db.gtid_executed(release.primary)
    for pod in release.replicas():
        release.db.wait_for_gtid(pod, gtid)
        rows = release.db.query(pod, "SELECT message FROM test.messages ORDER BY message")
        assert rows == [("after the rollout",), ("hello",)], pod
    assert release.client(release.host(4), "SELECT COUNT(*) FROM test.messages").ok().lines == ["2"]
