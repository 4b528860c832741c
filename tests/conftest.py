"""Shared fixtures: a fresh PostgreSQL database per test, a SQLite file per test, tiny specs.

PostgreSQL is expected on 127.0.0.1:5432 with trust auth (user postgres or root, database
`test` exists). If it is unreachable, tests that need it FAIL with the reason: a missing
database must not pass as a green run.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

PG_HOST = os.environ.get("DSE_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DSE_PG_PORT", "5432"))
PG_USERS = ("postgres", "root")
REPO = Path(__file__).resolve().parents[1]
DSE = REPO / ".venv" / "bin" / "dse"

SMOKE_SPEC = {
    "name": "smoke",
    "dataset": {
        "name": "synthetic",
        "resolution": 16,
        "num_classes": 4,
        "train_size": 256,
        "val_size": 128,
    },
    "spaces": [
        {
            "preset": "AnyNetX_A",
            "stem": {"type": "cifar", "width": 16},
            "stages": 2,
            "depth": [1, 2],
            "width": [8, 32],
        },
        {
            "preset": "AnyNetX_E",
            "stem": {"type": "cifar", "width": 16},
            "stages": 2,
            "depth": [1, 2],
            "width": [8, 32],
        },
    ],
    "samples": 20,
    "complexity": {"flops": [0, 2e7]},
    "fidelities": [1],
    "recipe": {"batch_size": 64, "lr": 0.1},
    "seed": 0,
}


def _admin_connection():
    """An autocommit psycopg2 connection to the `test` database, or the reason there is none."""
    import psycopg2

    errors = []
    for user in PG_USERS:
        try:
            conn = psycopg2.connect(
                host=PG_HOST, port=PG_PORT, user=user, dbname="test", connect_timeout=5
            )
        except psycopg2.OperationalError as e:
            errors.append(f"{user}: {' '.join(str(e).split())}")
            continue
        conn.autocommit = True
        return conn, user
    pytest.fail(
        f"PostgreSQL on {PG_HOST}:{PG_PORT} is unreachable ({'; '.join(errors)}). "
        "Start it (trust auth, database `test`) or run `pytest -m 'not postgres'`.",
        pytrace=False,
    )


class PgServer:
    """Creates and drops databases on the test server (names are quoted, never spliced)."""

    def __init__(self) -> None:
        self.conn, self.user = _admin_connection()
        self.created: list[str] = []

    def url(self, name: str) -> str:
        """The URL of database `name` (which may not exist yet)."""
        return f"postgresql://{self.user}@{PG_HOST}:{PG_PORT}/{name}"

    def create(self, name: str) -> str:
        """Create database `name`; its URL."""
        from psycopg2 import sql

        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return self.url(name)

    def drop_all(self) -> None:
        """Drop every database this object created (connections are closed by force)."""
        from psycopg2 import sql

        with self.conn.cursor() as cur:
            for name in self.created:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        self.conn.close()


@pytest.fixture
def pg_server():
    """The PostgreSQL test server; databases made through it are dropped after the test."""
    server = PgServer()
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
def smoke_spec():
    """The spec of issue 4, exactly as written there (a fresh copy per test)."""
    import copy

    return copy.deepcopy(SMOKE_SPEC)


@pytest.fixture
def dse_bin():
    """Path of the installed `dse` console script."""
    if not DSE.exists():
        pytest.fail(f"{DSE} missing: run `make install`", pytrace=False)
    return str(DSE)
