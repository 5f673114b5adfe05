"""helm lint, Helm 3 parity, shellcheck, Kubernetes 1.34 API schema, documented values."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from .render import AIRGAP_MARIADB_VALUES, AIRGAP_VALUES, CHART, FLAVORS, HELM, HELM3, SCENARIOS, lint, render

pytestmark = pytest.mark.render

K8S_VERSION = "1.34.0"
# Custom resources of the Prometheus Operator are not part of the Kubernetes API schema.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
INPUTS = [
    *[pytest.param({"flavor": f}, [], id=f) for f in FLAVORS],
    *[pytest.param({}, [s], id=s.name) for s in SCENARIOS],
    pytest.param({}, [AIRGAP_VALUES], id="values-airgap"),
    pytest.param({}, [AIRGAP_MARIADB_VALUES], id="values-airgap-mariadb"),
]


@pytest.mark.parametrize(("values", "files"), INPUTS)
def test_helm_lint_strict_passes(values: dict, files: list[Path]) -> None:
    """`helm lint --strict` is clean for every scenario."""
    proc = lint(values, files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("values", "files"), INPUTS)
def test_helm3_renders_the_same_objects_as_helm4(values: dict, files: list[Path]) -> None:
    """Users on Helm 3 get the same manifests (random Secret values aside)."""

    def normalise(docs: list[dict]) -> list[dict]:
        for d in docs:
            if d["kind"] == "Secret":
                d["data"] = sorted(d["data"])
        return docs

    assert normalise(render(values, files, helm=HELM3)) == normalise(render(values, files))


@pytest.mark.parametrize(("values", "files"), INPUTS)
def test_manifests_validate_against_the_kubernetes_1_34_schema(values: dict, files: list[Path]) -> None:
    """Every built-in object is valid for the cluster version (strict: no unknown fields)."""
    checked = 0
    for doc in render(values, files):
        if doc["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 7


def test_every_chart_script_is_shellcheck_clean() -> None:
    """shellcheck runs on exactly the files that ship (no templating inside scripts)."""
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed (apt-get install -y shellcheck)", pytrace=False)
    scripts = sorted((CHART / "files").glob("*.sh"))
    assert len(scripts) >= 8
    proc = subprocess.run(
        [shellcheck, "--external-sources", "--source-path", str(CHART / "files"), *map(str, scripts)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scripts_follow_the_shell_conventions() -> None:
    """bash shebang, strict mode, no templating, no `set -x`, explained shellcheck disables."""
    for script in sorted((CHART / "files").glob("*.sh")):
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script.name
        assert "set -euo pipefail" in text, script.name
        assert "{{" not in text, f"{script.name} is templated"
        assert not re.search(r"^\s*set -[a-z]*x", text, re.M), f"{script.name} traces commands"
        for line in text.splitlines():
            if "shellcheck disable=" in line:
                assert "#" in line.split("disable=", 1)[1], f"{script.name}: unexplained {line.strip()}"


def test_every_values_key_is_documented_by_a_comment_above_it() -> None:
    """Each key of values.yaml has a comment line (or a commented block) right above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w-]*):", line)
        if not m:
            continue
        above = lines[i - 1].strip() if i else ""
        if not above.startswith("#"):
            undocumented.append(f"line {i + 1}: {m.group(2)}")
    assert undocumented == []
    assert yaml.safe_load("\n".join(lines))["replicaCount"] == 3


def test_packaged_chart_keeps_files_and_the_helm_test(tmp_path: Path) -> None:
    """.helmignore must not hide files/ (read by .Files) nor templates/tests/."""
    proc = subprocess.run(
        [str(HELM), "package", str(CHART), "-d", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    listing = subprocess.run(
        ["tar", "tzf", str(next(tmp_path.glob("*.tgz")))], capture_output=True, text=True, check=True
    ).stdout
    assert "mysql/files/sidecar.sh" in listing
    assert "mysql/templates/tests/test-replication.yaml" in listing


def test_the_repository_tracks_no_symlink_and_nothing_it_ignores() -> None:
    """A clean clone must build its own .venv and bin/: a committed symlink (a worktree's link to
    another checkout's .venv, say) replaces them with a link that loops in every clone."""
    root = CHART.parent
    git = ["git", "-C", str(root), "ls-files"]
    listed = subprocess.run([*git, "-s"], capture_output=True, text=True, check=True)
    links = [line.split("\t", 1)[1] for line in listed.stdout.splitlines() if line.startswith("120000 ")]
    assert links == [], f"symlinks tracked: {links}"
    ignored = subprocess.run(
        [*git, "--cached", "--ignored", "--exclude-standard"], capture_output=True, text=True, check=True
    )
    assert ignored.stdout == "", f"tracked files that .gitignore ignores: {ignored.stdout}"
