"""dse_trials: the torch thread count and the device a trial trained with

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the threads and device columns (a result depends on both: docs/method.md §5)."""
    with op.batch_alter_table("dse_trials") as batch:
        batch.add_column(sa.Column("threads", sa.Integer))
        batch.add_column(sa.Column("device", sa.String(64)))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("dse_trials") as batch:
        for column in ("device", "threads"):
            batch.drop_column(column)
