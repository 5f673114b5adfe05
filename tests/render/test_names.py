"""Object names and selectors others rely on (the e2e suite, users' connection strings)."""

from __future__ import annotations

import subprocess

import pytest

from harness.helm import SECRET_KEYS

from .render import CHART, HELM, Doc, find, names, render, secret_data

pytestmark = pytest.mark.render


def test_install_named_mysql_gives_the_documented_objects(mysql_docs: list[Doc]) -> None:
    """`helm install mysql ./chart` yields exactly the contract's object names."""
    assert names(mysql_docs) == [
        "ConfigMap/mysql",
        "NetworkPolicy/mysql",
        "Pod/mysql-test-replication",
        "PodDisruptionBudget/mysql",
        "Secret/mysql",
        "Secret/mysql-tls",
        "Service/mysql",
        "Service/mysql-primary",
        "Service/mysql-read",
        "StatefulSet/mysql",
    ]


def test_headless_service_publishes_pods_that_are_not_ready_yet(
    mysql_docs: list[Doc], mariadb_docs: list[Doc]
) -> None:
    """Peers must reach a not-ready pod (cloning, replication) by mysql-N.mysql; MariaDB's backup
    stream has its own port, MySQL's clone plugin uses 3306."""
    svc = find(mysql_docs, "Service", "mysql")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert find(mysql_docs, "StatefulSet", "mysql")["spec"]["serviceName"] == "mysql"
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"mysql": 3306}
    mariadb = find(mariadb_docs, "Service", "mysql")["spec"]["ports"]
    assert {p["name"]: p["port"] for p in mariadb} == {"mysql": 3306, "backup": 3307}


def test_primary_service_selects_only_pod_zero(mysql_docs: list[Doc]) -> None:
    """Writes go to mysql-0 through the built-in pod-name label."""
    selector = find(mysql_docs, "Service", "mysql-primary")["spec"]["selector"]
    assert selector["statefulset.kubernetes.io/pod-name"] == "mysql-0"
    read = find(mysql_docs, "Service", "mysql-read")
    assert "publishNotReadyAddresses" not in read["spec"], "mysql-read must serve ready pods only"
    assert "statefulset.kubernetes.io/pod-name" not in read["spec"]["selector"]


def test_selectors_use_only_stable_labels(mysql_docs: list[Doc]) -> None:
    """No chart version in selectors, so upgrades never touch the immutable StatefulSet selector."""
    sts = find(mysql_docs, "StatefulSet", "mysql")
    stable = {"app.kubernetes.io/name": "mysql", "app.kubernetes.io/instance": "mysql"}
    assert sts["spec"]["selector"]["matchLabels"] == stable
    assert find(mysql_docs, "PodDisruptionBudget", "mysql")["spec"]["selector"]["matchLabels"] == stable
    assert find(mysql_docs, "Service", "mysql-read")["spec"]["selector"] == stable


def test_server_is_the_first_container_with_port_3306_named_mysql(mysql_docs: list[Doc]) -> None:
    """The e2e patches /spec/template/spec/containers/0/image: that must be the server."""
    first = find(mysql_docs, "StatefulSet", "mysql")["spec"]["template"]["spec"]["containers"][0]
    assert first["name"] == "mysql"
    assert first["ports"] == [{"name": "mysql", "containerPort": 3306}]


@pytest.mark.parametrize(
    ("release", "values", "expected"),
    [
        ("db", {}, "db-mysql"),
        ("my-mysql-prod", {}, "my-mysql-prod"),
        ("db", {"nameOverride": "sql"}, "db-sql"),
        ("db", {"fullnameOverride": "orders"}, "orders"),
    ],
)
def test_fullname_follows_the_contains_rule_and_overrides(release: str, values: dict, expected: str) -> None:
    """Release names containing the chart name are used as is; overrides win."""
    docs = render(values, release=release)
    sts = find(docs, "StatefulSet", expected)
    assert sts["spec"]["serviceName"] == expected
    find(docs, "Service", f"{expected}-read")
    primary = find(docs, "Service", f"{expected}-primary")
    assert primary["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == f"{expected}-0"
    assert set(secret_data(docs, expected)) >= {"mysql-root-password", "mysql-replication-password"}


def test_secret_holds_every_password_and_the_backup_token(mysql_docs: list[Doc]) -> None:
    """Generated once, non-empty, distinct, and kept on uninstall."""
    data = secret_data(mysql_docs)
    assert set(data) == SECRET_KEYS
    assert all(len(v) >= 24 for v in data.values())
    assert len(set(data.values())) == len(data), "passwords must differ"
    secret = find(mysql_docs, "Secret", "mysql")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_existing_secret_replaces_the_chart_secret() -> None:
    """With auth.existingSecret no password Secret is rendered (the TLS one stays) and every
    password reference points at it."""
    docs = render({"auth": {"existingSecret": "db-creds"}})
    assert names([d for d in docs if d["kind"] == "Secret"]) == ["Secret/mysql-tls"]
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for d in docs
        if d["kind"] in ("StatefulSet", "Pod")
        for spec in [d["spec"]["template"]["spec"] if d["kind"] == "StatefulSet" else d["spec"]]
        for c in [*spec.get("initContainers", []), *spec["containers"]]
        for e in c.get("env", [])
        if "valueFrom" in e
    }
    assert refs == {"db-creds"}


