"""dse_studies: reason and creation progress

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add why a study failed and how far its creation got."""
    op.add_column("dse_studies", sa.Column("reason", sa.Text))
    op.add_column("dse_studies", sa.Column("creation", sa.JSON))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("dse_studies") as batch:  # SQLite drops columns by copying
        batch.drop_column("creation")
        batch.drop_column("reason")
