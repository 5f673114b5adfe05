"""A Helm release of the chart under test, and what the tests do with it.

The chart's objects are named after the release (`helm install mysql ./chart` gives StatefulSet,
headless Service and Secret `mysql`, Services `mysql-read` and `mysql-primary`, pods `mysql-N`).
"""

from __future__ import annotations

import base64
import logging
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes.client import V1StatefulSet
from kubernetes.client.exceptions import ApiException

from harness.cluster import CHART, Cluster
from harness.db import Database, Flavor
from harness.kube import (
    TIMEOUTS,
    CommandResult,
    Kube,
    Pending,
    pod_recreated_and_ready,
    run_client_pod,
    wait_rolled_out,
)

log = logging.getLogger(__name__)

ROOT_PASSWORD_KEY = "mysql-root-password"
REPLICATION_PASSWORD_KEY = "mysql-replication-password"
# Every key of the release's Secret (mysql-password only with auth.username).
SECRET_KEYS = frozenset(
    {
        ROOT_PASSWORD_KEY,
        REPLICATION_PASSWORD_KEY,
        "mysql-backup-password",
        "mysql-probe-password",
        "mysql-metrics-password",
        "mysql-password",
        "backup-token",
    }
)
# uid/gid of mysqld in every supported image (official mysql/mariadb, the air-gapped build).
MYSQL_UID = 999


