"""Turning TLS on under a running release, as the upgrade from a chart version without it does:
the rolling update completes while an application writes, every acknowledged write is on every
pod, and every replica ends up replicating over TLS that verifies the primary's certificate.

One release of 3 pods, installed with tls.enabled=false; the tests run in file order.
"""

from __future__ import annotations

import pytest

from harness.db import VERIFIED_CHANNEL
from harness.helm import Release
from harness.kube import TIMEOUTS, Pending, wait_until
from harness.workload import TABLE, Workload

pytestmark = [pytest.mark.lifecycle, pytest.mark.slow]

SWITCHOVER = "TLS_SWITCHOVER"


@pytest.fixture(scope="module")
def release_values() -> dict[str, str]:
    """A primary and two replicas, without TLS (as releases of chart 0.8.0 and before run)."""
    return {"replicaCount": "3", "tls.enabled": "false"}


def sidecar_env(release: Release) -> set[str]:
    """The names of the environment variables the StatefulSet gives the sidecar."""
    containers = release.statefulset().spec.template.spec.containers
    return {e.name for c in containers if c.name == "sidecar" for e in c.env or []}


def wait_channels_verified(release: Release) -> None:
    """Wait until every replica's channel verifies the primary against the release's CA and runs."""

    def verified() -> bool | Pending:
        for pod in release.replicas():
            tls = release.db.channel_tls(pod)
            if tls != VERIFIED_CHANNEL or not release.db.replication_running(pod):
                return Pending(f"{pod}: {tls}, running {release.db.replication_running(pod)}")
        return True

    wait_until(verified, timeout=TIMEOUTS.pod_ready, what="every replica's channel verified")


def test_without_tls_no_channel_trusts_the_release_ca(release: Release) -> None:
    """The starting point: no TLS_DIR in the pods, no channel trusts the release's CA."""
    assert "TLS_DIR" not in sidecar_env(release)
    for pod in release.replicas():
        assert release.db.channel_tls(pod)["SSL_CA_File"] == "", pod


def test_turning_tls_on_rolls_out_under_writes_and_keeps_every_acknowledged_write(release: Release) -> None:
    """`helm upgrade --set tls.enabled=true` while a writer inserts through mysql-primary: the
    rollout completes (the replicas, replaced first, replicate as before until the primary, replaced
    last, presents the certificate), every acknowledged id is on every pod exactly once, and each
    replica's sidecar says when it switched to verified TLS."""
    load = Workload(release)
    load.start()
    try:
        load.wait_for_acks(20)
        release.upgrade({"tls.enabled": "true"})
        assert SWITCHOVER in sidecar_env(release), "the upgrade that turns TLS on is a switch-over"
        wait_channels_verified(release)
        after = load.wait_for_acks(20, since=load.ledger().attempts[-1].at)
    finally:
        ledger = load.stop()
    assert after.acked, "no write acknowledged after the switch-over"
    release.wait_replicas_applied()
    low, high = ledger.range
    for pod in release.pods():
        rows = [r[0] for r in release.db.query(pod, f"SELECT id FROM {TABLE} WHERE id BETWEEN %s AND %s",
                                               (low, high))]  # fmt: skip
        missing = sorted(set(ledger.acked) - set(rows))
        assert not missing, f"{pod} lacks {len(missing)} acknowledged ids: {missing[:20]}"
        assert len(rows) == len(set(rows)), f"{pod} holds ids twice"
    for pod in release.replicas():
        log = release.kube.core.read_namespaced_pod_log(pod, release.namespace, container="sidecar")
        # Replaced before the primary: as before TLS first, then verified once the new primary runs.
        pending = log.find("the primary does not present the release's certificate yet")
        switched = log.find("replicating over verified TLS from now on")
        assert 0 <= pending < switched, f"{pod} did not switch over:\n{log}"


def test_the_next_upgrade_ends_the_switch_over_and_helm_test_verifies_every_server(release: Release) -> None:
    """The upgrade after the rollout drops TLS_SWITCHOVER; the pods it replaces verify from their
    first connection, and `helm test` (which trusts only the release's CA) passes."""
    release.upgrade({})
    assert SWITCHOVER not in sidecar_env(release)
    wait_channels_verified(release)
    result = release.test()
    assert result.returncode == 0, f"helm test failed:\n{result.stdout}\n{result.stderr}"


def test_turning_tls_off_under_running_pods_is_refused(release: Release) -> None:
    """tls.enabled=false on a release that runs with TLS: refused at render time (its replicas
    verify the primary's certificate); the StatefulSet is untouched."""
    generation = release.statefulset().metadata.generation
    result = release.try_upgrade({"tls.enabled": "false"})
    assert result.returncode != 0, result.stdout
    assert "tls.enabled=false: StatefulSet mysql runs with TLS" in result.stderr, result.stderr
    assert release.statefulset().metadata.generation == generation
