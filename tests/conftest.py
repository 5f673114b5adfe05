"""Fixtures for the cluster suites (smoke, e2e): cluster, fresh namespaces, release, failure artifacts.

Options (each with an environment variable):
  --flavor mysql|mariadb   FLAVOR      database flavor (default: mysql; `make e2e` runs both)
  --keep-cluster           KEEP=1      keep the kind cluster, releases and namespaces for inspection
  --kube-context NAME      KUBE_CONTEXT  use this existing cluster instead of kind (nothing created/deleted)
  --kubeconfig PATH        (pytest-helm-charts) kubeconfig of an existing cluster; KUBECONFIG is honoured
AIRGAP=1/0 forces air-gapped or registry mode (ci/mode.sh).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import pytest
from pytest_helm_charts.clusters import Cluster as HelmChartsCluster
from pytest_helm_charts.k8s.namespace import make_namespace_object

from harness import cluster as kind
from harness.cluster import ARTIFACTS, FLAVORS, Cluster, CommandError, Settings, artifact_dir
from harness.db import FLAVORS as SQL_FLAVORS
from harness.helm import Release
from harness.kube import RESTRICTED_NAMESPACE_LABELS, Kube, delete_namespace, dump_namespace

log = logging.getLogger(__name__)

SETTINGS = pytest.StashKey[Settings]()
CLUSTER = pytest.StashKey[Cluster]()
STARTED = pytest.StashKey[float]()
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mysql-chart", "mysql-chart cluster suites")
    group.addoption(
        "--flavor",
        choices=FLAVORS,
        default=None,
        help="database flavor to install (env FLAVOR; default mysql)",
    )
    group.addoption(
        "--keep-cluster",
        action="store_true",
        default=False,
        help="keep the kind cluster, the releases and their namespaces for inspection (env KEEP=1)",
    )
    group.addoption(
        "--kube-context",
        default=None,
        help="run on the existing cluster of this kubeconfig context (env KUBE_CONTEXT); "
        "nothing is created, loaded or deleted",
    )


# --- session: settings and cluster ---------------------------------------------------------------


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    """What this run targets: mode, flavor, keep, existing cluster."""
    try:
        resolved = Settings.resolve(
            flavor=pytestconfig.getoption("--flavor"),
            keep=pytestconfig.getoption("--keep-cluster"),
            kube_context=pytestconfig.getoption("--kube-context"),
            kube_config=pytestconfig.getoption("kubeconfig"),
        )
    except (ValueError, FileNotFoundError, CommandError) as e:
        pytest.fail(str(e), pytrace=False)
    pytestconfig.stash[SETTINGS] = resolved
    pytestconfig.stash[STARTED] = time.monotonic()
    log.info("mode %s, flavor %s, keep %s", resolved.mode, resolved.flavor, resolved.keep)
    return resolved


@pytest.fixture(scope="session")
def kind_cluster(
    request: pytest.FixtureRequest, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The cluster: `make cluster` + `make images`, or an existing one. One that cannot come up fails."""
    try:
        cluster = kind.up(settings, tmp_path_factory.mktemp("kube"))
    except (CommandError, FileNotFoundError, ValueError) as e:
        pytest.fail(f"the cluster could not come up: {e}", pytrace=False)
    request.config.stash[CLUSTER] = cluster
    yield cluster
    if request.session.testsfailed:
        cluster.kind_export_logs(ARTIFACTS / "kind-logs")
    kind.down(cluster)


@pytest.fixture(scope="session")
def kube_config(kind_cluster: Cluster) -> str:
    """pytest-helm-charts' kubeconfig, overridden so its `kube_cluster` is the cluster under test."""
    return str(kind_cluster.kubeconfig)


@pytest.fixture(scope="session")
def kube(kind_cluster: Cluster) -> Kube:
    """Kubernetes API clients for the cluster under test."""
    return Kube.connect(kind_cluster)


