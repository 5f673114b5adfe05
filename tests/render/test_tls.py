"""TLS between the pods (tls.*), as rendered: the release's CA and certificate, where they are
mounted, and what the pod scripts make of them (server options, client verification).

The cluster half (replication and clones over verified TLS) is in tests/e2e/test_replication.py.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from .render import FLAVORS, Doc, chart_files, container, env, find, pod_specs, render, run_function

pytestmark = pytest.mark.render

TLS_DIR = "/etc/mysql-chart-tls"
SERVER_CONTAINERS = ("init-config", "clone", "mysql", "sidecar")


def tls_docs(flavor: str = "mysql", **tls: object) -> list[Doc]:
    return render({"flavor": flavor, "tls": {"enabled": True, **tls}}, namespace="db")


def openssl(*args: str, stdin: bytes) -> str:
    proc = subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


@pytest.mark.parametrize("flavor", FLAVORS)
def test_tls_is_on_by_default_and_off_renders_nothing_of_it(flavor: str) -> None:
    """Since 0.9.0 every server container gets the certificate by default; tls.enabled=false
    renders no Secret, no TLS_DIR and peers by their short names. A fresh render (helm template,
    or an install: nothing runs yet) has no switch-over."""
    on = render({"flavor": flavor})
    find(on, "Secret", "mysql-tls")
    sts = dict(pod_specs(on))["mysql"]
    for name in SERVER_CONTAINERS:
        assert env(container(sts, name))["TLS_DIR"]["value"] == TLS_DIR, name
        assert "TLS_SWITCHOVER" not in env(container(sts, name)), name
    off = render({"flavor": flavor, "tls": {"enabled": False}})
    assert not [d for d in off if d["kind"] == "Secret" and d["metadata"]["name"] == "mysql-tls"]
    for pod, spec in pod_specs(off):
        for c in spec.get("initContainers", []) + spec["containers"]:
            assert "TLS_DIR" not in env(c), f"{pod}/{c['name']}"
    assert (
        env(container(dict(pod_specs(off))["mysql"], "sidecar"))["PRIMARY_HOST"]["value"] == "mysql-0.mysql"
    )


def test_the_generated_certificate_names_every_pod_and_service_and_chains_to_the_ca(tmp_path: Path) -> None:
    """The Secret (kept on uninstall) holds a CA and a certificate it signed, whose names cover
    mysql-N.mysql, mysql-primary and mysql-read in every DNS form of namespace db."""
    secret = find(tls_docs(), "Secret", "mysql-tls")
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = {key: base64.b64decode(value) for key, value in secret["data"].items()}
    assert set(data) == {"ca.crt", "tls.crt", "tls.key"}
    names = openssl("x509", "-noout", "-ext", "subjectAltName", stdin=data["tls.crt"])
    for host in ("*.mysql", "mysql-primary", "mysql-read"):
        for suffix in ("", ".db", ".db.svc", ".db.svc.cluster.local"):
            assert f"DNS:{host}{suffix}," in f"{names.strip()},", names
    (tmp_path / "ca.crt").write_bytes(data["ca.crt"])
    assert "OK" in openssl("verify", "-CAfile", str(tmp_path / "ca.crt"), stdin=data["tls.crt"])


@pytest.mark.parametrize("flavor", FLAVORS)
def test_every_server_container_and_the_helm_test_get_the_release_certificate(flavor: str) -> None:
    """init-config, clone, the server and the sidecar mount the Secret at TLS_DIR and are told
    where it is; the helm test pod gets the CA certificate only."""
    docs = tls_docs(flavor)
    specs = dict(pod_specs(docs))
    sts = specs["mysql"]
    volume = next(v for v in sts["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == "mysql-tls"
    for name in SERVER_CONTAINERS:
        c = container(sts, name)
        assert env(c)["TLS_DIR"]["value"] == TLS_DIR, name
        if name != "init-config":
            assert {"name": "tls", "mountPath": TLS_DIR, "readOnly": True} in c["volumeMounts"], name
    test_pod = specs["mysql-test-replication"]
    assert env(container(test_pod, "test"))["TLS_DIR"]["value"] == TLS_DIR
    items = next(v for v in test_pod["volumes"] if v["name"] == "tls")["secret"]["items"]
    assert items == [{"key": "ca.crt", "path": "ca.crt"}]


def test_an_existing_secret_is_used_and_none_is_generated() -> None:
    docs = tls_docs(existingSecret="my-certs")
    assert not [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "mysql-tls"]
    volume = next(v for v in dict(pod_specs(docs))["mysql"]["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == "my-certs"


@pytest.mark.parametrize("flavor", FLAVORS)
def test_the_server_presents_the_certificate_and_peers_verify_it(flavor: str, tmp_path: Path) -> None:
    """With TLS_DIR the option file names the certificate, and every connection to a peer
    (sql_remote) verifies it against the CA and the host name; without it, neither."""
    scripts = chart_files(tls_docs(flavor), tmp_path / "scripts")
    base = {"FLAVOR": flavor, "HOSTNAME": "mysql-1"}
    cnf = run_function(scripts, "init-config.sh", "tls_cnf", {**base, "TLS_DIR": TLS_DIR})
    assert cnf.returncode == 0, cnf.stderr
    for option, file in (("ssl_ca", "ca.crt"), ("ssl_cert", "tls.crt"), ("ssl_key", "tls.key")):
        assert f"{option} = {TLS_DIR}/{file}" in cnf.stdout
    verify = {"mysql": "--ssl-mode=VERIFY_IDENTITY", "mariadb": "--ssl-verify-server-cert"}[flavor]
    args = run_function(scripts, "lib.sh", "tls_client_args", {**base, "TLS_DIR": TLS_DIR})
    assert {verify, f"--ssl-ca={TLS_DIR}/ca.crt"} <= set(args.stdout.split()), args.stdout
    assert run_function(scripts, "init-config.sh", "tls_cnf", base).stdout == ""
    assert run_function(scripts, "lib.sh", "tls_client_args", base).stdout == ""


@pytest.mark.parametrize("flavor", FLAVORS)
def test_during_a_switch_over_peers_are_verified_once_the_pod_has_seen_the_primary_verify(
    flavor: str, tmp_path: Path
) -> None:
    """TLS_SWITCHOVER (an upgrade that turns TLS on): until the pod's volume records a verified
    primary, connections to peers are made as before TLS (no client TLS options, no clone CA);
    once recorded, they verify again, whatever TLS_SWITCHOVER says."""
    scripts = chart_files(tls_docs(flavor), tmp_path / "scripts")
    volume = tmp_path / "volume"
    volume.mkdir()
    base = {"FLAVOR": flavor, "TLS_DIR": TLS_DIR, "DATA_ROOT": str(volume)}
    check = "tls_client_args; tls_verifying && echo verifying || echo pending"
    clone_ca = 'source "$SCRIPTS/clone-mysql.sh"; clone_tls_sql; echo done'  # clone.sh sources both
    assert run_function(scripts, "lib.sh", check, {**base, "TLS_SWITCHOVER": "1"}).stdout == "pending\n"
    if flavor == "mysql":
        assert (
            run_function(scripts, "clone-mysql.sh", "clone_tls_sql", {**base, "TLS_SWITCHOVER": "1"}).stdout
            == ""
        )
    (volume / "chart-tls-verified").write_text("verified mysql-0.mysql.db.svc\n")
    for extra in ({"TLS_SWITCHOVER": "1"}, {}):
        out = run_function(scripts, "lib.sh", check, {**base, **extra}).stdout
        assert out.endswith("verifying\n") and f"--ssl-ca={TLS_DIR}/ca.crt" in out, out
    (volume / "chart-tls-verified").unlink()
    assert run_function(scripts, "lib.sh", check, base).stdout.endswith("verifying\n")
    if flavor == "mysql":
        sql = run_function(scripts, "lib.sh", clone_ca, base).stdout
        assert sql == f"SET GLOBAL clone_ssl_ca = '{TLS_DIR}/ca.crt';\ndone\n"
