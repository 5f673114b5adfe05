"""Fixtures for the render suite: helm binaries present, default renders of both flavors."""

from __future__ import annotations

import pytest

from .render import HELM, HELM3, Doc, render


@pytest.fixture(scope="session", autouse=True)
def helm_binaries() -> None:
    """The render suite needs bin/helm and bin/helm3 (`bash ci/tools.sh helm`); missing is a failure."""
    for helm in (HELM, HELM3):
        if not helm.is_file():
            pytest.fail(f"{helm} is missing: run `bash ci/tools.sh helm`", pytrace=False)


@pytest.fixture(scope="session")
def mysql_docs() -> list[Doc]:
    """The chart rendered with its defaults (flavor mysql)."""
    return render()


@pytest.fixture(scope="session")
def mariadb_docs() -> list[Doc]:
    """The chart rendered with flavor mariadb."""
    return render({"flavor": "mariadb"})
