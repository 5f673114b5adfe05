"""The Kubernetes cluster under test: settings, `make cluster`/`make images`, kubeconfig, commands.

Two ways to get a cluster:

- kind (default): `make cluster` creates or reuses the kind cluster `mysql-chart`, `make images`
  builds and loads the database images; the session deletes the cluster at the end only if it
  created it and was not told to keep it.
- existing: `--kube-context NAME` (or `KUBE_CONTEXT`), or pytest-helm-charts' `--kubeconfig PATH`,
  uses that cluster as it is: nothing is created, loaded or deleted.

Every command runs with `bin/` first on PATH and a private, flattened kubeconfig holding exactly
one context, so the user's current context can change during a run without effect.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

# Shell run on a kind node: $1 a signal, then process ids: sends the signal to each process and to
# every process it started, recursively (a process gone meanwhile is skipped).
SIGNAL_TREES = r"""
signal=$1
shift
tree() { for p in "$@"; do echo "$p"; tree $(cat /proc/"$p"/task/*/children 2>/dev/null); done; }
pids=$(tree "$@")
for p in $pids; do kill -s "$signal" "$p" 2>/dev/null || true; done
echo "SIG$signal to" $pids
"""

# Shell run on a kind node: until the file $1 exists, every 0.2 s, every argument of every process
# (one per line); awk prints each distinct line once.
SAMPLE_ARGS = r"""
while [ ! -e "$1" ]; do
  cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' '\n'
  sleep 0.2
done | awk '!seen[$0]++'
"""

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "bin"
CHART = ROOT / "chart"
ARTIFACTS = ROOT / "artifacts"
KIND_CLUSTER = "mysql-chart"
KIND_CONTEXT = f"kind-{KIND_CLUSTER}"
TOOLS = ("kind", "helm", "kubectl")
MODES = ("airgap", "registry")
FLAVORS = ("mariadb", "mysql")


def artifact_dir(nodeid: str) -> Path:
    """artifacts/<test id>/ for a pytest node id (or a node id plus a suffix), as a safe directory name."""
    return ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")


# Images the tests themselves run (not the chart's): per mode.
BUSYBOX = {"airgap": "mysql-chart.local/busybox:1.35", "registry": "busybox:1.36"}
# The values every air-gapped install takes, per flavor: the locally built images, never pulled.
AIRGAP_VALUES = {
    "mysql": ROOT / "ci" / "values-airgap.yaml",
    "mariadb": ROOT / "ci" / "values-airgap-mariadb.yaml",
}
# MariaDB's image update in the e2e is the LTS upgrade users make: install on the previous LTS series
# (in both modes the tag of that series), then patch the server image to the chart's default.
MARIADB_PREVIOUS_SERIES = "10.11"
# MySQL: Debian serves one 9.7 release, so air-gapped the update is a second build of it with
# another package set (ci/db-images.sh).
AIRGAP_MYSQL_UPDATE_IMAGE = "mysql-chart.local/mysql:9.7-r2"


@dataclass(frozen=True)
class ImageUpdate:
    """The rolling image update of the e2e: values to install with, then the server image to patch in."""

    install_values: dict[str, str]
    image: str


class CommandError(RuntimeError):
    """A command exited non-zero (or timed out); carries the command and the tail of its output."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(
            f"`{' '.join(self.argv)}` {status}\n--- stdout (tail) ---\n{_tail(stdout)}"
            f"\n--- stderr (tail) ---\n{_tail(stderr)}"
        )


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment for subprocesses: the project's `bin/` first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def missing_tools(env: Mapping[str, str]) -> list[str]:
    """Return the names in TOOLS that cannot be found on env's PATH."""
    return [name for name in TOOLS if shutil.which(name, path=env["PATH"]) is None]


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    check: bool = True,
    input: str | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run argv and capture its output; raise CommandError on a non-zero exit when check is set."""
    log.debug("$ %s", " ".join(argv))
    try:
        proc = subprocess.run(
            list(argv), env=dict(env), cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as e:
        raise CommandError(argv, None, _text(e.stdout), _text(e.stderr)) from e
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc


def stop_process(proc: subprocess.Popen[str]) -> None:
    """Terminate a background helper process (port-forward, local registry); kill it if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def run_logged(argv: Sequence[str], *, env: Mapping[str, str], timeout: float, cwd: Path = ROOT) -> None:
    """Run a long command, logging each output line live with the elapsed time; raise on failure."""
    start = time.monotonic()
    log.info("$ %s (up to %.0f min)", " ".join(argv), timeout / 60)
    lines: list[str] = []
    with subprocess.Popen(
        list(argv), env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                log.info("[%s +%.0fs] %s", argv[-1], time.monotonic() - start, lines[-1])
            rc = proc.wait()
        finally:
            killer.cancel()
    elapsed = time.monotonic() - start
    log.info("$ %s: exit %d after %.0fs", " ".join(argv), rc, elapsed)
    if rc != 0:
        raise CommandError(argv, None if elapsed >= timeout else rc, "\n".join(lines), "")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """What the run was asked to do: from pytest options first, then environment variables."""

    mode: str
    flavor: str
    keep: bool
    kube_context: str | None
    kube_config: Path | None

    @property
    def existing_cluster(self) -> bool:
        """True when the run targets a cluster it must neither create nor delete."""
        return self.kube_context is not None or self.kube_config is not None

    @classmethod
    def resolve(
        cls, *, flavor: str | None, keep: bool, kube_context: str | None, kube_config: str | None
    ) -> Settings:
        """Combine options and environment (FLAVOR, KEEP, KUBE_CONTEXT; AIRGAP via ci/mode.sh)."""
        mode = detect_mode()
        flavor = flavor or os.environ.get("FLAVOR") or "mysql"
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}, got {flavor!r}")
        return cls(
            mode=mode,
            flavor=flavor,
            keep=keep or _env_flag("KEEP"),
            kube_context=kube_context or os.environ.get("KUBE_CONTEXT") or None,
            kube_config=Path(kube_config) if kube_config else None,
        )


def detect_mode() -> str:
    """Return `airgap` or `registry` as `ci/mode.sh` decides (AIRGAP=1/0 forces it)."""
    script = ROOT / "ci" / "mode.sh"
    if not script.is_file():
        raise FileNotFoundError(f"{script} is missing: it decides between air-gapped and registry mode")
    mode = run(["bash", str(script)], env=tool_env(), timeout=30).stdout.strip()
    if mode not in MODES:
        raise ValueError(f"ci/mode.sh printed {mode!r}, expected one of {MODES}")
    return mode


@dataclass
class Cluster:
    """A reachable cluster: one kubeconfig file, one context, and the tools to drive it."""

    kubeconfig: Path
    context: str
    settings: Settings
    created: bool = False
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = tool_env({"KUBECONFIG": str(self.kubeconfig)})

    @property
    def busybox_image(self) -> str:
        """The busybox image for throwaway pods in this mode."""
        return BUSYBOX[self.settings.mode]

    @property
    def values_files(self) -> list[Path]:
        """The values files every install of the chart takes in this mode and flavor."""
        return [AIRGAP_VALUES[self.settings.flavor]] if self.settings.mode == "airgap" else []

    def image_update(self) -> ImageUpdate:
        """The e2e's rolling image update for this flavor and mode (UPDATE_IMAGE overrides the image).

        mariadb: install on the previous LTS series, then patch in the image every other test runs
        (10.11 -> 11.8, a real upgrade). mysql: air-gapped, the second local build of 9.7; with a
        registry, the default tag cut to major.minor (`mysql:9.7.4` -> `mysql:9.7`).
        """
        flavor = self.settings.flavor
        defaults = yaml.safe_load((CHART / "values.yaml").read_text())[flavor]["image"]
        for path in self.values_files:
            defaults = {**defaults, **yaml.safe_load(path.read_text())[flavor]["image"]}
        current = f"{defaults['repository']}:{defaults['tag']}"
        install: dict[str, str] = {}
        if flavor == "mariadb":
            install = {f"mariadb.{key}.tag": MARIADB_PREVIOUS_SERIES for key in ("image", "backupImage")}
            image = current
        elif self.settings.mode == "airgap":
            image = AIRGAP_MYSQL_UPDATE_IMAGE
        else:
            repo, _, tag = current.rpartition(":")
            image = f"{repo}:{'.'.join(tag.split('.')[:2])}"
            if image == current:
                raise ValueError(f"cannot derive a second tag from {current!r}: set UPDATE_IMAGE")
        return ImageUpdate(install_values=install, image=os.environ.get("UPDATE_IMAGE") or image)

    def _container_pid(self, node: str, container_id: str) -> str:
        """The host PID of a container's main process on a kind node (crictl inspect on the node).

        container_id is the pod status' `containerd://<id>`. Only for the kind cluster this harness
        manages (the node is a Docker container): an existing cluster raises.
        """
        if self.settings.existing_cluster:
            raise RuntimeError("killing a container's process needs the kind cluster's nodes (docker exec)")
        cid = container_id.removeprefix("containerd://")
        inspect = ["crictl", "inspect", "--output", "go-template", "--template", "{{.info.pid}}", cid]
        pid = run(["docker", "exec", node, *inspect], env=self.env, timeout=60).stdout.strip()
        if not pid.isdigit() or int(pid) <= 1:
            raise RuntimeError(f"crictl gave no process id for container {cid} on {node}: {pid!r}")
        return pid

    def kill_container(self, node: str, container_id: str, signal: str = "KILL") -> None:
        """Send `signal` to the main process of a container on a kind node: KILL as a crash or the OOM
        killer would, STOP to freeze it (CONT thaws it)."""
        pid = self._container_pid(node, container_id)
        run(["docker", "exec", node, "kill", f"-{signal}", pid], env=self.env, timeout=60)
        short = container_id.removeprefix("containerd://")[:12]
        log.info("sent SIG%s to process %s (container %s) on node %s", signal, pid, short, node)

    def stop_node(self, node: str) -> None:
        """`docker stop` a kind node: the machine goes away, with every pod on it (a lost node)."""
        if self.settings.existing_cluster:
            raise RuntimeError("stopping a node needs the kind cluster's nodes (docker stop)")
        run(["docker", "stop", node], env=self.env, timeout=120)
        log.info("node %s stopped (docker stop)", node)

    def start_node(self, node: str) -> None:
        """`docker start` a stopped kind node: it boots and its kubelet rejoins the cluster."""
        run(["docker", "start", node], env=self.env, timeout=120)
        log.info("node %s started again (docker start)", node)

    def drop_packets(self, node: str, container_id: str, peer: str, *, drop: bool = True) -> None:
        """Partition a pod from the address `peer`, silently: every packet between them is dropped
        (iptables in the network namespace of the container's process, entered from the node), as a
        dead link would, with no reset; drop=False lifts it. The pod still reaches everything else."""
        pid = self._container_pid(node, container_id)
        op = "-I" if drop else "-D"
        script = (
            f'nsenter -t "$1" -n iptables {op} INPUT -s "$2" -j DROP && '
            f'nsenter -t "$1" -n iptables {op} OUTPUT -d "$2" -j DROP'
        )
        run(["docker", "exec", node, "sh", "-c", script, "sh", pid, peer], env=self.env, timeout=60)
        what = "dropping" if drop else "passing"
        log.info("%s every packet between process %s (on %s) and %s", what, pid, node, peer)

    def freeze_containers(self, node: str, container_ids: Sequence[str]) -> Callable[[], None]:
        """SIGSTOP the main process of each container and every process it started: sockets stay open
        and silent, as a hung server's. Processes exec'd into the containers later (probes) run.
        Returns the function that resumes them (SIGCONT)."""
        pids = [self._container_pid(node, cid) for cid in container_ids]
        log.info("%s", self.on_node(node, SIGNAL_TREES, "STOP", *pids, timeout=60).strip())

        def resume() -> None:
            log.info("%s", self.on_node(node, SIGNAL_TREES, "CONT", *pids, timeout=60).strip())

        return resume

    def on_node(self, node: str, script: str, *args: str, timeout: float = 300) -> str:
        """Run a sh script (arguments $1...) as root on a kind node; its stdout."""
        if self.settings.existing_cluster:
            raise RuntimeError("running a script on a node needs the kind cluster's nodes (docker exec)")
        return run(
            ["docker", "exec", node, "sh", "-euc", script, "sh", *args], env=self.env, timeout=timeout
        ).stdout

    def kill_container_when_file_appears(
        self, node: str, container_id: str, path: str, timeout: float = 300
    ) -> None:
        """SIGKILL a container's main process the moment `path` exists on the node (polled every 50 ms
        on the node itself, so the kill lands within a blink of the file's creation)."""
        pid = self._container_pid(node, container_id)
        polls = int(timeout * 20)
        script = f'for i in $(seq {polls}); do [ -e "$1" ] && exec kill -KILL "$2"; sleep 0.05; done; exit 3'
        run(["docker", "exec", node, "sh", "-c", script, "sh", path, pid], env=self.env, timeout=timeout + 60)
        log.info("killed process %s on node %s once %s appeared", pid, node, path)

    def sample_process_args(self, nodes: Sequence[str]) -> ArgsSampler:
        """Start sampling the arguments of every process on the kind nodes (ArgsSampler.stop)."""
        if self.settings.existing_cluster:
            raise RuntimeError("sampling process arguments needs the kind cluster's nodes (docker exec)")
        return ArgsSampler(self, list(nodes))

    def kubectl(
        self, *args: str, timeout: float = 120, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `kubectl --context <ctx> ARGS`."""
        return run(
            ["kubectl", "--context", self.context, *args],
            env=self.env,
            timeout=timeout,
            check=check,
            input=input,
        )

    def helm(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `helm --kube-context <ctx> ARGS`."""
        return run(
            ["helm", "--kube-context", self.context, *args], env=self.env, timeout=timeout, check=check
        )

    def kind_export_logs(self, dest: Path) -> None:
        """Write `kind export logs` into dest (only for the kind cluster this harness manages)."""
        if self.settings.existing_cluster:
            return
        dest.mkdir(parents=True, exist_ok=True)
        proc = run(
            ["kind", "export", "logs", str(dest), "--name", KIND_CLUSTER],
            env=self.env,
            timeout=300,
            check=False,
        )
        detail = _tail(proc.stderr, 1) if proc.returncode else "ok"
        log.info("kind export logs -> %s (exit %d: %s)", dest, proc.returncode, detail)


def kind_cluster_exists(env: Mapping[str, str]) -> bool:
    """True when kind lists the cluster `mysql-chart` (False when kind itself is not built yet)."""
    if shutil.which("kind", path=env["PATH"]) is None:
        return False
    proc = run(["kind", "get", "clusters"], env=env, timeout=60, check=False)
    return KIND_CLUSTER in proc.stdout.split()


def _require_tools(env: Mapping[str, str]) -> None:
    missing = missing_tools(env)
    if missing:
        raise FileNotFoundError(
            f"missing {', '.join(missing)} (looked in {BIN} and PATH): run `make tools`, which builds them "
            "into bin/"
        )


def _write_private_kubeconfig(content: str, path: Path) -> Path:
    doc = yaml.safe_load(content)
    if not doc or len(doc.get("contexts") or []) != 1:
        raise ValueError(
            f"expected a kubeconfig with exactly one context, got {len(doc.get('contexts') or [])}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(content)
    return path


def up(settings: Settings, workdir: Path) -> Cluster:
    """Create or reuse the cluster the settings name and return it, ready for kubectl and helm.

    kind: `make cluster` then `make images` (both idempotent); existing: check it answers.
    Raises (never skips) when the cluster cannot be reached.
    """
    env = tool_env()
    kubeconfig = workdir / "kubeconfig"
    if settings.existing_cluster:
        _require_tools(env)
        if settings.kube_config:
            env["KUBECONFIG"] = str(settings.kube_config)
        args = ["kubectl", "config", "view", "--minify", "--flatten"]
        if settings.kube_context:
            args += ["--context", settings.kube_context]
        _write_private_kubeconfig(run(args, env=env, timeout=30).stdout, kubeconfig)
        context = yaml.safe_load(kubeconfig.read_text())["current-context"]
        cluster = Cluster(kubeconfig=kubeconfig, context=context, settings=settings, created=False)
        log.info("using the existing cluster of context %s (nothing is created or deleted)", context)
    else:
        existed = kind_cluster_exists(env)
        run_logged(["make", "cluster"], env=env, timeout=3600)
        run_logged(["make", "images"], env=env, timeout=3600)
        _require_tools(env)
        content = run(["kind", "get", "kubeconfig", "--name", KIND_CLUSTER], env=env, timeout=60).stdout
        _write_private_kubeconfig(content, kubeconfig)
        cluster = Cluster(kubeconfig=kubeconfig, context=KIND_CONTEXT, settings=settings, created=not existed)
        log.info("kind cluster %s: %s", KIND_CLUSTER, "created by this run" if cluster.created else "reused")
    cluster.kubectl("get", "--raw", "/readyz", timeout=30)
    return cluster


def down(cluster: Cluster) -> None:
    """Delete the kind cluster if this run created it and was not told to keep it."""
    if cluster.settings.existing_cluster or not cluster.created:
        return
    if cluster.settings.keep:
        log.info(
            "keeping kind cluster %s (context %s) for inspection; `make cluster-down` deletes it",
            KIND_CLUSTER,
            KIND_CONTEXT,
        )
        return
    run_logged(["make", "cluster-down"], env=cluster.env, timeout=600)


class ArgsSampler:
    """Every distinct argument of every process on some kind nodes, sampled every 0.2 s on the node
    itself (SAMPLE_ARGS) from start until stop(). Nothing secret goes into the sampler's own arguments."""

    def __init__(self, cluster: Cluster, nodes: list[str]) -> None:
        self.cluster, self.nodes = cluster, nodes
        self.stop_file = f"/tmp/stop-sampling-{os.getpid()}-{time.monotonic_ns()}"
        self.seen: set[str] | None = None
        self.procs = [
            subprocess.Popen(
                ["docker", "exec", node, "sh", "-c", SAMPLE_ARGS, "sh", self.stop_file],
                env=cluster.env,
                stdout=subprocess.PIPE,
                encoding="utf-8",
                errors="replace",
            )
            for node in nodes
        ]
        log.info("sampling process arguments on %s", ", ".join(nodes))

    def stop(self) -> set[str]:
        """Stop sampling (idempotent); every distinct argument seen on any of the nodes."""
        if self.seen is None:
            self.seen = set()
            for node in self.nodes:
                run(["docker", "exec", node, "touch", self.stop_file], env=self.cluster.env, timeout=60)
            for node, proc in zip(self.nodes, self.procs, strict=True):
                out, _ = proc.communicate(timeout=120)
                self.seen.update(out.splitlines())
                run(["docker", "exec", node, "rm", "-f", self.stop_file], env=self.cluster.env, timeout=60)
            log.info("process arguments: %d distinct on %d nodes", len(self.seen), len(self.nodes))
        return self.seen
