"""Passwords after install: a Secret that no longer matches the datadir is named, and the documented
rotation (chart/README.md, "Rotating passwords") changes one with every pod serving.

One release of 2 pods; the tests run in file order (the second starts from the first's restored Secret).
"""

from __future__ import annotations

import base64
import secrets

import pymysql
import pytest

from harness.helm import ROOT_PASSWORD_KEY, Release
from harness.kube import TIMEOUTS, pod_recreated_and_ready, wait_until

pytestmark = [pytest.mark.lifecycle, pytest.mark.slow]

PROBE_PASSWORD_KEY = "mysql-probe-password"


@pytest.fixture(scope="module")
def release_values() -> dict[str, str]:
    """A primary and one replica."""
    return {"replicaCount": "2"}


def patch_secret(release: Release, values: dict[str, str]) -> None:
    """Overwrite keys of the release's Secret, as `helm template | kubectl apply` with new random
    passwords, or a user editing it, does."""
    data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    release.kube.core.patch_namespaced_secret(release.name, release.namespace, {"data": data})


def replace_pod(release: Release, pod: str, *, ready: bool = True) -> None:
    """Delete pod; wait until it is back (and Ready, unless ready=False: only its containers running)."""
    core, namespace = release.kube.core, release.namespace
    old_uid = core.read_namespaced_pod(pod, namespace).metadata.uid
    core.delete_namespaced_pod(pod, namespace)
    if ready:
        wait_until(
            pod_recreated_and_ready(release.kube, namespace, pod, old_uid),
            timeout=TIMEOUTS.pod_ready,
            what=f"{pod} recreated and Ready",
        )
        return

    def running() -> bool:
        live = core.read_namespaced_pod(pod, namespace)
        statuses = live.status.container_statuses or []
        return live.metadata.uid != old_uid and bool(statuses) and all(s.state.running for s in statuses)

    wait_until(running, timeout=TIMEOUTS.pod_ready, what=f"{pod} recreated with its containers running")


def probe_failures(release: Release, pod: str) -> str:
    """Every message of the pod's Unhealthy events (failed probes), newest last."""
    events = release.kube.core.list_namespaced_event(
        release.namespace, field_selector=f"involvedObject.name={pod},reason=Unhealthy"
    ).items
    return "\n".join(e.message or "" for e in sorted(events, key=lambda e: e.last_timestamp or e.event_time))


def test_a_secret_that_no_longer_matches_the_datadir_is_named_in_events_and_logs(release: Release) -> None:
    """The Secret replaced with new passwords (what `helm template | kubectl apply` does): a restarted
    replica stays unready, its readiness events name the Secret key the server refuses, and its
    sidecar says the same of root's instead of crash-looping; the old Secret back, it is Ready again."""
    pod = release.pod(1)
    original = {key: release.secret_value(key) for key in (ROOT_PASSWORD_KEY, PROBE_PASSWORD_KEY)}
    patch_secret(release, {key: secrets.token_urlsafe(18) for key in original})
    try:
        replace_pod(release, pod, ready=False)
        wait_until(
            lambda: (
                "refuses account 'probe' the password in Secret mysql (key mysql-probe-password)"
                in probe_failures(release, pod)
            ),
            timeout=120,
            what=f"{pod}'s readiness events naming the refused probe password",
        )

        def sidecar_says() -> bool:
            log = release.kube.core.read_namespaced_pod_log(pod, release.namespace, container="sidecar")
            return "refuses account 'root' the password in Secret mysql (key mysql-root-password)" in log

        wait_until(sidecar_says, timeout=120, what=f"{pod}'s sidecar naming the refused root password")
        sidecar = next(
            s
            for s in release.kube.core.read_namespaced_pod(pod, release.namespace).status.container_statuses
            if s.name == "sidecar"
        )
        assert sidecar.restart_count == 0, "the sidecar crash-loops instead of waiting"
    finally:
        patch_secret(release, original)
    replace_pod(release, pod)
    assert release.db.replication_running(pod), release.db.replica_status(pod)


def test_rotating_the_root_password_as_documented_keeps_every_pod_serving(
    release: Release, table: str
) -> None:
    """chart/README.md "Rotating passwords": ALTER USER on the primary (replicated), the new password
    into the Secret with `helm upgrade --set auth.rootPassword` (with --force-conflicts: the Secret
    was edited with the API before), `kubectl rollout restart`. Every pod
    takes the new password and refuses the old one, replication goes on, helm test passes."""
    new = f"rotated-{secrets.token_urlsafe(12)}"
    old_db = release.db
    for account in ("'root'@'localhost'", "'root'@'%%'"):  # %% : pymysql's placeholder syntax
        old_db.query(release.primary, f"ALTER USER {account} IDENTIFIED BY %s", (new,))
    # The first test edited the Secret with the API: Helm 4's server-side apply takes the field back
    # only when told to (chart/README.md says so).
    release.upgrade({"auth.rootPassword": new}, "--force-conflicts")
    release.cluster.kubectl(
        "rollout", "restart", f"statefulset/{release.name}", "--namespace", release.namespace
    )
    release.wait_rolled_out()
    assert release.secret_value(ROOT_PASSWORD_KEY) == new
    release.reconnect()
    db = release.db
    db.query(release.primary, "CREATE DATABASE IF NOT EXISTS test")
    db.query(release.primary, f"CREATE TABLE {table} (id INT PRIMARY KEY)")
    db.query(release.primary, f"INSERT INTO {table} VALUES (1)")
    release.wait_replicas_applied()
    for pod in release.pods():
        assert db.query(pod, f"SELECT id FROM {table}") == [(1,)], pod
        with pytest.raises(pymysql.err.OperationalError, match="1045"):
            old_db.scalar(pod, "SELECT 1")
    assert db.replication_running(release.pod(1)), db.replica_status(release.pod(1))
    result = release.test()
    assert result.returncode == 0, f"helm test failed:\n{result.stdout}\n{result.stderr}"
