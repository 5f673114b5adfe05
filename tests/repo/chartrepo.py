"""Chart repositories on 127.0.0.1 for tests/repo: packaging, an HTTP repository, an OCI registry.

- `package(chart_dir, dist)` runs ci/package.sh, exactly what `make package` runs.
- `previous_chart(dest)` is the chart users upgrade from: the newest released version below the
  current one, from git: REPO_PREVIOUS_REF, else the tag `mysql-<version>` (chart-releaser's
  naming), else the last commit of `chart/` at a lower version (every chart change bumps the
  version, so that commit is the release). Never a copy of the current chart.
- `HttpRepository` serves a directory with http.server in a thread; `OciRegistry` runs
  `crane registry serve`. Both listen on a port the kernel picks (bind to port 0), never a guess.
- `RepoRelease` is the harness's Release, installed from a chart reference with `--version`.
"""

from __future__ import annotations

import functools
import http.server
import logging
import os
import re
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.cluster import BIN, CHART, ROOT, CommandError, run, stop_process, tool_env
from harness.db import retry_db
from harness.helm import Release

log = logging.getLogger(__name__)

PACKAGE_SCRIPT = ROOT / "ci" / "package.sh"
CHART_NAME = "mysql"
# What helm may take to report an unreachable repository or a missing version.
FAIL_FAST_SECONDS = 20


def chart_version(chart_dir: Path = CHART) -> str:
    """The `version` of chart_dir/Chart.yaml."""
    return str(yaml.safe_load((chart_dir / "Chart.yaml").read_text())["version"])


def set_chart_version(chart_dir: Path, version: str) -> None:
    """Rewrite the `version:` line of chart_dir/Chart.yaml (comments and order kept)."""
    path = chart_dir / "Chart.yaml"
    text, count = re.subn(r"(?m)^version:.*$", f"version: {version}", path.read_text())
    assert count == 1, f"{path}: expected one top-level `version:` line"
    path.write_text(text)