@dataclass
class Release:
    """One `helm install` of ./chart into its own namespace."""

    cluster: Cluster
    kube: Kube
    namespace: str
    flavor: Flavor
    name: str = "mysql"
    chart: Path = CHART
    set_values: dict[str, str] = field(default_factory=dict)
    _database: Database | None = field(default=None, init=False, repr=False)

    # --- helm -----------------------------------------------------------------------------------

    def _values_args(self, extra: Mapping[str, str] | None = None) -> list[str]:
        """--values of the cluster's files, then --set of the flavor, set_values and extra (last wins)."""
        args: list[str] = []
        for path in self.cluster.values_files:
            args += ["--values", str(path)]
        values = {"flavor": self.flavor.name, **self.set_values, **(extra or {})}
        for key, value in values.items():
            args += ["--set", f"{key}={value}"]
        return args

    def helm(
        self, *args: str, timeout: float = TIMEOUTS.helm, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `helm ARGS --namespace <ns>` against the cluster."""
        return self.cluster.helm(*args, "--namespace", self.namespace, timeout=timeout, check=check)

    def install(self) -> V1StatefulSet:
        """`helm install` the chart, then wait until the StatefulSet is rolled out."""
        start = time.monotonic()
        log.info(
            "helm install %s %s into %s (%s)", self.name, self.chart, self.namespace, self._values_args()
        )
        self.helm("install", self.name, str(self.chart), *self._values_args())
        sts = self.wait_rolled_out()
        log.info(
            "release %s/%s installed and rolled out in %.0fs",
            self.namespace,
            self.name,
            time.monotonic() - start,
        )
        return sts

    def upgrade(self, set_values: Mapping[str, str], *helm_args: str) -> V1StatefulSet:
        """`helm upgrade` with the install's values plus set_values (and helm_args, e.g.
        --force-conflicts), then wait until rolled out."""
        self.set_values.update(set_values)
        log.info("helm upgrade %s (%s %s)", self.name, self._values_args(), " ".join(helm_args))
        self.helm("upgrade", self.name, str(self.chart), *self._values_args(), *helm_args)
        return self.wait_rolled_out()

    def try_upgrade(self, set_values: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        """`helm upgrade` with the install's values plus set_values, which are not kept; the caller
        asserts on the result (an upgrade the chart must refuse)."""
        return self.helm("upgrade", self.name, str(self.chart), *self._values_args(set_values), check=False)

    def template(self, set_values: Mapping[str, str], *helm_args: str) -> str:
        """What `helm template` renders for this release with the install's values plus set_values
        (not kept), e.g. `--show-only templates/X.yaml`."""
        args = self._values_args(set_values)
        return self.helm("template", self.name, str(self.chart), *args, *helm_args).stdout

    def test(self) -> subprocess.CompletedProcess[str]:
        """Run `helm test` with its pods' logs; the caller asserts on the result."""
        return self.helm("test", self.name, "--logs", "--timeout", "10m", check=False)

    def uninstall(self) -> None:
        """`helm uninstall` the release (its PVCs stay, as with any StatefulSet)."""
        self.helm("uninstall", self.name, check=False)

    # --- Kubernetes objects ------------------------------------------------------------------------

    def statefulset(self) -> V1StatefulSet:
        """The release's StatefulSet as the API server has it now."""
        return self.kube.apps.read_namespaced_stateful_set(self.name, self.namespace)

    def wait_rolled_out(self, replicas: int | None = None) -> V1StatefulSet:
        """Wait until the StatefulSet is rolled out (with `replicas` replicas when given)."""
        return wait_rolled_out(self.kube, self.namespace, self.name, replicas)

    @property
    def primary(self) -> str:
        """The primary's pod name (ordinal 0)."""
        return f"{self.name}-0"

    def pod(self, ordinal: int) -> str:
        """The pod name of ordinal, e.g. `mysql-3`."""
        return f"{self.name}-{ordinal}"

    def host(self, ordinal: int) -> str:
        """The pod's DNS name through the headless Service, e.g. `mysql-3.mysql`."""
        return f"{self.name}-{ordinal}.{self.name}"

    def pods(self) -> list[str]:
        """Every server pod the StatefulSet should have now, primary first."""
        return [self.pod(i) for i in range(self.statefulset().spec.replicas)]

    def replicas(self) -> list[str]:
        """Every replica pod (all but the primary)."""
        return self.pods()[1:]

    def server_image(self) -> str:
        """The server container's image (containers[0]) in the StatefulSet's pod template."""
        return self.statefulset().spec.template.spec.containers[0].image

    def secret_value(self, key: str) -> str:
        """Decode one key of the release's Secret."""
        secret = self.kube.core.read_namespaced_secret(self.name, self.namespace)
        return base64.b64decode(secret.data[key]).decode()

    def claim(self, ordinal: int) -> str:
        """The PVC of ordinal's data volume, e.g. `data-mysql-3`."""
        return f"data-{self.pod(ordinal)}"

    def delete_pod(self, ordinal: int) -> Callable[[], object]:
        """`kubectl delete pod` (graceful); returns a predicate: true once the StatefulSet recreated
        the pod and it is Ready."""
        core, name = self.kube.core, self.pod(ordinal)
        old_uid = core.read_namespaced_pod(name, self.namespace).metadata.uid
        core.delete_namespaced_pod(name, self.namespace)
        return pod_recreated_and_ready(self.kube, self.namespace, name, old_uid)

    def delete_claim_and_pod(self, ordinal: int) -> Callable[[], object]:
        """Delete PVC data-<pod> (without waiting: the pod holds it), then the pod: it comes back
        empty. Returns a predicate: true once the pod is recreated and Ready on a new claim."""
        core, claim = self.kube.core, self.claim(ordinal)
        old_claim = core.read_namespaced_persistent_volume_claim(claim, self.namespace).metadata.uid
        core.delete_namespaced_persistent_volume_claim(claim, self.namespace)
        recreated = self.delete_pod(ordinal)

        def back_on_new_claim() -> object:
            try:
                uid = core.read_namespaced_persistent_volume_claim(claim, self.namespace).metadata.uid
            except ApiException as e:
                if e.status != 404:
                    raise
                uid = None
            if uid in (None, old_claim):
                return Pending(f"{claim} {'absent' if uid is None else 'is still the old claim'}")
            return recreated()

        return back_on_new_claim

    # --- consistency ------------------------------------------------------------------------------

    def wait_replicas_applied(self, gtid: str | None = None, *, timeout: float = TIMEOUTS.gtid) -> str:
        """Wait until every replica has applied gtid (by default the primary's executed set now),
        the wait running in each server; returns the GTID set waited for."""
        if gtid is None:
            gtid = self.db.gtid_executed(self.primary)
        for pod in self.replicas():
            self.db.wait_for_gtid(pod, gtid, timeout=timeout)
        return gtid

    def assert_replicas_match_primary(self, table: str) -> None:
        """Every replica applies the primary's GTIDs and holds no other (errant) transaction
        (gtid_divergence), and table has the same checksum everywhere."""
        db = self.db
        expected_sum = db.checksum(self.primary, table)
        assert expected_sum is not None, f"{table} is missing on the primary"
        self.wait_replicas_applied()
        diverged = self.gtid_divergence()
        assert not diverged, f"GTID sets: {diverged}"
        sums = {pod: db.checksum(pod, table) for pod in self.pods()}
        assert all(s == expected_sum for s in sums.values()), f"checksums of {table} differ: {sums}"

    def gtid_divergence(self) -> str:
        """Empty when every replica holds the primary's transactions and no other; else what differs.

        The primary's heartbeat commits every second, so the sets are compared as a sandwich: each
        replica contains the primary's set read before it, and the primary's set read after contains it.
        """
        db = self.db
        before = db.gtid_executed(self.primary)
        sets = {pod: db.gtid_executed(pod) for pod in self.replicas()}
        after = db.gtid_executed(self.primary)
        behind = {p: g for p, g in sets.items() if not db.gtid_contains(self.primary, g, before)}
        errant = {p: g for p, g in sets.items() if not db.gtid_contains(self.primary, after, g)}
        if behind or errant:
            return f"primary {before!r} .. {after!r}; behind {behind}; errant {errant}"
        return ""

    # --- clients ----------------------------------------------------------------------------------

    @property
    def client_labels(self) -> dict[str, str]:
        """Labels of throwaway client pods: the chart's NetworkPolicy admits `<fullname>-client: "true"`."""
        return {f"{self.name}-client": "true"}

    def reconnect(self) -> None:
        """Forget the root password read from the Secret: the next `db` reads it again (after a rotation)."""
        self._database = None

    @property
    def db(self) -> Database:
        """pymysql access to the release's servers as root (password read from the Secret)."""
        if self._database is None:
            self._database = Database(
                self.cluster, self.namespace, self.flavor, self.secret_value(ROOT_PASSWORD_KEY)
            )
        return self._database

    def client(self, host: str, sql: str, *, timeout: float = TIMEOUTS.client_pod) -> CommandResult:
        """Run `<client> -h host -uroot -N -B -e sql` in a throwaway in-cluster pod, as a user would.

        The image is the server's; MYSQL_PWD comes from the release's Secret through secretKeyRef.
        """
        argv = [self.flavor.client, "-h", host, "-uroot", "--batch", "--skip-column-names", "-e", sql]
        return self.client_pod(argv, timeout=timeout)

    def client_script(self, script: str, *, timeout: float = TIMEOUTS.client_pod) -> CommandResult:
        """Run a POSIX shell script in a throwaway pod of the server image, root password in MYSQL_PWD."""
        return self.client_pod(["sh", "-c", script], timeout=timeout)

    def client_pod(self, argv: list[str], *, timeout: float = TIMEOUTS.client_pod) -> CommandResult:
        """Run argv in a throwaway pod of the server image, root password in MYSQL_PWD."""
        return run_client_pod(
            self.cluster,
            self.namespace,
            argv,
            image=self.server_image(),
            uid=MYSQL_UID,
            name_prefix=f"{self.name}-client",
            secret_env={"MYSQL_PWD": (self.name, ROOT_PASSWORD_KEY)},
            labels=self.client_labels,
            timeout=timeout,
        )