def notes(*set_values: str) -> str:
    """NOTES.txt as `helm install --dry-run=client` prints it, with these `--set` values."""
    argv = [str(HELM), "install", "mysql", str(CHART), "--dry-run=client"]
    for value in set_values:
        argv += ["--set", value]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("NOTES:", 1)[1]


def test_notes_give_endpoints_password_command_and_scaling_without_secrets() -> None:
    """NOTES.txt: FQDNs, how to read the password and connect, how to scale (and that a bare
    `kubectl scale` is undone by the next upgrade); no literal password; no warning by default."""
    text = notes("auth.rootPassword=N0tInNotes")
    for needle in (
        "mysql-primary.default.svc.cluster.local",
        "mysql-read.default.svc.cluster.local",
        "mysql-0.mysql.default.svc.cluster.local",
        "jsonpath='{.data.mysql-root-password}'",
        "--labels=mysql-client=true",
        "replicaCount=",
        "the next `helm upgrade` sets the\n  count back to replicaCount",
    ):
        assert needle in text
    assert "N0tInNotes" not in text
    assert "WARNING" not in text


def test_notes_warn_loudly_when_pods_keep_their_data_in_an_emptydir() -> None:
    """persistence.enabled=false: NOTES says that data goes with the pods, and when every row is lost."""
    text = notes("persistence.enabled=false")
    assert "WARNING: persistence.enabled=false" in text
    assert "once no pod is left (this release runs 3) every row is gone" in text


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("flavor", ["mysql", "mariadb"])
def test_the_helm_test_pod_is_no_server_pod_to_any_selector(flavor: str) -> None:
    """The helm test pod matches none of the selectors of the Services, the disruption budget, the
    StatefulSet and the NetworkPolicy's peer rules (3306 under allowExternal=false, MariaDB's backup
    port), yet carries the client label."""
    mysql_docs = render({"flavor": flavor, "networkPolicy": {"allowExternal": False}})
    labels = find(mysql_docs, "Pod", "mysql-test-replication")["metadata"]["labels"]
    selectors = {
        f"Service/{name}": find(mysql_docs, "Service", name)["spec"]["selector"]
        for name in ("mysql", "mysql-read", "mysql-primary")
    }
    selectors["PodDisruptionBudget"] = find(mysql_docs, "PodDisruptionBudget", "mysql")["spec"]["selector"][
        "matchLabels"
    ]
    selectors["StatefulSet"] = find(mysql_docs, "StatefulSet", "mysql")["spec"]["selector"]["matchLabels"]
    policy = find(mysql_docs, "NetworkPolicy", "mysql")["spec"]
    selectors["NetworkPolicy/podSelector"] = policy["podSelector"]["matchLabels"]
    for rule in policy["ingress"]:
        for peer in rule.get("from", []):
            if (
                "matchLabels" in peer.get("podSelector", {})
                and "mysql-client" not in peer["podSelector"]["matchLabels"]
            ):
                selectors[f"NetworkPolicy/from port {rule['ports'][0]['port']}"] = peer["podSelector"][
                    "matchLabels"
                ]
    assert len(selectors) == (8 if flavor == "mariadb" else 7), selectors
    matched = [name for name, selector in selectors.items() if selects(selector, labels)]
    assert matched == [], f"the helm test pod {labels} is selected by {matched}"
    assert labels["mysql-client"] == "true"
