"""Record where a prediction came from; add threshold governance.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("source", sa.String(32), nullable=False, server_default="dashboard"))
    op.create_table(
        "threshold_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("model_versions.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("changed_by", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_threshold_changes_model_id", "threshold_changes", ["model_id"])


def downgrade() -> None:
    op.drop_table("threshold_changes")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("source")
