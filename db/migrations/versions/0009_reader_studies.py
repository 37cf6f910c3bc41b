"""Named reader studies: frozen cases, named readers, unaided and aided reads with a washout.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reader_studies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("reference", sa.String(16), nullable=False),
        sa.Column("washout_days", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "study_cases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("reader_studies.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("prediction_id", sa.Integer(), sa.ForeignKey("predictions.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("reference_label", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.UniqueConstraint("study_id", "image_id", name="uq_study_case_image"),
    )
    op.create_index("ix_study_cases_study_id", "study_cases", ["study_id"])
    op.create_table(
        "study_readers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("reader_studies.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("reader", sa.String(100), nullable=False),
        sa.UniqueConstraint("study_id", "reader", name="uq_study_reader"),
    )
    op.create_index("ix_study_readers_study_id", "study_readers", ["study_id"])
    op.create_table(
        "study_reads",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("reader_studies.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("study_cases.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("reader", sa.String(100), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("washout_override", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("case_id", "reader", "modality", name="uq_study_read"),
    )
    op.create_index("ix_study_reads_study_id", "study_reads", ["study_id"])
    op.create_index("ix_study_reads_case_id", "study_reads", ["case_id"])


def downgrade() -> None:
    for table in ("study_reads", "study_readers", "study_cases", "reader_studies"):
        op.drop_table(table)
