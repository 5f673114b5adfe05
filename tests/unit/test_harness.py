"""The harness's own rules, without a cluster: what a database retry may and may not hide."""

from __future__ import annotations

import pymysql
import pytest

from harness.db import retry_db

pytestmark = pytest.mark.unit


class Calls:
    """An action that raises the given errors in turn, then returns `result`; counts its calls."""

    def __init__(self, *errors: BaseException, result: object = "done") -> None:
        self.errors = list(errors)
        self.result = result
        self.count = 0

    def __call__(self) -> object:
        self.count += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(pymysql.err.OperationalError(1290, "--super-read-only"), id="read-only-1290"),
        pytest.param(pymysql.err.OperationalError(1045, "Access denied"), id="access-denied-1045"),
        pytest.param(pymysql.err.ProgrammingError(1146, "Table 'test.t' doesn't exist"), id="no-table-1146"),
    ],
)
def test_retry_db_raises_a_servers_refusal_at_once(error: BaseException) -> None:
    """A read-only primary, a changed password or a missing table is a finding: raised on the first call."""
    action = Calls(error)
    with pytest.raises(type(error)):
        retry_db(action, what="a refused statement", timeout=30)
    assert action.count == 1


def test_retry_db_returns_an_empty_read_at_once() -> None:
    """An empty result is returned as it is (an empty replica), not retried as "not yet"."""
    action = Calls(result=[])
    assert retry_db(action, what="an empty read", timeout=30) == []
    assert action.count == 1


def test_retry_db_retries_only_lost_connections() -> None:
    """2013 (lost connection), 2003 (cannot connect) and a port-forward that did not start (OSError)
    are retried until the action answers."""
    action = Calls(
        pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
        pymysql.err.OperationalError(2003, "Can't connect to MySQL server"),
        OSError("kubectl port-forward did not start"),
        result=[("v",)],
    )
    assert retry_db(action, what="a read through a flaky forward", timeout=60) == [("v",)]
    assert action.count == 4
