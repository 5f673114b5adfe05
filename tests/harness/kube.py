"""Kubernetes helpers: the one waiting primitive, rollout predicates, exec, client pods, artifacts."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import urllib3
import yaml
from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api, NetworkingV1Api, V1Pod, V1StatefulSet
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

from harness.cluster import Cluster, CommandError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Timeouts:
    """Default timeouts for the suite, in seconds: set once here (2 shared cores are slow)."""

    rollout: float = 900
    pod_ready: float = 420
    gtid: float = 180
    client_pod: float = 240
    namespace_gone: float = 300
    helm: float = 600


TIMEOUTS = Timeouts()

# Errors that mean "not yet" while waiting (API hiccups, a restarting pod, a refused connection).
TRANSIENT: tuple[type[BaseException], ...] = (
    ApiException,
    OSError,
    CommandError,
    urllib3.exceptions.HTTPError,
)

# Pod Security "restricted" for the namespaces the tests create.
RESTRICTED_NAMESPACE_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
}


class Pending:
    """A falsy "not yet" answer from a wait_until predicate, carrying what it observed."""

    __slots__ = ("state",)

    def __init__(self, state: object) -> None:
        self.state = state

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return str(self.state)


class WaitTimeout(AssertionError):
    """wait_until ran out of time; the message names what it waited for and the last observation."""


def _describe(retry_state: RetryCallState) -> str:
    outcome = retry_state.outcome
    if outcome is None:
        return "nothing yet"
    exc = outcome.exception()
    if isinstance(exc, ApiException):
        return f"ApiException {exc.status} {exc.reason}"
    if exc is not None:
        return f"{type(exc).__name__}: {exc}"
    return repr(outcome.result())


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    interval: float = 2.0,
    what: str,
    transient: tuple[type[BaseException], ...] = TRANSIENT,
) -> T:
    """Call predicate until it returns a truthy value, and return that value.

    Uses a monotonic deadline (tenacity's stop_after_delay). A falsy value (e.g. Pending) or a
    `transient` exception means "not yet". Logs what it waits for whenever the observation
    changes (at least every 30 s), with the elapsed time. On timeout raises WaitTimeout with
    `what` and the last observed value or exception.
    """
    start = time.monotonic()
    seen: dict[str, Any] = {"state": None, "at": start}

    def progress(retry_state: RetryCallState) -> None:
        state = _describe(retry_state)
        now = time.monotonic()
        if state != seen["state"] or now - seen["at"] >= 30:
            log.info("waiting for %s (%.0fs/%.0fs): %s", what, now - start, timeout, state)
            seen.update(state=state, at=now)

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda value: not value) | retry_if_exception_type(transient),
        before_sleep=progress,
    )
    try:
        value = retrying(predicate)
    except RetryError as e:
        last = e.last_attempt
        observed = last.exception() if last.failed else last.result()
        raise WaitTimeout(
            f"timed out after {timeout:.0f}s waiting for {what}; last observed: {observed!r}"
        ) from last.exception()
    elapsed = time.monotonic() - start
    if elapsed >= 1:
        log.info("%s: done after %.0fs", what, elapsed)
    return value


@dataclass
class Kube:
    """Kubernetes API clients bound to one kubeconfig context (no global configuration)."""

    api: ApiClient
    core: CoreV1Api
    apps: AppsV1Api
    networking: NetworkingV1Api

    @classmethod
    def connect(cls, cluster: Cluster) -> Kube:
        """Build clients for cluster's private kubeconfig and context."""
        api = kubernetes.config.new_client_from_config(
            config_file=str(cluster.kubeconfig), context=cluster.context
        )
        return cls(api=api, core=CoreV1Api(api), apps=AppsV1Api(api), networking=NetworkingV1Api(api))

    def pods(self, namespace: str, selector: str | None = None) -> list[V1Pod]:
        """Return the pods in namespace (matching a label selector), sorted by name."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector or "").items
        return sorted(pods, key=lambda p: p.metadata.name)


def pod_is_ready(pod: V1Pod) -> bool:
    """True when the pod is Running, not terminating, and its Ready condition is True."""
    if pod.metadata.deletion_timestamp or pod.status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def ready_condition(pod: V1Pod) -> Any:
    """The pod's Ready condition (status and last_transition_time); AssertionError when it has none."""
    for condition in pod.status.conditions or []:
        if condition.type == "Ready":
            return condition
    raise AssertionError(f"{pod.metadata.name} has no Ready condition yet")


def container_status(pod: V1Pod, name: str) -> Any:
    """The status of pod's (non-init) container `name`; AssertionError when it has none yet."""
    for status in pod.status.container_statuses or []:
        if status.name == name:
            return status
    raise AssertionError(f"{pod.metadata.name} has no status for container {name}")


def pod_summary(pod: V1Pod) -> str:
    """One line like `mysql-3 Init:1/2` or `mysql-0 Running/ready restarts=1` for progress logs."""
    name = pod.metadata.name
    if pod.metadata.deletion_timestamp:
        return f"{name} Terminating"
    init = pod.status.init_container_statuses or []
    for i, status in enumerate(init):
        if not (status.state and status.state.terminated and status.state.terminated.exit_code == 0):
            waiting = status.state.waiting.reason if status.state and status.state.waiting else ""
            return f"{name} Init:{i}/{len(init)}{' ' + waiting if waiting else ''}"
    reasons = [
        s.state.waiting.reason for s in pod.status.container_statuses or [] if s.state and s.state.waiting
    ]
    restarts = sum(s.restart_count for s in pod.status.container_statuses or [])
    ready = "ready" if pod_is_ready(pod) else "not-ready"
    extra = f" {','.join(reasons)}" if reasons else ""
    return f"{name} {pod.status.phase}/{ready}{extra}{f' restarts={restarts}' if restarts else ''}"


def statefulset_rolled_out(
    kube: Kube, namespace: str, name: str, replicas: int | None = None
) -> Callable[[], V1StatefulSet | Pending]:
    """Predicate: the StatefulSet is rolled out, as `kubectl rollout status` means it.

    observedGeneration >= generation, readyReplicas == updatedReplicas == replicas (== `replicas`
    when given), and currentRevision == updateRevision.
    """

    def check() -> V1StatefulSet | Pending:
        sts = kube.apps.read_namespaced_stateful_set(name, namespace)
        status = sts.status
        want = sts.spec.replicas if replicas is None else replicas
        counts = (status.replicas or 0, status.ready_replicas or 0, status.updated_replicas or 0)
        done = (
            (status.observed_generation or 0) >= sts.metadata.generation
            and sts.spec.replicas == want
            and counts == (want, want, want)
            and status.current_revision == status.update_revision
        )
        if done:
            return sts
        selector = ",".join(f"{k}={v}" for k, v in sts.spec.selector.match_labels.items())
        pods = "; ".join(pod_summary(p) for p in kube.pods(namespace, selector))
        return Pending(
            f"generation {status.observed_generation}/{sts.metadata.generation}, want {want}, "
            f"replicas/ready/updated {counts}, revision {status.current_revision} -> "
            f"{status.update_revision}; pods: {pods or 'none'}"
        )

    return check


def wait_rolled_out(kube: Kube, namespace: str, name: str, replicas: int | None = None) -> V1StatefulSet:
    """Wait until the StatefulSet is rolled out (see statefulset_rolled_out) and return it."""
    return wait_until(
        statefulset_rolled_out(kube, namespace, name, replicas),
        timeout=TIMEOUTS.rollout,
        interval=3,
        what=f"statefulset {namespace}/{name} rolled out"
        + (f" with {replicas} replicas" if replicas else ""),
    )


def pod_recreated_and_ready(
    kube: Kube, namespace: str, name: str, old_uid: str
) -> Callable[[], V1Pod | Pending]:
    """Predicate: a pod called name exists with a uid other than old_uid, and is Ready."""

    def check() -> V1Pod | Pending:
        try:
            pod = kube.core.read_namespaced_pod(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return Pending(f"{name} absent")
            raise
        if pod.metadata.uid == old_uid:
            return Pending(f"{name} is still the old pod ({pod_summary(pod)})")
        return pod if pod_is_ready(pod) else Pending(pod_summary(pod))

    return check


@dataclass(frozen=True)
class CommandResult:
    """Exit code and output of a command run in a pod."""

    rc: int
    stdout: str
    stderr: str

    def ok(self) -> CommandResult:
        """Return self, or raise AssertionError with the output when rc != 0."""
        if self.rc != 0:
            raise AssertionError(
                f"command failed with exit {self.rc}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
            )
        return self

    @property
    def lines(self) -> list[str]:
        """The non-empty stdout lines, stripped."""
        return [line.strip() for line in self.stdout.splitlines() if line.strip()]


def exec_in_pod(
    kube: Kube,
    namespace: str,
    pod: str,
    argv: Sequence[str],
    *,
    container: str | None = None,
    timeout: float = 60,
) -> CommandResult:
    """Run argv in a pod's container through the exec API and return its exit code and output."""
    kwargs = {"container": container} if container else {}
    resp = stream(
        kube.core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=list(argv),
        stdin=False,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
        **kwargs,
    )
    try:
        resp.run_forever(timeout=timeout)
        if resp.is_open():
            raise TimeoutError(f"exec {argv!r} in {namespace}/{pod} still running after {timeout}s")
        stdout, stderr = resp.read_stdout(timeout=0), resp.read_stderr(timeout=0)
        status = yaml.safe_load(resp.read_channel(3) or "{}") or {}
    finally:
        resp.close()
    if status.get("status") == "Success":
        return CommandResult(0, stdout, stderr)
    causes = (status.get("details") or {}).get("causes") or []
    codes = [int(c["message"]) for c in causes if c.get("reason") == "ExitCode"]
    if codes:
        return CommandResult(codes[0], stdout, stderr)
    return CommandResult(-1, stdout, f"{stderr}\n{status.get('message', status)}")


RESTRICTED_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}


def run_client_pod(
    cluster: Cluster,
    namespace: str,
    argv: Sequence[str],
    *,
    image: str,
    uid: int,
    name_prefix: str = "client",
    secret_env: Mapping[str, tuple[str, str]] | None = None,
    labels: Mapping[str, str] | None = None,
    timeout: float = TIMEOUTS.client_pod,
) -> CommandResult:
    """Run argv in a throwaway pod, as `kubectl run NAME -i --rm --restart=Never` does, and return its result.

    The container first waits for its stdin to close, which happens once kubectl has attached:
    attach does not replay output written before it connects, so a quick command could lose lines.
    secret_env maps env var names to (secret, key): passwords reach the pod through secretKeyRef,
    never through argv. The pod passes Pod Security "restricted" (non-root `uid`, no privilege
    escalation, all capabilities dropped, RuntimeDefault seccomp, read-only root filesystem).
    """
    name = f"{name_prefix}-{uuid.uuid4().hex[:6]}"
    env = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for var, (secret, key) in (secret_env or {}).items()
    ]
    overrides = {
        "apiVersion": "v1",
        "metadata": {"labels": dict(labels or {})},
        "spec": {
            "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": uid, "runAsGroup": uid},
            "containers": [{"name": name, "env": env, "securityContext": RESTRICTED_CONTAINER_SECURITY}],
        },
    }
    args = [
        "run", name, "--namespace", namespace, f"--image={image}", "--image-pull-policy=IfNotPresent",
        "--restart=Never", "--rm", "-i", "--quiet", "--override-type=strategic",
        f"--overrides={json.dumps(overrides)}", f"--pod-running-timeout={int(timeout)}s", "--",
        "sh", "-c", 'read -r _ || true; exec "$@"', "client", *argv,
    ]  # fmt: skip
    log.info("kubectl run %s -n %s -- %s", name, namespace, " ".join(argv))
    start = time.monotonic()
    proc = cluster.kubectl(*args, timeout=timeout + 60, check=False, input="")
    log.info("kubectl run %s: exit %d after %.0fs", name, proc.returncode, time.monotonic() - start)
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)


