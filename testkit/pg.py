"""Scratch PostgreSQL databases on the test server (127.0.0.1:5432, trust auth, `test`).

The host and port come from $DSE_PG_HOST / $DSE_PG_PORT; the user is the first of
postgres, root that can connect. Database names are quoted, never spliced.
"""

from __future__ import annotations

import os
import uuid

PG_HOST = os.environ.get("DSE_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DSE_PG_PORT", "5432"))
PG_USERS = ("postgres", "root")


class PgUnavailable(RuntimeError):
    """The PostgreSQL test server cannot be reached; the message says why."""


def admin_connection():
    """(autocommit psycopg2 connection to `test`, user); PgUnavailable with the reasons."""
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
    raise PgUnavailable(f"PostgreSQL on {PG_HOST}:{PG_PORT} is unreachable ({'; '.join(errors)})")


class PgServer:
    """Creates and drops databases on the test server."""

    def __init__(self) -> None:
        self.conn, self.user = admin_connection()
        self.created: list[str] = []

    def url(self, name: str) -> str:
        """The URL of database `name` (which may not exist yet)."""
        return f"postgresql://{self.user}@{PG_HOST}:{PG_PORT}/{name}"

    def create(self, name: str | None = None) -> str:
        """Create database `name` (default: a fresh random one); its URL."""
        from psycopg2 import sql

        name = name or f"dse_scratch_{uuid.uuid4().hex[:12]}"
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
        self.created.clear()
        self.conn.close()
