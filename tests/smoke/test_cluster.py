"""The cluster itself works the way the chart needs: StatefulSet + PVCs spread over nodes, cluster DNS and
Services across nodes, storage, and a pod network that enforces NetworkPolicy."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from kubernetes.client import V1Pod

from harness.cluster import Cluster
from harness.kube import (
    RESTRICTED_CONTAINER_SECURITY,
    RESTRICTED_POD_SECURITY,
    TIMEOUTS,
    Kube,
    Pending,
    exec_in_pod,
    pod_recreated_and_ready,
    run_client_pod,
    wait_rolled_out,
    wait_until,
)

pytestmark = pytest.mark.smoke

NOBODY = 65534
WEB_SCRIPT = (
    'mkdir -p /data/www && echo "$HOSTNAME" > /data/www/index.html && exec httpd -f -p 8080 -h /data/www'
)


def web_objects(image: str) -> dict[str, dict]:
    """StatefulSet `web` (2 busybox httpd pods on different nodes, a PVC each), its headless Service, a
    ClusterIP Service."""
    labels = {"app": "web"}
    one_per_node = {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
    spread = {"requiredDuringSchedulingIgnoredDuringExecution": [one_per_node]}
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "labels": labels},
        "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "http", "port": 8080}]},
    }
    http = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web-http", "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": labels,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "serviceName": "web",
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "affinity": {"podAntiAffinity": spread},
                    "securityContext": {**RESTRICTED_POD_SECURITY, "runAsUser": NOBODY, "runAsGroup": NOBODY},
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", WEB_SCRIPT],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2},
                            "securityContext": RESTRICTED_CONTAINER_SECURITY,
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "16Mi"}},
                    },
                }
            ],
        },
    }
    return {"headless": headless, "http": http, "statefulset": statefulset}


@pytest.fixture(scope="module")
def web(kind_cluster: Cluster, kube: Kube, namespace: str) -> Iterator[str]:
    """StatefulSet `web` and its Services created in the module's namespace, and rolled out."""
    objects = web_objects(kind_cluster.busybox_image)
    kube.core.create_namespaced_service(namespace, objects["headless"])
    kube.core.create_namespaced_service(namespace, objects["http"])
    kube.apps.create_namespaced_stateful_set(namespace, objects["statefulset"])
    wait_rolled_out(kube, namespace, "web", replicas=2)
    yield namespace


def sh(kube: Kube, namespace: str, pod: str, script: str) -> str:
    """Run a shell script in pod and return its stdout, failing with its output on a non-zero exit."""
    return exec_in_pod(kube, namespace, pod, ["sh", "-c", script], timeout=60).ok().stdout


def test_statefulset_with_headless_service_and_pvcs_becomes_ready(kube: Kube, web: str) -> None:
    """A 2-replica StatefulSet with a headless Service and volumeClaimTemplates is Ready, a Bound PVC each."""
    status = kube.apps.read_namespaced_stateful_set("web", web).status
    assert (status.ready_replicas, status.current_revision) == (2, status.update_revision)
    claims = {
        c.metadata.name: c.status.phase for c in kube.core.list_namespaced_persistent_volume_claim(web).items
    }
    assert claims == {"data-web-0": "Bound", "data-web-1": "Bound"}


def resolve(kube: Kube, namespace: str, pod: str, name: str) -> list[str]:
    """Resolve a short name from pod through cluster DNS, trying each search domain as the resolver does.

    busybox nslookup ignores resolv.conf's search list, so the expansion is done in the shell: the first
    search domain that answers wins. (The static busybox's `wget -T` segfaults: callers use `timeout 5 wget`.)
    """
    script = (
        'for domain in $(sed -n "s/^search //p" /etc/resolv.conf); do '
        f'nslookup "{name}.$domain" 2>/dev/null | grep -q "^Name:" && exec nslookup "{name}.$domain"; '
        "done; exit 1"
    )
    answer = sh(kube, namespace, pod, script)
    return re.findall(r"^Address:\s*([0-9.]+)\s*$", answer, flags=re.MULTILINE)


def test_the_cluster_has_a_control_plane_and_three_schedulable_workers(kube: Kube) -> None:
    """kind-config.yaml's shape: one control plane (tainted) and three Ready workers for the pods."""
    nodes = kube.core.list_node().items
    workers = [n for n in nodes if "node-role.kubernetes.io/control-plane" not in (n.metadata.labels or {})]
    assert len(nodes) - len(workers) == 1
    assert len(workers) == 3
    for node in nodes:
        ready = [c.status for c in node.status.conditions if c.type == "Ready"]
        assert ready == ["True"], f"{node.metadata.name} Ready={ready}"


