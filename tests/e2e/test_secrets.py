"""No secret of a release leaks: through an install, a scale-out (a new replica clones), a rebuilt
replica (a lost claim, cloned again) and `helm test`, no password or token of the release's Secret
appears in any container's log (earlier runs of restarted containers included), in any Event of the
namespace, in Helm's output, or in the argument list of any process on the cluster's nodes, sampled
every 0.2 s from before the install until the end.

One release with an application account (so `mysql-password` exists too), 2 pods, then 3.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from harness.cluster import ArgsSampler, Cluster
from harness.helm import SECRET_KEYS, Release
from harness.kube import TIMEOUTS, Kube, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def release_values() -> dict[str, str]:
    """A primary and one replica, and an application account."""
    return {"replicaCount": "2", "auth.username": "app", "auth.database": "app"}


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


def container_logs(release: Release) -> dict[str, str]:
    """'pod/container[/previous]' -> log, for every init and app container of every pod in the
    namespace (the helm test pod too); the previous run's log when the container restarted."""
    core, logs = release.kube.core, {}
    for pod in release.kube.pods(release.namespace):
        name = pod.metadata.name
        statuses = (pod.status.init_container_statuses or []) + (pod.status.container_statuses or [])
        for status in statuses:
            logs[f"{name}/{status.name}"] = core.read_namespaced_pod_log(
                name, release.namespace, container=status.name
            )
            if status.restart_count:
                logs[f"{name}/{status.name}/previous"] = core.read_namespaced_pod_log(
                    name, release.namespace, container=status.name, previous=True
                )
    return logs


def event_texts(release: Release) -> dict[str, str]:
    """'Kind/name reason #n' -> the message of every Event in the namespace."""
    events = release.kube.core.list_namespaced_event(release.namespace).items
    return {
        f"{e.involved_object.kind}/{e.involved_object.name} {e.reason} #{i}": e.message or ""
        for i, e in enumerate(events)
    }


def test_no_secret_in_logs_events_helm_output_or_process_arguments(
    release: Release, sampler: ArgsSampler
) -> None:
    secret = release.kube.core.read_namespaced_secret(release.name, release.namespace)
    assert set(secret.data) == SECRET_KEYS, sorted(secret.data)
    values = {key: base64.b64decode(value).decode() for key, value in secret.data.items()}
    assert all(len(value) >= 16 for value in values.values()), "a generated secret is shorter than 16"

    helm_output = [release.helm("status", release.name).stdout]
    release.upgrade({"replicaCount": "3"})  # mysql-2 clones from a peer
    wait_until(release.delete_claim_and_pod(1), timeout=TIMEOUTS.rollout, what="mysql-1 cloned again")
    tested = release.test()
    assert tested.returncode == 0, tested.stdout + tested.stderr
    helm_output.append(tested.stdout + tested.stderr)
    release.wait_replicas_applied()
    args = sampler.stop()

    logs, events = container_logs(release), event_texts(release)
    # The scans saw what they should: the servers' command lines, every pod's clone, the test pod.
    server = release.flavor.server
    assert any(arg.endswith(server) for arg in args), f"no {server} among {len(args)} arguments"
    assert {f"{release.pod(i)}/clone" for i in range(3)} <= set(logs), sorted(logs)
    assert any(name.startswith(f"{release.name}-test") for name in logs), sorted(logs)
    assert any("Scheduled" in name for name in events), sorted(events)

    places = {
        **{f"log {name}": text for name, text in logs.items()},
        **{f"event {name}": text for name, text in events.items()},
        **{f"helm output {i}": text for i, text in enumerate(helm_output)},
        "process arguments": "\n".join(args),
    }
    leaks = [(key, place) for key, value in values.items() for place, text in places.items() if value in text]
    assert not leaks, f"secret values found (key, where): {leaks}"
