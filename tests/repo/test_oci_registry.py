"""Users of the OCI registry: `helm push`, then `helm install mysql oci://…/charts/mysql --version`."""

from __future__ import annotations

import pytest
from chartrepo import CHART_NAME, RepoRelease, write_and_read_on_replicas

pytestmark = [pytest.mark.repo, pytest.mark.slow]


@pytest.fixture(scope="module")
def release(install_from, oci_registry, packages) -> RepoRelease:
    """`helm install mysql oci://127.0.0.1:<port>/charts/mysql --version <current> --plain-http`."""
    return install_from(f"oci://{oci_registry.host}/charts/{CHART_NAME}", packages.current, "--plain-http")


def test_pushed_chart_is_the_packaged_archive(local_helm, oci_registry, packages, tmp_path) -> None:
    """`helm pull` from the registry returns the archive `make package` wrote, byte for byte."""
    local_helm(
        "pull", f"oci://{oci_registry.host}/charts/{CHART_NAME}", "--version", packages.current,
        "--plain-http", "--destination", str(tmp_path),
    )  # fmt: skip
    pulled = tmp_path / packages.archive(packages.current).name
    assert pulled.read_bytes() == packages.archive(packages.current).read_bytes()


def test_install_from_oci_becomes_ready_and_replicates_a_row(release: RepoRelease, table: str) -> None:
    """The release from the registry rolls out; a row written on mysql-0 is read on the replica."""
    assert release.deployed_chart() == f"{CHART_NAME}-{release.version}"
    write_and_read_on_replicas(release, table, "from oci")
