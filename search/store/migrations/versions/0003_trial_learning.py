"""dse_trials: chance error, validation size, not_learned and the recipe as it ran

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the did-it-learn columns (search.spec.learning) and the resolved recipe."""
    with op.batch_alter_table("dse_trials") as batch:
        batch.add_column(sa.Column("chance_error", sa.Float))
        batch.add_column(sa.Column("val_size", sa.Integer))
        batch.add_column(sa.Column("not_learned", sa.Boolean))
        batch.add_column(sa.Column("recipe", sa.JSON))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("dse_trials") as batch:
        for column in ("recipe", "not_learned", "val_size", "chance_error"):
            batch.drop_column(column)
