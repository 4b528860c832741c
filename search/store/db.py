"""One database URL: Optuna's RDB storage and our tables, their engines and sessions.

Optuna's RDB storage is the trial engine; our tables (search.store.models) sit next to its
tables in the same database and are written on the same engine, so one transaction can
cover both. SQLite: WAL, a busy timeout and `BEGIN IMMEDIATE` on the writing engine (a
deferred transaction that reads and then writes fails at once with "database is locked"
when another process wrote in between; an immediate one waits its turn), and a separate
plain engine for reads, which WAL never blocks.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import optuna
from optuna.exceptions import StorageInternalError
from optuna.storages import RDBStorage
from sqlalchemy import Engine, Table, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from search.store import migrations

DEFAULT_URL = "sqlite:///dse.db"
DB_ENV = "DSE_DB"
# Errors that mean "the database is unreachable or busy now": retry, don't crash.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, StorageInternalError, TimeoutError)
SQLITE_BUSY_MS = 60_000


def default_url() -> str:
    """$DSE_DB, else sqlite:///dse.db."""
    return os.environ.get(DB_ENV) or DEFAULT_URL


def normalize_url(url: str) -> str:
    """The URL with a PostgreSQL driver that is installed (psycopg 3, else psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401  (SQLAlchemy 2.1's default driver)
        except ImportError:
            return parsed.set(drivername="postgresql+psycopg2").render_as_string(
                hide_password=False
            )
    return url


URL_HELP = "sqlite:///dse.db (relative), sqlite:////abs/dse.db or postgresql://user@host/db"


def check_url(url: str, create: bool = True) -> None:
    """Refuse a URL that cannot name a dse database, with one line naming the fix: not a
    URL, another backend, `sqlite://host/...` (two slashes), in-memory SQLite, and, unless
    `create`, a SQLite file that does not exist (a worker never makes an empty one)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"db: not a database URL; use {URL_HELP}") from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    try:
        if backend != "postgres":  # normalize_url names its driver
            parsed.get_dialect()
    except (NoSuchModuleError, ImportError):
        raise ValueError(f"db: {shown}: unknown database {backend!r}; use {URL_HELP}") from None
    if backend != "sqlite":
        return
    if parsed.host:
        raise ValueError(
            f"db: {shown} names a host {parsed.host!r}; a SQLite URL has three slashes before "
            f"a relative path and four before an absolute one: sqlite:////{parsed.host}/"
            f"{parsed.database or ''}"
        )
    if parsed.database in (None, "", ":memory:"):
        raise ValueError("db: in-memory SQLite cannot be shared by workers; use a file URL")
    path = parsed.database
    if path.startswith("file:"):  # a SQLite URI: let SQLite read it
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"db: no folder {folder} for the database {path}; create it first")
    if not create and not os.path.exists(path):
        raise ValueError(
            f"db: no database at {os.path.abspath(path)}; `dse study create` or `dse serve` "
            "creates one (a worker: --create-db), or fix --db / $DSE_DB"
        )


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin_immediate(connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(connection) -> None:
    connection.exec_driver_sql("BEGIN")


class Database:
    """The storage of one URL: `optuna` (RDBStorage), `write()` and `read()` sessions."""

    def __init__(
        self, url: str | None = None, heartbeat_interval: int = 10, create: bool = True
    ) -> None:
        check_url(url or default_url(), create)  # create=False: an existing database only
        self.url = normalize_url(url or default_url())
        self.sqlite = make_url(self.url).get_backend_name() == "sqlite"
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.sqlite:
            engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_MS / 1000}}
        with migrations.schema_lock(self.url), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.optuna = RDBStorage(
                self.url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval
            )
            engine = self.optuna.engine
            if self.sqlite:  # from now on every connection gets the pragmas and BEGIN IMMEDIATE
                engine.dispose()
                event.listen(engine, "connect", _sqlite_connect)
                event.listen(engine, "begin", _sqlite_begin_immediate)
            migrations.upgrade(engine)
        self.write: Callable[[], Session] = sessionmaker(engine, expire_on_commit=False)
        self.read: Callable[[], Session] = sessionmaker(
            self._read_engine(engine), expire_on_commit=False
        )

    def _read_engine(self, engine: Engine) -> Engine:
        if not self.sqlite:
            return engine
        reader = create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_MS / 1000})
        event.listen(reader, "connect", _sqlite_connect)
        event.listen(reader, "begin", _sqlite_begin_deferred)
        return reader

    def close(self) -> None:
        """Release every pooled connection."""
        self.optuna.remove_session()
        self.optuna.engine.dispose()
        self.read.kw["bind"].dispose()


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows (dicts with the same keys) into `table` in the session's transaction."""
    if rows:
        names = list(rows[0])
        get = itemgetter(*names)
        values = [list(get(r)) for r in rows] if len(names) > 1 else [[r[names[0]]] for r in rows]
        bulk_insert_values(session, table, names, values)


def bind_values(dialect, table: Table, names: Sequence[str], values: list[list[Any]]) -> None:
    """Pass each value through its column type's bind processor, in place (JSON to text,
    datetimes to SQLite's format, enums to names), as SQLAlchemy would before storing it."""
    for i, name in enumerate(names):
        process = table.c[name].type.bind_processor(dialect)
        if process is not None:
            for row in values:
                if row[i] is not None:
                    row[i] = process(row[i])


def bulk_insert_values(
    session: Session,
    table: Table,
    names: Sequence[str],
    values: list[list[Any]],
    bound: bool = False,
) -> None:
    """Insert `values` (one list per row, in the order of `names`) into `table`.

    As fast as the driver allows: COPY on PostgreSQL with psycopg2 (about 6x a multi-row
    INSERT), the DB-API's executemany elsewhere (about 4x SQLAlchemy's). Values are stored
    exactly as SQLAlchemy would store them (`bind_values`; already done if `bound`). The
    lists are changed.
    """
    if not values:
        return
    connection = session.connection()
    dialect = connection.dialect
    if not bound:
        bind_values(dialect, table, names, values)
    quote = dialect.identifier_preparer.quote
    target = f"{dialect.identifier_preparer.format_table(table)} ({', '.join(map(quote, names))})"
    if dialect.name == "postgresql" and dialect.driver == "psycopg2":
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(values)  # None → empty → NULL
        text.seek(0)
        cursor = connection.connection.dbapi_connection.cursor()
        sql = f"COPY {target} FROM STDIN WITH (FORMAT csv)"
        base = dialect.loaded_dbapi.Error
        try:
            cursor.copy_expert(sql, text)
        except base as e:  # as SQLAlchemy raises it (IntegrityError, OperationalError, …)
            raise DBAPIError.instance(sql, None, e, base, dialect=dialect) from e
        return
    marker = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
    if marker is None:  # a driver with another parameter style: SQLAlchemy's own executemany
        session.execute(insert(table), [dict(zip(names, row, strict=True)) for row in values])
        return
    connection.exec_driver_sql(
        f"INSERT INTO {target} VALUES ({', '.join([marker] * len(names))})",
        [tuple(row) for row in values],
    )
