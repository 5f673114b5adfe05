"""`make package` and the chart's published metadata: no cluster needed.

Packaging is reproducible, refuses a changed chart without a version bump, and indexes what it
packaged; Chart.yaml's Artifact Hub metadata, CHANGELOG.md and the README parameters table agree
with the chart they describe.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chartrepo import CHART_NAME, chart_version, package, set_chart_version

from harness.cluster import CHART, ROOT

pytestmark = pytest.mark.repo

VALUES_TABLE = ROOT / "ci" / "values-table.py"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """A copy of the chart outside git, to change without touching chart/."""
    return Path(shutil.copytree(CHART, tmp_path / "chart"))


def test_packaging_the_same_sources_twice_gives_the_same_archive_digest(tmp_path: Path) -> None:
    """Two `make package` runs into empty directories write byte-identical archives (SOURCE_DATE_EPOCH)."""
    version = chart_version()
    package(CHART, tmp_path / "a")
    package(CHART, tmp_path / "b")
    a, b = (tmp_path / d / f"{CHART_NAME}-{version}.tgz" for d in ("a", "b"))
    assert sha256(a) == sha256(b)


def test_index_lists_the_archive_with_its_digest_and_a_relative_url(packages) -> None:
    """index.yaml names every packaged version with the archive's sha256, URLs relative to the repository."""
    index = yaml.safe_load((packages.dist / "index.yaml").read_text())
    entries = {e["version"]: e for e in index["entries"][CHART_NAME]}
    assert set(entries) == {packages.previous, packages.current}
    for version, entry in entries.items():
        archive = packages.archive(version)
        assert entry["digest"] == sha256(archive), version
        assert entry["urls"] == [archive.name], version


def test_repackaging_an_unchanged_chart_keeps_the_archive(chart_copy: Path, tmp_path: Path) -> None:
    """Running `make package` again without changes succeeds and leaves the archive as it was."""
    dist = tmp_path / "dist"
    package(chart_copy, dist)
    archive = dist / f"{CHART_NAME}-{chart_version(chart_copy)}.tgz"
    before = sha256(archive)
    proc = package(chart_copy, dist)
    assert "is up to date" in proc.stderr
    assert sha256(archive) == before


def test_packaging_refuses_a_changed_chart_whose_version_was_not_bumped(
    chart_copy: Path, tmp_path: Path
) -> None:
    """A content change under the version already in dist/ fails with the bump instruction."""
    dist = tmp_path / "dist"
    package(chart_copy, dist)
    version = chart_version(chart_copy)
    archive = dist / f"{CHART_NAME}-{version}.tgz"
    before = sha256(archive)
    with (chart_copy / "values.yaml").open("a") as f:
        f.write("# a change\n")
    proc = package(chart_copy, dist, check=False)
    assert proc.returncode != 0
    assert f"version is still {version}: bump `version`" in proc.stderr, proc.stderr
    assert sha256(archive) == before, "the refused run replaced the published archive"


def test_packaging_accepts_the_change_once_the_version_is_bumped(chart_copy: Path, tmp_path: Path) -> None:
    """After the bump both versions are in dist/ and in index.yaml."""
    dist = tmp_path / "dist"
    package(chart_copy, dist)
    old = chart_version(chart_copy)
    core = [int(p) for p in old.partition("-")[0].split(".")]
    new = f"{core[0]}.{core[1]}.{core[2] + 1}"
    set_chart_version(chart_copy, new)
    with (chart_copy / "values.yaml").open("a") as f:
        f.write("# a change\n")
    package(chart_copy, dist)
    index = yaml.safe_load((dist / "index.yaml").read_text())
    assert sorted(e["version"] for e in index["entries"][CHART_NAME]) == sorted([old, new])


def test_packaging_refuses_a_version_below_one_already_packaged(chart_copy: Path, tmp_path: Path) -> None:
    """Going back to a lower version is no bump either."""
    dist = tmp_path / "dist"
    package(chart_copy, dist)
    version = chart_version(chart_copy)
    set_chart_version(chart_copy, f"{version.partition('-')[0]}-rc.1")
    proc = package(chart_copy, dist, check=False)
    assert proc.returncode != 0
    assert f"is not above {version}" in proc.stderr, proc.stderr


def _values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def _chart() -> dict:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def test_app_version_is_the_default_server_version() -> None:
    """appVersion is the MySQL image tag installed by default."""
    assert _chart()["appVersion"] == _values()["mysql"]["image"]["tag"]


def test_artifact_hub_images_are_the_default_images_of_both_flavors() -> None:
    """artifacthub.io/images lists exactly the images values.yaml can run by default (MySQL has one)."""
    values = _values()
    assert "backupImage" not in values["mysql"], "mysql.backupImage was removed in 0.2.0"
    expected = {
        f"{image['repository']}:{image['tag']}"
        for image in (
            values["mysql"]["image"],
            values["mariadb"]["image"],
            values["mariadb"]["backupImage"],
            values["metrics"]["image"],
        )
    }
    listed = yaml.safe_load(_chart()["annotations"]["artifacthub.io/images"])
    assert {i["image"] for i in listed} == expected


def test_changelog_has_the_chart_version_and_artifact_hub_its_changes() -> None:
    """CHANGELOG.md has a section for the chart version; artifacthub.io/changes is well-formed."""
    chart = _chart()
    changelog = (CHART / "CHANGELOG.md").read_text()
    assert f"## [{chart['version']}]" in changelog
    changes = yaml.safe_load(chart["annotations"]["artifacthub.io/changes"])
    kinds = {"added", "changed", "deprecated", "removed", "fixed", "security"}
    assert changes and all(c["kind"] in kinds and c["description"] for c in changes), changes


def test_readme_parameters_table_is_up_to_date() -> None:
    """`make lint` passes the README check: the table matches values.yaml."""
    proc = subprocess.run(
        [sys.executable, str(VALUES_TABLE), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_readme_check_fails_when_a_values_comment_changes(chart_copy: Path) -> None:
    """Changing a comment in values.yaml makes the table stale, and the check says how to fix it."""
    values = chart_copy / "values.yaml"
    values.write_text(values.read_text().replace("# Number of pods:", "# How many pods:", 1))
    proc = subprocess.run(
        [sys.executable, str(VALUES_TABLE), "--check", "--values", str(values),
         "--readme", str(chart_copy / "README.md")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "How many pods" in proc.stderr and "run `make readme`" in proc.stderr, proc.stderr