# --- module: a fresh namespace and one release per scenario module --------------------------------


@pytest.fixture(scope="module")
def namespace(
    request: pytest.FixtureRequest, kube: Kube, kube_cluster: HelmChartsCluster, settings: Settings
) -> Iterator[str]:
    """A new, empty namespace enforcing Pod Security `restricted`; deleted afterwards unless kept."""
    stem = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    name = f"{stem[:40]}-{uuid.uuid4().hex[:6]}"
    make_namespace_object(
        kube_cluster.kube_client, name, extra_metadata={"labels": dict(RESTRICTED_NAMESPACE_LABELS)}
    ).create()
    leftovers = [p.metadata.name for p in kube.pods(name)] + [
        c.metadata.name for c in kube.core.list_namespaced_persistent_volume_claim(name).items
    ]
    assert not leftovers, f"namespace {name} is not empty: {leftovers}"
    log.info("namespace %s created (Pod Security: restricted)", name)
    yield name
    if settings.keep:
        log.info("keeping namespace %s for inspection", name)
    else:
        delete_namespace(kube, name)


@pytest.fixture(scope="module")
def release_values() -> dict[str, str]:
    """Extra `--set` values for the module's release; override in a module to change them."""
    return {}


@pytest.fixture(scope="module")
def release(
    request: pytest.FixtureRequest,
    kind_cluster: Cluster,
    kube: Kube,
    namespace: str,
    settings: Settings,
    release_values: dict[str, str],
) -> Iterator[Release]:
    """Release `mysql` of ./chart, installed and rolled out in the module's namespace; uninstalled after."""
    release = Release(
        cluster=kind_cluster,
        kube=kube,
        namespace=namespace,
        flavor=SQL_FLAVORS[settings.flavor],
        set_values=dict(release_values),
    )
    try:
        release.install()
    except BaseException:
        dump_namespace(kind_cluster, kube, namespace, artifact_dir(f"{request.node.nodeid}-install"))
        raise
    yield release
    if not settings.keep:
        release.uninstall()


# --- function: unique names, failure artifacts -----------------------------------------------------


@pytest.fixture
def table() -> str:
    """A table name no other test uses: `test.t_<8 hex>`."""
    return f"test.t_{uuid.uuid4().hex[:8]}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item, for _artifacts_on_failure."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


@pytest.fixture(autouse=True)
def _artifacts_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a failed test that used a namespace: events, descriptions and logs to artifacts/<test-id>/."""
    yield
    reports = request.node.stash.get(REPORTS, {})
    if not any(r.failed for r in reports.values()):
        return
    funcargs = getattr(request.node, "funcargs", {})
    if "namespace" in funcargs and "kind_cluster" in funcargs:
        dump_namespace(
            funcargs["kind_cluster"],
            funcargs["kube"],
            funcargs["namespace"],
            artifact_dir(request.node.nodeid),
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """One line: flavor, mode, cluster, outcome counts, time, and where artifacts went."""
    settings = config.stash.get(SETTINGS, None)
    if settings is None:
        return
    cluster = config.stash.get(CLUSTER, None)
    counts = {k: len(terminalreporter.stats.get(k, [])) for k in ("passed", "failed", "error", "skipped")}
    elapsed = time.monotonic() - config.stash[STARTED]
    where = "no cluster"
    if cluster is not None:
        how = "existing" if settings.existing_cluster else ("created" if cluster.created else "reused")
        where = f"{cluster.context} ({how}{', kept' if settings.keep else ''})"
    line = (
        f"mysql-chart: flavor={settings.flavor} mode={settings.mode} cluster={where} | "
        + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        + f" | {elapsed / 60:.1f} min on the cluster"
    )
    if counts["failed"] or counts["error"]:
        line += f" | artifacts in {ARTIFACTS}/"
    terminalreporter.write_sep("=", "summary", bold=True)
    terminalreporter.write_line(line)