def test_web_0_resolves_from_web_1_on_another_node_through_cluster_dns(kube: Kube, web: str) -> None:
    """web-0 and web-1 run on different nodes; `web-0.web` resolves from web-1 to web-0's pod IP, which
    answers with web-0's hostname: pods reach each other across nodes."""
    pods = [kube.core.read_namespaced_pod(name, web) for name in ("web-0", "web-1")]
    assert pods[0].spec.node_name != pods[1].spec.node_name
    pod_ip = pods[0].status.pod_ip
    assert resolve(kube, web, "web-1", "web-0.web") == [pod_ip]
    assert sh(kube, web, "web-1", f"timeout 5 wget -q -O - http://{pod_ip}:8080/").strip() == "web-0"


def test_clusterip_service_answers_from_a_pod(kube: Kube, web: str) -> None:
    """The ClusterIP Service `web-http` resolves to its IP and answers on port 80 from both backends."""
    service_ip = kube.core.read_namespaced_service("web-http", web).spec.cluster_ip
    assert resolve(kube, web, "web-1", "web-http") == [service_ip]
    requests = f"for i in $(seq 20); do timeout 5 wget -q -O - http://{service_ip}/; done"
    answers: set[str] = set()

    def both_backends_answered() -> bool | Pending:
        # A backend that just became Ready reaches kube-proxy's rules a moment later: keep asking.
        answers.update(sh(kube, web, "web-1", requests).split())
        return answers == {"web-0", "web-1"} or Pending(f"answered by {sorted(answers)}")

    wait_until(both_backends_answered, timeout=60, what="web-http answering from web-0 and web-1")
    assert answers == {"web-0", "web-1"}


def test_file_on_the_pvc_survives_deleting_the_pod(kube: Kube, web: str) -> None:
    """A file written to web-0's PVC is still there after the pod is deleted and recreated."""
    token = uuid.uuid4().hex
    sh(kube, web, "web-0", f"echo {token} > /data/marker && sync")
    old: V1Pod = kube.core.read_namespaced_pod("web-0", web)
    kube.core.delete_namespaced_pod("web-0", web)
    new = wait_until(
        pod_recreated_and_ready(kube, web, "web-0", old.metadata.uid),
        timeout=TIMEOUTS.pod_ready,
        what="web-0 recreated and Ready",
    )
    assert new.metadata.uid != old.metadata.uid
    assert sh(kube, web, "web-0", "cat /data/marker").strip() == token


def fetch(url: str) -> str:
    """Shell that prints `open` when url answers within 5 s, else `closed`."""
    return f"timeout 5 wget -q -O /dev/null {url} && echo open || echo closed"


def reachable(kube: Kube, namespace: str, pod: str, url: str) -> bool:
    """Whether pod gets an answer from url within 5 s."""
    return sh(kube, namespace, pod, fetch(url)).strip() == "open"


def policy(name: str, ingress: list[dict]) -> dict:
    """A NetworkPolicy over every pod of the namespace with these ingress rules ([] denies all)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def test_a_default_deny_policy_blocks_and_an_allow_rule_lets_through(
    kind_cluster: Cluster, kube: Kube, web: str
) -> None:
    """This cluster enforces NetworkPolicy: with a default-deny ingress policy web-1 no longer reaches
    web-0; an allow rule for `app=web` pods on 8080 lets web-1 through again while a pod without the
    label stays out. The policies are removed afterwards."""
    net = kube.networking
    url = f"http://{kube.core.read_namespaced_pod('web-0', web).status.pod_ip}:8080/"
    assert reachable(kube, web, "web-1", url)
    net.create_namespaced_network_policy(web, policy("deny-all", []))
    try:
        wait_until(
            lambda: not reachable(kube, web, "web-1", url) or Pending("web-1 still reaches web-0"),
            timeout=60, what="the default-deny policy enforced",
        )  # fmt: skip
        allow = [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 8080}]}]
        net.create_namespaced_network_policy(web, policy("allow-web", allow))
        wait_until(
            lambda: reachable(kube, web, "web-1", url) or Pending("web-1 still blocked"),
            timeout=60, what="the allow rule enforced",
        )  # fmt: skip
        outsider = run_client_pod(
            kind_cluster, web, ["sh", "-c", fetch(url)],
            image=kind_cluster.busybox_image, uid=NOBODY, name_prefix="outsider", labels={},
        ).ok()  # fmt: skip
        assert outsider.lines == ["closed"]
    finally:
        for name in ("deny-all", "allow-web"):
            net.delete_collection_namespaced_network_policy(web, field_selector=f"metadata.name={name}")
