"""Alembic environment: migrates the dse tables on the connection Store hands in.

Optuna keeps its own alembic history in `alembic_version`; ours lives in
`dse_alembic_version` so the two never collide in one database.
"""

from __future__ import annotations

from alembic import context

from search.store.models import Base

VERSION_TABLE = "dse_alembic_version"

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("dse migrations run through search.store.Store (no connection given)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
