"""A release's life on its claims, with nothing secret said along the way.

Claims outlive pods, and the chart picks them up again: scaling 3 -> 5 -> 3 -> 5 keeps mysql-3's
and mysql-4's claims (whenScaled: Retain), and the returning replicas catch up on what they missed;
`helm uninstall` keeps every claim and the Secret (resource-policy keep), and `helm install` of the
same release brings the data, the passwords and replication back; a replica whose claim is lost
clones again and `helm test` passes.

Through all of it (installs, clones on scale-out and on the lost claim, the test pod), no password or
token of the release's Secret appears in any container's log (earlier runs of restarted containers,
and the pods before the uninstall, included), in any Event of the namespace, in Helm's output, or in
the argument list of any process on the cluster's nodes, sampled every 0.2 s from before the first
install until the end.

One release with an application account (so `mysql-password` exists too), 3 pods, then 5; the tests
run in file order (each goes on from the state the one before left).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from harness.cluster import ArgsSampler, Cluster
from harness.helm import ROOT_PASSWORD_KEY, SECRET_KEYS, Release
from harness.kube import TIMEOUTS, Kube, Pending, container_logs, wait_until

pytestmark = [pytest.mark.lifecycle, pytest.mark.slow]

TABLE = "test.lifecycle"


@pytest.fixture(scope="module")
def release_values() -> dict[str, str]:
    """A primary, two replicas and an application account."""
    return {"replicaCount": "3", "auth.username": "app", "auth.database": "app"}


@pytest.fixture(scope="module")
def sampler(kind_cluster: Cluster, kube: Kube, namespace: str) -> Iterator[ArgsSampler]:
    """Process arguments on every node, sampled from before the release is installed."""
    nodes = [node.metadata.name for node in kube.core.list_node().items]
    sampler = kind_cluster.sample_process_args(nodes)
    yield sampler
    sampler.stop()


@pytest.fixture(scope="module")
def release(sampler: ArgsSampler, release: Release) -> Release:
    """The conftest's release, installed once the sampler runs."""
    return release


@pytest.fixture(scope="module")
def said() -> dict[str, str]:
    """Where -> text: what the release's pods logged and Helm printed before the last test looks
    (the pods before the uninstall are gone by then)."""
    return {}


def insert(release: Release, body: str) -> None:
    release.db.query(release.primary, f"INSERT INTO {TABLE} (body) VALUES (%s)", (body,))


def bodies(release: Release, pod: str) -> list[str]:
    return [row[0] for row in release.db.query(pod, f"SELECT body FROM {TABLE} ORDER BY id")]


def claims(release: Release) -> set[str]:
    items = release.kube.core.list_namespaced_persistent_volume_claim(release.namespace).items
    return {claim.metadata.name for claim in items}


def event_texts(release: Release) -> dict[str, str]:
    """'Kind/name reason #n' -> the message of every Event in the namespace."""
    events = release.kube.core.list_namespaced_event(release.namespace).items
    return {
        f"{e.involved_object.kind}/{e.involved_object.name} {e.reason} #{i}": e.message or ""
        for i, e in enumerate(events)
    }


def test_replicas_scaled_away_come_back_on_their_claims_and_catch_up(
    release: Release, said: dict[str, str]
) -> None:
    said["helm status"] = release.helm("status", release.name).stdout
    db = release.db
    db.query(release.primary, "CREATE DATABASE IF NOT EXISTS test")
    db.query(release.primary, f"CREATE TABLE {TABLE} (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT)")
    insert(release, "before the scale-out")
    release.upgrade({"replicaCount": "5"})
    release.assert_replicas_match_primary(TABLE)

    release.upgrade({"replicaCount": "3"})
    assert {release.claim(i) for i in range(5)} <= claims(release), "a claim went with its pod"
    insert(release, "while mysql-3 and mysql-4 were away")

    release.upgrade({"replicaCount": "5"})
    release.assert_replicas_match_primary(TABLE)
    for pod in (release.pod(3), release.pod(4)):
        clone_log = release.kube.core.read_namespaced_pod_log(pod, release.namespace, container="clone")
        assert "datadir already complete: nothing to clone" in clone_log, f"{pod} cloned anew: {clone_log}"
        assert bodies(release, pod) == ["before the scale-out", "while mysql-3 and mysql-4 were away"]


def test_uninstall_then_install_brings_data_passwords_and_replication_back(
    release: Release, said: dict[str, str]
) -> None:
    core, namespace = release.kube.core, release.namespace
    password = release.secret_value(ROOT_PASSWORD_KEY)
    before = {pod: release.db.checksum(pod, TABLE) for pod in release.pods()}
    logs = container_logs(release.kube, release.namespace)
    said.update({f"before the uninstall: {name}": text for name, text in logs.items()})

    release.uninstall()

    def pods_gone() -> object:
        pods = release.kube.pods(namespace)
        left = [p.metadata.name for p in pods if p.metadata.name.startswith(f"{release.name}-")]
        return Pending(f"pods left: {left}") if left else True

    wait_until(pods_gone, timeout=TIMEOUTS.namespace_gone, what="the release's pods gone")
    assert {release.claim(i) for i in range(5)} <= claims(release)
    assert core.read_namespaced_secret(release.name, namespace), "the Secret went with the release"

    release.install()  # replicaCount 5, as the last upgrade left it
    release.reconnect()
    assert release.secret_value(ROOT_PASSWORD_KEY) == password, "the reinstall made a new root password"
    assert {pod: release.db.checksum(pod, TABLE) for pod in release.pods()} == before
    insert(release, "after the reinstall")
    release.assert_replicas_match_primary(TABLE)
    assert bodies(release, release.pod(4))[-1] == "after the reinstall"


def test_no_secret_in_logs_events_helm_output_or_process_arguments(
    release: Release, sampler: ArgsSampler, said: dict[str, str]
) -> None:
    secret = release.kube.core.read_namespaced_secret(release.name, release.namespace)
    assert set(secret.data) == SECRET_KEYS, sorted(secret.data)
    values = {key: base64.b64decode(value).decode() for key, value in secret.data.items()}
    assert all(len(value) >= 16 for value in values.values()), "a generated secret is shorter than 16"

    wait_until(release.delete_claim_and_pod(1), timeout=TIMEOUTS.rollout, what="mysql-1 cloned again")
    tested = release.test()
    assert tested.returncode == 0, tested.stdout + tested.stderr
    said["helm test"] = tested.stdout + tested.stderr
    release.wait_replicas_applied()
    args = sampler.stop()

    logs, events = container_logs(release.kube, release.namespace), event_texts(release)
    # The scans saw what they should: the servers' command lines, the clones of the scale-out and of
    # the lost claim, the test pod, the pods before the uninstall.
    server = release.flavor.server
    assert any(arg.endswith(server) for arg in args), f"no {server} among {len(args)} arguments"
    assert {f"before the uninstall: {release.pod(i)}/clone" for i in range(5)} <= set(said), sorted(said)
    assert "datadir cloned from" in logs[f"{release.pod(1)}/clone"], logs[f"{release.pod(1)}/clone"]
    assert any(name.startswith(f"{release.name}-test") for name in logs), sorted(logs)
    assert any("Scheduled" in name for name in events), sorted(events)

    places = {
        **{f"log {name}": text for name, text in logs.items()},
        **{f"event {name}": text for name, text in events.items()},
        **said,
        "process arguments": "\n".join(args),
    }
    leaks = [(key, place) for key, value in values.items() for place, text in places.items() if value in text]
    assert not leaks, f"secret values found (key, where): {leaks}"