def container_logs(kube: Kube, namespace: str, *, timestamps: bool = False) -> dict[str, str]:
    """'pod/container[/previous]' -> log, for every init and app container of every pod in namespace;
    the previous run's log too when a container restarted. A log the API refuses (a container not
    started yet) maps to the API's answer."""
    logs: dict[str, str] = {}
    for pod in kube.pods(namespace):
        name = pod.metadata.name
        statuses = (pod.status.init_container_statuses or []) + (pod.status.container_statuses or [])
        for status in statuses:
            runs = [False, True] if status.restart_count else [False]
            for previous in runs:
                where = f"{name}/{status.name}" + ("/previous" if previous else "")
                try:
                    logs[where] = kube.core.read_namespaced_pod_log(
                        name, namespace, container=status.name, previous=previous, timestamps=timestamps
                    )
                except ApiException as e:
                    logs[where] = f"(no log: {e.status} {e.reason})"
    return logs


def dump_namespace(cluster: Cluster, kube: Kube, namespace: str, dest: Path) -> None:
    """Write what explains a failure in namespace to dest: objects, events, describe, every container's logs.

    Never raises: a failing dump must not hide the test failure it documents.
    """
    try:
        dest.mkdir(parents=True, exist_ok=True)
        commands = {
            "get.txt": ["get", "all,pvc,configmap,networkpolicy,poddisruptionbudget", "-o", "wide"],
            "events.txt": ["get", "events", "--sort-by=.metadata.creationTimestamp", "-o", "wide"],
            "describe.txt": ["describe", "statefulset,pods,pvc,service"],
        }
        for filename, args in commands.items():
            proc = cluster.kubectl(*args, "--namespace", namespace, timeout=60, check=False)
            (dest / filename).write_text(proc.stdout + proc.stderr)
        for where, text in container_logs(kube, namespace, timestamps=True).items():
            (dest / f"logs-{where.replace('/', '-')}.txt").write_text(text)
        log.info("artifacts for namespace %s written to %s", namespace, dest)
    except Exception:
        log.exception("could not dump namespace %s to %s", namespace, dest)


def delete_namespace(kube: Kube, namespace: str) -> None:
    """Delete namespace and wait until its pods are gone (their servers shut down, their volumes
    released). The namespace object itself lingers for another ~30 s of the namespace controller's
    rounds, which no later test needs: each module has a namespace of its own."""
    try:
        kube.core.delete_namespace(namespace)
    except ApiException as e:
        if e.status != 404:
            raise

    def gone() -> bool | Pending:
        try:
            ns = kube.core.read_namespace(namespace)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        left = [pod_summary(p) for p in kube.pods(namespace)]
        return not left or Pending(f"{ns.status.phase}; pods: {'; '.join(left)}")

    wait_until(gone, timeout=TIMEOUTS.namespace_gone, interval=2, what=f"namespace {namespace}'s pods gone")