def package(
    chart_dir: Path, dist: Path, *, env: Mapping[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ci/package.sh for chart_dir into dist (relative URLs in index.yaml)."""
    extra = {"CHART_DIR": str(chart_dir), "DIST": str(dist), "REPO_URL": "", **(env or {})}
    return run(["bash", str(PACKAGE_SCRIPT)], env=tool_env(extra), timeout=120, check=check)


def _semver_key(version: str) -> tuple[tuple[int, ...], int]:
    core, _, pre = version.partition("-")
    return tuple(int(p) for p in core.split(".")), 0 if pre else 1


def previous_chart(dest: Path, current: str) -> tuple[Path, str]:
    """Write the chart users upgrade from into dest/chart and return (its directory, its version)."""
    chart_dir = dest / "chart"
    ref = (
        os.environ.get("REPO_PREVIOUS_REF")
        or _newest_release_tag_below(current)
        or _last_commit_below(current)
    )
    if not ref:
        raise AssertionError(
            f"no earlier chart version than {current} in git history (a shallow clone?): "
            "set REPO_PREVIOUS_REF to a commit or tag of the previous release"
        )
    dest.mkdir(parents=True, exist_ok=True)
    tar = dest / "chart.tar"
    run(["git", "archive", f"--output={tar}", ref, "chart"], env=tool_env(), timeout=60, cwd=ROOT)
    run(["tar", "-xf", str(tar), "-C", str(dest)], env=tool_env(), timeout=60)
    version = chart_version(chart_dir)
    assert _semver_key(version) < _semver_key(current), (
        f"{ref} has chart version {version}, not below the current {current}"
    )
    log.info("previous chart: %s from git %s", version, ref)
    return chart_dir, version


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return run(["git", *args], env=tool_env(), timeout=60, cwd=ROOT, check=False)


def _newest_release_tag_below(current: str) -> str | None:
    """The newest git tag `mysql-<X.Y.Z>` (chart-releaser's naming) below current, if any."""
    versions = [
        t.removeprefix(f"{CHART_NAME}-")
        for t in _git("tag", "--list", f"{CHART_NAME}-*").stdout.split()
        if re.fullmatch(rf"{CHART_NAME}-\d+\.\d+\.\d+", t)
    ]
    below = [v for v in versions if _semver_key(v) < _semver_key(current)]
    return f"{CHART_NAME}-{max(below, key=_semver_key)}" if below else None


def _last_commit_below(current: str) -> str | None:
    """The newest commit that changed chart/ while its version was below current: that release's state."""
    for commit in _git("log", "--format=%H", "HEAD", "--", "chart").stdout.split():
        shown = _git("show", f"{commit}:chart/Chart.yaml")
        if shown.returncode != 0:
            continue
        version = str(yaml.safe_load(shown.stdout)["version"])
        if _semver_key(version) < _semver_key(current):
            return commit
    return None


# --- servers -------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        log.info("http repository: " + format, *args)


@dataclass
class HttpRepository:
    """A chart repository: directory served over HTTP on 127.0.0.1 from a thread of the test process."""

    directory: Path
    server: http.server.ThreadingHTTPServer = field(init=False)
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        handler = functools.partial(_QuietHandler, directory=str(self.directory))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="http-repository", daemon=True)
        self.thread.start()
        log.info("http repository: serving %s on %s", self.directory, self.url)

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>"""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class OciRegistry:
    """`crane registry serve` on 127.0.0.1:<port the kernel picks>, blobs in memory."""

    def __init__(self, timeout: float = 30) -> None:
        # Cached after the first build (ci/lib.sh `step`): a no-op taking a fraction of a second.
        run(["bash", str(ROOT / "ci" / "repo-tools.sh"), "crane"], env=tool_env(), timeout=900)
        crane = BIN / "crane"
        if not crane.exists():
            raise FileNotFoundError(f"{crane} is missing: `bash ci/repo-tools.sh crane` builds it")
        self.proc = subprocess.Popen(
            [str(crane), "registry", "serve", "--address", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        self.port = 0
        while not self.port and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            line = self.proc.stderr.readline() if ready else ""
            if not line:
                break
            lines.append(line.strip())
            if m := re.search(r"serving on port (\d+)", line):
                self.port = int(m.group(1))
        if not self.port:
            self.close()
            raise RuntimeError(f"crane registry serve did not start within {timeout:.0f}s: {lines}")
        # Keep reading its request log, or the pipe fills and the registry blocks.
        self._reader = threading.Thread(target=self._drain, name="oci-registry-log", daemon=True)
        self._reader.start()
        log.info("oci registry: crane serving on %s", self.host)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            log.debug("oci registry: %s", line.rstrip())

    @property
    def host(self) -> str:
        """127.0.0.1:<port>"""
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        stop_process(self.proc)


@contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens: bound (so no one else gets it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# --- helm ----------------------------------------------------------------------------------------


def helm_home_env(root: Path) -> dict[str, str]:
    """HELM_* variables that keep repositories, cache and registry logins under root, not in ~."""
    return {
        "HELM_CONFIG_HOME": str(root / "config"),
        "HELM_CACHE_HOME": str(root / "cache"),
        "HELM_DATA_HOME": str(root / "data"),
    }


@dataclass
class Failure:
    """A helm command that was expected to fail: its message and how long it took."""

    message: str
    seconds: float


def expect_helm_failure(helm: Callable[..., subprocess.CompletedProcess[str]], *args: str) -> Failure:
    """Run helm ARGS, assert it fails within FAIL_FAST_SECONDS, and return its message."""
    start = time.monotonic()
    try:
        proc = helm(*args, timeout=FAIL_FAST_SECONDS * 3, check=False)
    except CommandError as e:  # timed out
        raise AssertionError(f"`helm {' '.join(args)}` hung for {FAIL_FAST_SECONDS * 3}s") from e
    seconds = time.monotonic() - start
    assert proc.returncode != 0, f"`helm {' '.join(args)}` succeeded: {proc.stdout}"
    assert seconds < FAIL_FAST_SECONDS, f"`helm {' '.join(args)}` took {seconds:.0f}s to fail: {proc.stderr}"
    log.info("helm %s failed in %.1fs as expected: %s", " ".join(args), seconds, proc.stderr.strip())
    return Failure(proc.stderr.strip(), seconds)


@dataclass
class RepoRelease(Release):
    """A Release installed the way users do: from a chart reference (`repo/mysql`, `oci://…`) at a version."""

    version: str = ""
    chart_args: list[str] = field(default_factory=list)

    def _values_args(self, extra: Mapping[str, str] | None = None) -> list[str]:
        assert self.version, "RepoRelease needs a chart version"
        return [*super()._values_args(extra), "--version", self.version, *self.chart_args]

    def upgrade_to(self, chart: str, version: str) -> None:
        """`helm upgrade` to chart at version with the install's values, then wait until rolled out."""
        self.chart = chart  # type: ignore[assignment]  # a chart reference, not a path
        self.version = version
        self.upgrade({})

    def deployed_chart(self) -> str:
        """`chart` of the release as `helm list` shows it, e.g. mysql-0.1.0."""
        proc = self.helm("list", "--filter", f"^{self.name}$", "--output", "json")
        releases = yaml.safe_load(proc.stdout)
        assert len(releases) == 1, f"expected one release {self.name}: {releases}"
        return releases[0]["chart"]


def write_and_read_on_replicas(release: RepoRelease, table: str, value: str) -> None:
    """Insert value on mysql-0, then read it on every replica once it applied the primary's GTIDs."""
    db = release.db
    assert release.replicas(), "the release has no replica"

    def write() -> str:
        db.query(release.primary, "CREATE DATABASE IF NOT EXISTS test")
        db.query(release.primary, f"CREATE TABLE IF NOT EXISTS {table} (v VARCHAR(64) PRIMARY KEY)")
        db.query(release.primary, f"INSERT IGNORE INTO {table} VALUES (%s)", (value,))  # IGNORE: retry-safe
        return db.gtid_executed(release.primary)

    gtid = retry_db(write, what=f"{value!r} written to {table} on {release.primary}")
    retry_db(lambda: release.wait_replicas_applied(gtid), what=f"every replica applied {gtid}")
    for pod in release.replicas():
        rows = retry_db(lambda pod=pod: db.query(pod, f"SELECT v FROM {table}"), what=f"{table} on {pod}")
        assert (value,) in rows, f"{pod} applied {gtid} but has {rows}"
