"""Helm 3 users read the same repository and registry: `helm3 repo add`, `search`, `pull` (no cluster)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from chartrepo import CHART_NAME

from harness.cluster import BIN, run, tool_env

pytestmark = pytest.mark.repo


@pytest.fixture(scope="module")
def helm3(tmp_path_factory: pytest.TempPathFactory):
    """`bin/helm3 ARGS` with its own config directories."""
    home = tmp_path_factory.mktemp("helm3-home")
    env = tool_env({f"HELM_{d.upper()}_HOME": str(home / d) for d in ("config", "cache", "data")})

    def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([str(BIN / "helm3"), *args], env=env, timeout=120, check=check)

    return helm


def test_helm3_finds_and_pulls_the_packaged_archive_from_the_http_repository(
    helm3, http_repo, packages, tmp_path: Path
) -> None:
    """`helm3 repo add` + `search repo` list both versions; `pull` returns the archive byte for byte."""
    helm3("repo", "add", "mysql-test", http_repo.url)
    found = json.loads(
        helm3("search", "repo", f"mysql-test/{CHART_NAME}", "--versions", "--devel", "-o", "json").stdout
    )
    assert {e["version"] for e in found} == {packages.previous, packages.current}
    helm3("pull", f"mysql-test/{CHART_NAME}", "--version", packages.current, "--destination", str(tmp_path))
    archive = packages.archive(packages.current)
    assert (tmp_path / archive.name).read_bytes() == archive.read_bytes()


def test_helm3_pulls_the_packaged_archive_from_the_oci_registry(
    helm3, oci_registry, packages, tmp_path: Path
) -> None:
    """`helm3 pull oci://…/charts/mysql --version` returns what `helm push` (Helm 4) pushed."""
    helm3(
        "pull", f"oci://{oci_registry.host}/charts/{CHART_NAME}", "--version", packages.current,
        "--plain-http", "--destination", str(tmp_path),
    )  # fmt: skip
    archive = packages.archive(packages.current)
    assert (tmp_path / archive.name).read_bytes() == archive.read_bytes()
