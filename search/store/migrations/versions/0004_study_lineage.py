"""dse_studies: lineage of the refine loop (parent study and the suggestion tried)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the parent study and the suggestion a child study tries (search.refine)."""
    with op.batch_alter_table("dse_studies") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer))
        batch.add_column(sa.Column("suggestion", sa.JSON))
        batch.create_foreign_key(
            "fk_dse_studies_parent", "dse_studies", ["parent_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_dse_studies_parent_id", ["parent_id"])


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("dse_studies") as batch:
        batch.drop_index("ix_dse_studies_parent_id")
        batch.drop_constraint("fk_dse_studies_parent", type_="foreignkey")
        batch.drop_column("suggestion")
        batch.drop_column("parent_id")
