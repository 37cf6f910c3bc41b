"""Reader study: blind first reads, adjudications, suspected training-label issues, verified identities,
and the tamper-evident audit log.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blind_reads",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("prediction_id", sa.Integer, sa.ForeignKey("predictions.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("reviewer_verified", sa.Boolean, nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("confidence", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_blind_reads_prediction_id", "blind_reads", ["prediction_id"])
    op.create_index("ix_blind_reads_reviewer", "blind_reads", ["reviewer"])
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("reviewer_verified", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("blind_read_id", sa.Integer, nullable=True))
        batch.create_foreign_key("fk_reviews_blind_read_id", "blind_reads", ["blind_read_id"], ["id"])
    op.create_table(
        "adjudications",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("adjudicator", sa.String(100), nullable=False),
        sa.Column("adjudicator_verified", sa.Boolean, nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_adjudications_image_id", "adjudications", ["image_id"])
    op.create_table(
        "suspected_label_issues",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("prediction_id", sa.Integer, sa.ForeignKey("predictions.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("given_label", sa.String(16), nullable=False),
        sa.Column("p_given_label", sa.Float, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_suspected_label_issues_image_id", "suspected_label_issues", ["image_id"])
    op.create_index("ix_suspected_label_issues_prediction_id", "suspected_label_issues", ["prediction_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.Integer, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
    )


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("suspected_label_issues")
    op.drop_table("adjudications")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_constraint("fk_reviews_blind_read_id", type_="foreignkey")
        batch.drop_column("blind_read_id")
        batch.drop_column("reviewer_verified")
    op.drop_table("blind_reads")
