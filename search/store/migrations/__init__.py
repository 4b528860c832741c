"""Alembic migrations of the dse tables, run by Store on start, safe under concurrent starts.

Many workers may start at once on a fresh database. Everything that creates tables (Optuna's
`create_all` and our `upgrade head`) runs under one cross-process lock: a PostgreSQL advisory
lock, or an flock on the SQLite file. The first starter migrates; the others wait, then find
the schema at head and do nothing.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

HERE = Path(__file__).resolve().parent
# An arbitrary 63-bit key naming "dse schema setup" among PostgreSQL advisory locks.
ADVISORY_KEY = 0x0D5E_5C4E_3A00


def alembic_config() -> Config:
    """An alembic Config pointing at this package (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the dse tables to the head revision on `engine` (idempotent)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


_LOCK_FDS: dict[str, int] = {}
_THREAD_LOCK = threading.Lock()  # flock does not exclude threads sharing one descriptor


def _lock_fd(path: str) -> int:
    """A descriptor of the SQLite file kept open for the process's life.

    Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
    included, so the flock descriptor is opened once and never closed.
    """
    key = os.path.realpath(path)
    if key not in _LOCK_FDS:
        Path(key).parent.mkdir(parents=True, exist_ok=True)
        _LOCK_FDS[key] = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    return _LOCK_FDS[key]


@contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """Hold the cross-process schema lock of the database at `url`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:":
            yield
            return
        with _THREAD_LOCK:
            fd = _lock_fd(path)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        return
    if parsed.get_backend_name() != "postgresql":
        yield
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(select(func.pg_advisory_lock(ADVISORY_KEY)))
            try:
                yield
            finally:
                connection.execute(select(func.pg_advisory_unlock(ADVISORY_KEY)))
                connection.commit()
    finally:
        engine.dispose()
