"""Instances pulled from a PACS over DICOMweb, their predictions, and the results pushed back.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pacs_instances",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False, unique=True),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("series_instance_uid", sa.String(64), nullable=False),
        sa.Column("prediction_id", sa.Integer(), sa.ForeignKey("predictions.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("result_sr_uid", sa.String(64), nullable=True),
        sa.Column("result_sr_series_uid", sa.String(64), nullable=True),
        sa.Column("overlay_sc_uid", sa.String(64), nullable=True),
        sa.Column("reviews_pushed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pacs_instances_study_instance_uid", "pacs_instances", ["study_instance_uid"])
    op.create_index("ix_pacs_instances_prediction_id", "pacs_instances", ["prediction_id"])


def downgrade() -> None:
    op.drop_table("pacs_instances")
