"""Shared fixtures: a fresh PostgreSQL database per test, a SQLite file (and a Store on one) per
test, tiny specs.

PostgreSQL is expected on 127.0.0.1:5432 with trust auth (user postgres or root, database
`test` exists). If it is unreachable, tests that need it FAIL with the reason: a missing
database must not pass as a green run.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from testkit.pg import PgServer, PgUnavailable
from testkit.specs import smoke_spec as _smoke_spec

REPO = Path(__file__).resolve().parents[1]
DSE = REPO / ".venv" / "bin" / "dse"


@pytest.fixture
def pg_server():
    """The PostgreSQL test server; databases made through it are dropped after the test."""
    try:
        server = PgServer()
    except PgUnavailable as e:
        pytest.fail(
            f"{e}. Start it (trust auth, database `test`) or run `pytest -m 'not postgres'`.",
            pytrace=False,
        )
    try:
        yield server
    finally:
        server.drop_all()


@pytest.fixture
def pg_url(pg_server):
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    return pg_server.create(f"dse_test_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def sqlite_url(tmp_path):
    """URL of a SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'dse.db'}"


@pytest.fixture
def store(tmp_path):
    """A Store on a fresh SQLite file in the test's temporary directory, closed after the test."""
    from search.store import Store

    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


@pytest.fixture
def smoke_spec():
    """The spec of issue 4, exactly as written there (a fresh copy per test)."""
    return _smoke_spec()


@pytest.fixture
def dse_bin():
    """Path of the installed `dse` console script."""
    if not DSE.exists():
        pytest.fail(f"{DSE} missing: run `make install`", pytrace=False)
    return str(DSE)
