"""Pod Security `restricted`, least privilege, and no password literal anywhere but the Secret."""

from __future__ import annotations

import base64

import pytest

from .render import (
    AIRGAP_MARIADB_VALUES,
    AIRGAP_VALUES,
    FLAVORS,
    SCENARIOS,
    Doc,
    containers,
    env,
    find,
    pod_specs,
    render,
    render_text,
)

pytestmark = pytest.mark.render

RELEASE_LABELS = {"app.kubernetes.io/name": "mysql", "app.kubernetes.io/instance": "mysql"}
ALL_INPUTS = [
    *[pytest.param({"flavor": f}, [], id=f) for f in FLAVORS],
    *[pytest.param({}, [s], id=s.name) for s in SCENARIOS],
    pytest.param({}, [AIRGAP_VALUES], id="values-airgap"),
    pytest.param({}, [AIRGAP_MARIADB_VALUES], id="values-airgap-mariadb"),
]


def restricted_violations(spec: Doc) -> list[str]:
    """What Pod Security `restricted` (v1.34) would refuse in this pod spec."""
    problems = []
    pod_sc = spec.get("securityContext", {})
    allowed_volumes = {"configMap", "emptyDir", "persistentVolumeClaim", "secret", "projected", "downwardAPI"}
    for vol in spec.get("volumes", []):
        kinds = set(vol) - {"name"}
        if not kinds <= allowed_volumes:
            problems.append(f"volume {vol['name']} of type {kinds}")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            problems.append(key)
    for c in containers(spec):
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities not dropped")
        if set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities added")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot unset")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as root")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccomp {seccomp}")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
    return problems


@pytest.mark.parametrize(("values", "files"), ALL_INPUTS)
def test_every_pod_including_the_helm_test_passes_pod_security_restricted(values: dict, files: list) -> None:
    """The chart installs in a namespace enforcing `restricted`."""
    specs = dict(pod_specs(render(values, files)))
    assert set(specs) >= {"mysql", "mysql-test-replication"}
    for name, spec in specs.items():
        assert restricted_violations(spec) == [], name


@pytest.mark.parametrize(("values", "files"), ALL_INPUTS)
def test_pods_run_as_uid_999_with_a_read_only_root_filesystem(values: dict, files: list) -> None:
    """uid/gid 999 everywhere (shared datadir), writable paths only on volumes."""
    for name, spec in pod_specs(render(values, files)):
        sc = spec["securityContext"]
        assert (sc["runAsUser"], sc["runAsGroup"]) == (999, 999), name
        assert spec["automountServiceAccountToken"] is False
        for c in containers(spec):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, f"{name}/{c['name']}"
    sts_spec = dict(pod_specs(render(values, files)))["mysql"]
    assert sts_spec["securityContext"]["fsGroup"] == 999


def test_no_password_literal_outside_the_secret_data() -> None:
    """Passwords given as values appear only base64-encoded in the Secret, never in args, env or NOTES."""
    root, user = "S3cr3t-r00t-literal", "S3cr3t-user-literal"
    values = {"auth": {"rootPassword": root, "username": "app", "password": user, "database": "app"}}
    text = render_text(values)
    for secret in (root, user):
        assert secret not in text
    docs = render(values)
    secret = find(docs, "Secret", "mysql")
    assert base64.b64decode(secret["data"]["mysql-root-password"]).decode() == root
    generated = [base64.b64decode(v).decode() for v in secret["data"].values()]
    for d in docs:
        if d["kind"] == "Secret":
            continue
        dumped = str(d)
        for value in generated:
            assert value not in dumped, f"a password leaks into {d['kind']}/{d['metadata']['name']}"


@pytest.mark.parametrize("flavor", FLAVORS)
def test_passwords_reach_containers_only_through_secret_refs(flavor: str) -> None:
    """Every *PASSWORD* / TOKEN env var comes from secretKeyRef, none has a literal value."""
    for name, spec in pod_specs(
        render(
            {"flavor": flavor, "auth": {"username": "app", "database": "app"}, "metrics": {"enabled": True}}
        )
    ):
        for c in containers(spec):
            for key, entry in env(c).items():
                if "PASSWORD" in key or "TOKEN" in key:
                    assert "value" not in entry, f"{name}/{c['name']} {key} is a literal"
                    assert "secretKeyRef" in entry["valueFrom"], f"{name}/{c['name']} {key}"
            assert not any("password" in a.lower() for a in c.get("args", [])), f"{name}/{c['name']} args"


def network_policy(values: dict) -> Doc:
    """The release's NetworkPolicy rendered with these values."""
    return next(d for d in render(values) if d["kind"] == "NetworkPolicy")


def ingress_by_port(policy: Doc) -> dict[int, Doc]:
    return {r["ports"][0]["port"]: r for r in policy["spec"]["ingress"]}


@pytest.mark.parametrize("flavor", FLAVORS)
def test_network_policy_admits_release_pods_and_labelled_clients_only(flavor: str) -> None:
    """allowExternal false: 3306 (clients, replication, MySQL clones) from the release and labelled pods."""
    values = {"flavor": flavor, "networkPolicy": {"enabled": True, "allowExternal": False}}
    docs = render(values)
    rules = ingress_by_port(next(d for d in docs if d["kind"] == "NetworkPolicy"))
    assert {"podSelector": {"matchLabels": RELEASE_LABELS}} in rules[3306]["from"]
    assert {"podSelector": {"matchLabels": {"mysql-client": "true"}}} in rules[3306]["from"]
    test_pod = next(d for d in docs if d["kind"] == "Pod")
    assert test_pod["metadata"]["labels"]["mysql-client"] == "true", "the helm test must pass the policy"
    open_policy = network_policy({"flavor": flavor, "networkPolicy": {"enabled": True}})
    assert "from" not in ingress_by_port(open_policy)[3306]


@pytest.mark.parametrize("flavor", FLAVORS)
def test_network_policy_is_on_by_default_with_3306_open_to_clients(flavor: str) -> None:
    """By default the policy exists: 3306 open to every client, MariaDB's 3307 to the release only;
    networkPolicy.enabled=false renders none."""
    rules = ingress_by_port(network_policy({"flavor": flavor}))
    assert "from" not in rules[3306]
    assert set(rules) == ({3306, 3307} if flavor == "mariadb" else {3306})
    off = {"flavor": flavor, "networkPolicy": {"enabled": False}}
    assert not [d for d in render(off) if d["kind"] == "NetworkPolicy"]


def test_network_policy_opens_the_mariadb_backup_port_only_to_release_pods() -> None:
    """Port 3307 streams the whole database: only pods of this release may connect."""
    for allow_external in (True, False):
        policy = network_policy(
            {"flavor": "mariadb", "networkPolicy": {"enabled": True, "allowExternal": allow_external}}
        )
        assert ingress_by_port(policy)[3307]["from"] == [{"podSelector": {"matchLabels": RELEASE_LABELS}}]


def test_network_policy_has_no_backup_port_for_mysql() -> None:
    """MySQL peers clone through the clone plugin on 3306: nothing listens on 3307, nothing opens it."""
    for allow_external in (True, False):
        enabled = {"enabled": True, "allowExternal": allow_external}
        assert set(ingress_by_port(network_policy({"networkPolicy": enabled}))) == {3306}
        with_metrics = network_policy({"networkPolicy": enabled, "metrics": {"enabled": True}})
        assert set(ingress_by_port(with_metrics)) == {3306, 9104}
