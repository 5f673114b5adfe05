"""The pod scripts as rendered, run on this host with stand-in binaries: what they refuse and keep.

Each test writes the rendered ConfigMap's files into a directory and runs them with bash, as the
containers do, with the server binary replaced by a script that only prints its version.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from .render import Doc, chart_files, find, render, run_function

pytestmark = pytest.mark.render


def stand_in_server(bin_dir: Path, flavor: str, version: str) -> Path:
    """A `mysqld`/`mariadbd` on bin_dir that prints `--version` as the real one does."""
    bin_dir.mkdir(exist_ok=True)
    name = "mariadbd" if flavor == "mariadb" else "mysqld"
    binary = bin_dir / name
    binary.write_text(f"#!/bin/sh\necho '{name}  Ver {version} for Linux on x86_64'\n")
    binary.chmod(0o755)
    return bin_dir


def check_datadir(
    flavor: str, version: str, files: dict[str, str], tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """server.sh's datadir_check_and_record for a `flavor` server of `version` on a datadir holding
    `files`; its result and the datadir."""
    scripts = chart_files(render({"flavor": flavor}), tmp_path / "scripts")
    datadir = tmp_path / "volume" / "data"
    datadir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (datadir / name).write_text(text)
    bin_dir = stand_in_server(tmp_path / "bin", flavor, version)
    env = {"FLAVOR": flavor, "DATA_ROOT": str(tmp_path / "volume"), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return run_function(scripts, "server.sh", "datadir_check_and_record", env), datadir


@pytest.mark.parametrize(
    ("flavor", "version", "files", "refusal"),
    [
        ("mysql", "9.7.4", {"chart-datadir-server": "mariadb 11.8.3\n"},
         "holds mariadb data (server 11.8.3)"),
        ("mysql", "9.7.4", {"aria_log_control": ""}, "holds mariadb data (server unknown)"),
        ("mariadb", "11.8.3", {"chart-datadir-server": "mysql 9.7.4\n"}, "holds mysql data (server 9.7.4)"),
        ("mariadb", "11.8.3", {"mysql.ibd": ""}, "holds mysql data (server unknown)"),
        ("mysql", "8.4.7", {"chart-datadir-server": "mysql 9.7.4\n"},
         "written by MySQL 9.7.4; this server is 8.4.7"),
    ],
)  # fmt: skip
def test_server_refuses_a_datadir_of_the_other_flavor_or_a_newer_mysql_series(
    flavor: str, version: str, files: dict[str, str], refusal: str, tmp_path: Path
) -> None:
    """server.sh reads the flavor and series that last ran on the datadir (its record, else the files
    only one flavor writes) and refuses to start another flavor, or an older MySQL series, on it."""
    result, datadir = check_datadir(flavor, version, files, tmp_path)
    assert result.returncode != 0, f"started on {files}: {result.stderr}"
    assert refusal in result.stderr
    assert "refusing to start" in result.stderr
    assert files.get("chart-datadir-server") == (
        (datadir / "chart-datadir-server").read_text() if "chart-datadir-server" in files else None
    ), "the record changed although the server refused"


@pytest.mark.parametrize(
    ("flavor", "version", "files", "recorded"),
    [
        ("mysql", "9.7.4", {"mysql.ibd": ""}, "mysql 9.7.4"),
        ("mysql", "9.7.4", {"chart-datadir-server": "mysql 8.4.7\n"}, "mysql 9.7.4"),
        ("mysql", "9.7.4", {"chart-datadir-server": "mysql 9.7.5\n"}, "mysql 9.7.4"),
        ("mariadb", "11.8.3", {"aria_log_control": ""}, "mariadb 11.8.3"),
        ("mariadb", "11.8.3", {}, "mariadb 11.8.3"),
    ],
)  # fmt: skip
def test_server_records_its_flavor_and_version_on_a_datadir_it_may_use(
    flavor: str, version: str, files: dict[str, str], recorded: str, tmp_path: Path
) -> None:
    """Same flavor, an upgrade or a patch downgrade within the series: accepted and recorded."""
    result, datadir = check_datadir(flavor, version, files, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (datadir / "chart-datadir-server").read_text() == f"{recorded}\n"


@pytest.mark.parametrize(("flavor", "version"), [("mysql", "9.7.4"), ("mariadb", "11.8.3")])
def test_server_starts_without_writing_a_record_that_is_already_current(
    flavor: str, version: str, tmp_path: Path
) -> None:
    """A restart on a full volume (MariaDB's server exits when its disk fills) is not stopped by
    the record: the same server as recorded writes nothing. A directory where the record's temporary
    file goes makes any write fail, as a full volume does."""
    files = {"chart-datadir-server": f"{flavor} {version}\n"}
    tmp = tmp_path / "volume" / "data" / "chart-datadir-server.tmp"
    tmp.mkdir(parents=True)
    result, datadir = check_datadir(flavor, version, files, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (datadir / "chart-datadir-server").read_text() == files["chart-datadir-server"]


@pytest.mark.parametrize("flavor", ["mysql", "mariadb"])
@pytest.mark.parametrize(("root_host", "account"), [(None, "'root'@'%'"), ("10.244.%", "'root'@'10.244.%'")])
def test_a_new_datadir_gets_root_on_the_network_only_from_auth_root_host(
    flavor: str, root_host: str | None, account: str, tmp_path: Path
) -> None:
    """accounts_sql (run once, on a new datadir) gives root's network account the host of
    auth.rootHost (ROOT_HOST; '%' when unset) and every privilege; MariaDB takes READ_ONLY ADMIN
    away from it as from root@localhost. No other root account is created."""
    scripts = chart_files(render({"flavor": flavor}), tmp_path / "scripts")
    accounts = ("ROOT", "REPLICATION", "BACKUP", "PROBE", "METRICS")
    env = {"FLAVOR": flavor, **{f"MYSQL_{name}_PASSWORD": "pw" for name in accounts}}
    if root_host:
        env["ROOT_HOST"] = root_host
    result = run_function(scripts, "server.sh", "accounts_sql", env)
    assert result.returncode == 0, result.stderr
    sql = result.stdout
    assert f"CREATE USER {account} IDENTIFIED BY 'pw';" in sql
    assert f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION;" in sql
    assert re.findall(r"CREATE USER 'root'@'[^']*'", sql) == [f"CREATE USER {account}"]
    if flavor == "mariadb":
        assert f"REVOKE READ_ONLY ADMIN ON *.* FROM 'root'@'localhost', {account};" in sql


def test_server_execs_mysqld_without_any_password_in_its_environment(tmp_path: Path) -> None:
    """drop_secrets, run just before the server is exec'd, leaves none of the values the server
    container gets from the Secret (every one the chart renders, an application account's
    included) in the environment it passes on (the server's /proc/PID/environ)."""
    docs = render({"auth": {"username": "app", "database": "app"}})
    pod = find(docs, "StatefulSet", "mysql")["spec"]["template"]["spec"]
    server = next(c for c in pod["containers"] if c["name"] == "mysql")
    from_secret = [e["name"] for e in server["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert "MYSQL_PASSWORD" in from_secret, from_secret
    secrets = {name: f"secret-{i}" for i, name in enumerate(from_secret)}
    scripts = chart_files(docs, tmp_path / "scripts")
    result = run_function(scripts, "server.sh", "drop_secrets; env", {"FLAVOR": "mysql", **secrets})
    assert result.returncode == 0, result.stderr
    assert not [v for v in secrets.values() if v in result.stdout], result.stdout


@pytest.mark.parametrize("password", ["two\nlines", "carriage\rreturn"])
def test_a_password_with_a_line_break_from_an_existing_secret_fails_naming_the_account(
    password: str, tmp_path: Path
) -> None:
    """client_cnf (every client's option file) refuses a password it cannot hold and names the account."""
    scripts = chart_files(render(), tmp_path / "scripts")
    result = run_function(scripts, "lib.sh", 'client_cnf probe "$PW"', {"FLAVOR": "mysql", "PW": password})
    assert result.returncode != 0
    assert "the password of account 'probe' contains a line break" in result.stderr
    assert password not in result.stderr + result.stdout


def test_init_config_copies_the_chart_files_once_per_pod(tmp_path: Path) -> None:
    """A second run of init-config (a recreated sandbox) on a changed ConfigMap keeps the pod's first
    copy, scripts and option files alike: new scripts reach a pod only when it is replaced."""
    docs = render()
    release_files = chart_files(docs, tmp_path / "release")
    pod_files = tmp_path / "pod"
    pod_files.mkdir()
    cnf = tmp_path / "my.cnf"
    env = {
        "FLAVOR": "mysql", "HOSTNAME": "mysql-1", "SERVICE_NAME": "mysql", "SEMI_SYNC": "off",
        "BINLOG_EXPIRE_SECONDS": "604800", "MY_CNF": str(cnf), "POD_SCRIPTS": str(pod_files),
        "SCRIPTS": str(release_files), "PATH": os.environ["PATH"],
    }  # fmt: skip
    first = subprocess.run(
        ["bash", str(release_files / "init-config.sh")], env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    original = {p.name: p.read_text() for p in release_files.iterdir()}
    assert {p.name: p.read_text() for p in pod_files.iterdir() if p.name != ".copied"} == original
    assert all(os.access(p, os.X_OK) for p in pod_files.iterdir() if p.suffix == ".sh")

    (release_files / "probe.sh").write_text(original["probe.sh"] + "\n# a newer chart version\n")
    (release_files / "extra.cnf").write_text("[mysqld]\nmax_connections = 7\n")
    again = subprocess.run(
        ["bash", str(release_files / "init-config.sh")], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert "keeping the chart files this pod started with" in again.stderr
    assert (pod_files / "probe.sh").read_text() == original["probe.sh"]
    assert "max_connections = 7" not in cnf.read_text()


def test_backup_port_gives_a_silent_peer_5_seconds_and_serves_4_connections_at_once(
    mariadb_docs: list[Doc], tmp_path: Path
) -> None:
    """A connection that sends no token is closed after 5 s ("ERR no token"); the listener forks at
    most 4 serve-backup.sh at once, so a flood of idle connections holds 4 shells for seconds."""
    scripts = chart_files(mariadb_docs, tmp_path / "scripts")
    env = {"PATH": os.environ["PATH"], "FLAVOR": "mariadb", "HOSTNAME": "mysql-1", "SCRIPTS": str(scripts)}
    began = time.monotonic()
    with subprocess.Popen(["sleep", "30"], stdout=subprocess.PIPE) as silent:
        result = subprocess.run(
            ["bash", str(scripts / "serve-backup.sh")],
            stdin=silent.stdout, env=env, capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        silent.kill()
    seconds = time.monotonic() - began
    assert result.returncode != 0 and result.stdout == "ERR no token\n", result
    assert 4.5 <= seconds < 8, f"closed after {seconds:.1f}s"
    sidecar = find(mariadb_docs, "ConfigMap", "mysql")["data"]["sidecar.sh"]
    assert "fork,max-children=$BACKUP_MAX_CONNECTIONS" in sidecar
    assert "BACKUP_MAX_CONNECTIONS=4\n" in sidecar


def stand_in_clients(bin_dir: Path, refused: str) -> Path:
    """`mysql` that fails as a server refusing `refused`'s password does; `mysqladmin` whose ping
    succeeds (as the real one's does on a refused password: the server runs)."""
    bin_dir.mkdir(exist_ok=True)
    client = bin_dir / "mysql"
    client.write_text(
        f"#!/bin/sh\necho \"ERROR 1045 (28000): Access denied for user '{refused}'@'127.0.0.1' "
        '(using password: YES)" >&2\nexit 1\n'
    )
    admin = bin_dir / "mysqladmin"
    admin.write_text("#!/bin/sh\nexit 0\n")
    for binary in (client, admin):
        binary.chmod(0o755)
    return bin_dir


DRIFT = "the Secret no longer matches the passwords in the datadir"


def test_readiness_names_the_secret_key_when_the_server_refuses_the_probe_password(tmp_path: Path) -> None:
    """A Secret replaced under a running release (`helm template | kubectl apply`): the probe account's
    password is refused, and the readiness probe's message (a pod event) names the Secret and its key."""
    scripts = chart_files(render(), tmp_path / "scripts")
    bin_dir = stand_in_clients(tmp_path / "bin", "probe")
    env = {
        "FLAVOR": "mysql", "HOSTNAME": "mysql-0", "SERVICE_NAME": "mysql", "MAX_LAG_SECONDS": "30",
        "SECRET_NAME": "mysql", "MYSQL_PROBE_PASSWORD": "p", "SOCKET": str(tmp_path / "mysqld.sock"),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }  # fmt: skip
    for hostname in ("mysql-0", "mysql-1"):
        result = run_function(scripts, "probe.sh", "main readiness", {**env, "HOSTNAME": hostname})
        assert result.returncode != 0
        assert (
            "refuses account 'probe' the password in Secret mysql (key mysql-probe-password)" in result.stderr
        )
        assert DRIFT in result.stderr and "Rotating passwords" in result.stderr


def test_the_sidecar_waits_saying_root_s_password_in_the_secret_is_refused(tmp_path: Path) -> None:
    """The sidecar does not crash-loop on a refused root password: it waits, saying which account and
    which Secret key, and goes on once the password works."""
    scripts = chart_files(render(), tmp_path / "scripts")
    bin_dir = stand_in_clients(tmp_path / "bin", "root")
    env = {
        "FLAVOR": "mysql", "HOSTNAME": "mysql-1", "SECRET_NAME": "db-passwords", "MYSQL_ROOT_PASSWORD": "r",
        "SOCKET": str(tmp_path / "mysqld.sock"), "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }  # fmt: skip
    with pytest.raises(subprocess.TimeoutExpired) as waited:
        run_function(scripts, "sidecar.sh", "wait_for_server", env, timeout=4)
    stderr = (waited.value.stderr or b"").decode()
    assert "refuses account 'root' the password in Secret db-passwords (key mysql-root-password)" in stderr
    (bin_dir / "mysql").write_text("#!/bin/sh\necho 1\n")
    assert run_function(scripts, "sidecar.sh", "wait_for_server", env, timeout=10).returncode == 0


@pytest.mark.parametrize(
    ("flavor", "errno", "error", "room_mib", "started"),
    [
        ("mysql", "1114", "Worker 1 failed executing transaction; Error 'The table 'ids' is full'", 1, True),
        ("mariadb", "1114", "Error 'The table 'ids' is full' on query", 1, True),
        ("mysql", "3", "Error writing file 'binlog' (Errcode: 28 - No space left on device)", 1, True),
        ("mysql", "1114", "The table 'ids' is full", 10**9, False),
        ("mysql", "1062", "Duplicate entry '7' for key 'ids.PRIMARY'", 1, False),
        ("mysql", "3", "Error writing file 'binlog' (Errcode: 5 - Input/output error)", 1, False),
        ("mysql", "0", "", 1, False),
    ],
)  # fmt: skip
def test_the_sidecar_starts_again_only_an_sql_thread_a_full_volume_stopped(
    flavor: str, errno: str, error: str, room_mib: int, started: bool, tmp_path: Path
) -> None:
    """An applier stopped by a full volume is started again once RESUME_ROOM_MIB are free; one
    stopped by hand or on another error is left alone; while the volume is full, the sidecar says what
    it stopped (warn_if_volume_full has said that the volume is full)."""
    scripts = chart_files(render({"flavor": flavor}), tmp_path / "scripts")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    statements = tmp_path / "statements"
    for name in ("mysql", "mariadb"):
        client = bin_dir / name
        client.write_text(f'#!/bin/sh\ncat >> "{statements}"\n')
        client.chmod(0o755)
    env = {
        "FLAVOR": flavor, "MYSQL_ROOT_PASSWORD": "r", "DATA_ROOT": str(tmp_path),
        "RESUME_ROOM_MIB": str(room_mib), "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }  # fmt: skip
    result = run_function(scripts, "sidecar.sh", f'resume_after_full_volume No {errno} "{error}"', env)
    assert result.returncode == 0, result.stderr
    sent = statements.read_text() if statements.exists() else ""
    assert ("SQL_THREAD" in sent) == started, (sent, result.stderr)
    if started:
        statement = "START SLAVE SQL_THREAD;" if flavor == "mariadb" else "START REPLICA SQL_THREAD;"
        assert sent.strip() == statement
        assert "starting the SQL thread the full volume stopped" in result.stderr
    if room_mib > 1:
        assert "the SQL thread stopped on the full volume" in result.stderr
        assert "starts again once" in result.stderr
