"""dse_studies and dse_trials

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the study and trial-index tables."""
    op.create_table(
        "dse_studies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("optuna_name", sa.String(255), nullable=False, unique=True),
        sa.Column("optuna_study_id", sa.Integer),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("sampling", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_dse_studies_status", "dse_studies", ["status"])
    op.create_table(
        "dse_trials",
        sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(
            "study_id",
            sa.Integer,
            sa.ForeignKey("dse_studies.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("space", sa.String(200), nullable=False),
        sa.Column("sample", sa.Integer, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("epochs", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Float),
        sa.Column("test_error", sa.Float),
        sa.Column("last_val_error", sa.Float),
        sa.Column("epochs_done", sa.Integer, nullable=False),
        sa.Column("flops", sa.BigInteger, nullable=False),
        sa.Column("params", sa.BigInteger, nullable=False),
        sa.Column("acts", sa.BigInteger, nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("net", sa.JSON, nullable=False),
        sa.Column("sampled", sa.JSON, nullable=False),
        sa.Column("history", sa.JSON, nullable=False),
        sa.Column("worker", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("retried_as", sa.Integer),
        sa.Column("images_per_s", sa.Float),
        sa.Column("seconds", sa.Float),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("study_id", "space", "sample", "level", "attempt", name="uq_dse_trial"),
    )
    op.create_index("ix_dse_trials_queue", "dse_trials", ["status", "study_id", "trial_id"])
    op.create_index("ix_dse_trials_study_space_level", "dse_trials", ["study_id", "space", "level"])


def downgrade() -> None:
    """Drop the dse tables."""
    op.drop_table("dse_trials")
    op.drop_table("dse_studies")
