"""Render the chart with helm (no cluster) and look things up in the result."""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart"
HELM = ROOT / "bin" / "helm"
HELM3 = ROOT / "bin" / "helm3"
# Air-gapped installs: the default flavor (MySQL) and the MariaDB flavor, locally built images.
AIRGAP_VALUES = ROOT / "ci" / "values-airgap.yaml"
AIRGAP_MARIADB_VALUES = ROOT / "ci" / "values-airgap-mariadb.yaml"
# MySQL 8.4 LTS, still supported by the same scripts: only the server tag changes (a ct scenario).
MYSQL_8_4_VALUES = CHART / "ci" / "mysql-8.4-values.yaml"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
FLAVORS = ("mysql", "mariadb")

Doc = dict[str, Any]


class RenderError(AssertionError):
    """helm refused to render; the message is helm's stderr."""


def _run_helm(
    args: list[str], values: dict[str, Any] | None, files: Iterable[Path], helm: Path
) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as extra:
        yaml.safe_dump(values or {}, extra)
        extra.flush()
        cmd = [str(helm), *args]
        for f in files:
            cmd += ["-f", str(f)]
        cmd += ["-f", extra.name]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def render_text(
    values: dict[str, Any] | None = None,
    files: Iterable[Path] = (),
    *,
    helm: Path = HELM,
    release: str = "mysql",
    namespace: str = "default",
) -> str:
    """The manifests `helm template` prints (hooks such as the test pod included)."""
    proc = _run_helm(["template", release, str(CHART), "--namespace", namespace], values, files, helm)
    if proc.returncode != 0:
        raise RenderError(proc.stderr)
    return proc.stdout


def render(
    values: dict[str, Any] | None = None,
    files: Iterable[Path] = (),
    *,
    helm: Path = HELM,
    release: str = "mysql",
    namespace: str = "default",
) -> list[Doc]:
    """The rendered objects, parsed."""
    text = render_text(values, files, helm=helm, release=release, namespace=namespace)
    return [d for d in yaml.safe_load_all(text) if d]


def render_error(
    values: dict[str, Any] | None = None,
    files: Iterable[Path] = (),
    *,
    helm: Path = HELM,
    release: str = "mysql",
) -> str:
    """helm's error message for values it must reject; fails if helm renders them."""
    proc = _run_helm(["template", release, str(CHART)], values, files, helm)
    assert proc.returncode != 0, f"helm accepted values it should reject: {values}"
    return proc.stderr


def lint(
    values: dict[str, Any] | None = None, files: Iterable[Path] = ()
) -> subprocess.CompletedProcess[str]:
    """`helm lint --strict` of the chart with these values."""
    return _run_helm(["lint", "--strict", str(CHART)], values, files, HELM)


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    """The one object of this kind and name."""
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}: {names(docs)}"
    return hits[0]


def names(docs: list[Doc]) -> list[str]:
    """kind/name of every object, for messages and set comparisons."""
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    """(object name, pod spec) of every workload: the StatefulSet template and bare Pods."""
    for d in docs:
        if d["kind"] == "StatefulSet":
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield d["metadata"]["name"], d["spec"]


def containers(spec: Doc) -> list[Doc]:
    """Init and regular containers of a pod spec."""
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(spec: Doc, name: str) -> Doc:
    """The container of that name (init or regular)."""
    hits = [c for c in containers(spec) if c["name"] == name]
    assert hits, f"no container {name!r} in {[c['name'] for c in containers(spec)]}"
    return hits[0]


def env(c: Doc) -> dict[str, Doc]:
    """A container's env entries by name."""
    return {e["name"]: e for e in c.get("env", [])}


def secret_data(docs: list[Doc], name: str = "mysql") -> dict[str, str]:
    """Decoded data of the release Secret."""
    secret = find(docs, "Secret", name)
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def sts_spec(docs: list[Doc]) -> Doc:
    """The pod spec of the StatefulSet."""
    return dict(pod_specs(docs))["mysql"]


def chart_files(docs: list[Doc], dest: Path) -> Path:
    """The release ConfigMap's files written into dest (created), as a pod's volume holds them."""
    dest.mkdir(parents=True)
    for name, text in find(docs, "ConfigMap", "mysql")["data"].items():
        (dest / name).write_text(text)
    return dest


def run_function(
    scripts: Path, script: str, call: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Source scripts/script (its main does not run when sourced) and run `call` in the same shell."""
    full_env = {"PATH": os.environ["PATH"], "HOSTNAME": "mysql-1", "SCRIPTS": str(scripts), **env}
    argv = ["bash", "-c", f'source "{scripts / script}"\n{call}']
    return subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
