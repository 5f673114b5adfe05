"""Replication lag as data age, run inside the cluster by `make bench` (the bench image's python3).

usage: heartbeat.py SECONDS PRIMARY REPLICA... (user and password in BENCH_USER, BENCH_PASSWORD)

Every 0.1 s the primary's row `bench.heartbeat` gets the primary's NOW(6); every 0.1 s each replica
is asked how old the row it holds is (its NOW(6) minus the row's time; the kind nodes share one
clock). A sample is therefore the age of the newest data the replica serves, at most one write
period (0.1 s) above the replication delay itself. Sampling starts after the run's first write;
a replica that has not applied it yet holds data as old as that write (the row's older value,
from an earlier run, would count the time between runs). Prints one JSON object: replica -> [ages in s].
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import pymysql

PERIOD = 0.1


def connect(host: str) -> pymysql.connections.Connection:
    # TLS when the server offers it (pymysql verifies nothing without a CA): MySQL's
    # caching_sha2_password needs it or an RSA key exchange.
    return pymysql.connect(
        host=host,
        user=os.environ["BENCH_USER"],
        password=os.environ["BENCH_PASSWORD"],
        ssl={"enabled": True},
        autocommit=True,
        connect_timeout=5,
    )


def write(host: str, until: float, first: list[str], started: threading.Event, errors: list[str]) -> None:
    conn = connect(host)
    with conn.cursor() as cur:
        cur.execute("UPDATE bench.heartbeat SET ts = NOW(6) WHERE id = 1")
        cur.execute("SELECT DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f') FROM bench.heartbeat WHERE id = 1")
        first.append(cur.fetchone()[0])
        started.set()
        while time.monotonic() < until:
            try:
                cur.execute("UPDATE bench.heartbeat SET ts = NOW(6) WHERE id = 1")
            except pymysql.MySQLError as e:
                errors.append(f"{host}: {e}")
                return
            time.sleep(PERIOD)


def sample(
    host: str, until: float, first: list[str], started: threading.Event, ages: list[float], errors: list[str]
) -> None:
    conn = connect(host)
    if not started.wait(30):
        errors.append(f"{host}: the primary's first heartbeat never came")
        return
    age = "TIMESTAMPDIFF(MICROSECOND, GREATEST(ts, CAST(%s AS DATETIME(6))), NOW(6))"
    sql = f"SELECT {age} FROM bench.heartbeat WHERE id = 1"
    with conn.cursor() as cur:
        while time.monotonic() < until:
            try:
                cur.execute(sql, (first[0],))
                row = cur.fetchone()
            except pymysql.MySQLError as e:
                errors.append(f"{host}: {e}")
                return
            if row and row[0] is not None:
                ages.append(max(0.0, int(row[0]) / 1e6))
            time.sleep(PERIOD)


def main() -> int:
    seconds, primary, replicas = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
    until = time.monotonic() + seconds
    ages: dict[str, list[float]] = {r: [] for r in replicas}
    errors: list[str] = []
    first: list[str] = []
    started = threading.Event()
    threads = [threading.Thread(target=write, args=(primary, until, first, started, errors))]
    threads += [
        threading.Thread(target=sample, args=(r, until, first, started, ages[r], errors)) for r in replicas
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    json.dump({"ages": ages, "errors": errors}, sys.stdout)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
