"""dse_trials: the reference network a trial trains (None for a space's sample)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the reference label column (search.spec.reference)."""
    with op.batch_alter_table("dse_trials") as batch:
        batch.add_column(sa.Column("reference", sa.String(200)))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("dse_trials") as batch:
        batch.drop_column("reference")
