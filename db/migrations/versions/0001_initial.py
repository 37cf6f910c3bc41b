"""First schema: images, model versions, predictions, reviews.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("storage_path", sa.String(512), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("original_label", sa.String(16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_images_sha256", "images", ["sha256"], unique=True)
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("arch", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_model_versions_sha256", "model_versions", ["sha256"], unique=True)
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("model_versions.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("p_normal", sa.Float, nullable=False),
        sa.Column("p_pneumonia", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("predicted_label", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_predictions_image_id", "predictions", ["image_id"])
    op.create_index("ix_predictions_model_id", "predictions", ["model_id"])
    op.create_index("ix_predictions_predicted_label", "predictions", ["predicted_label"])
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("prediction_id", sa.Integer, sa.ForeignKey("predictions.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("agrees", sa.Boolean, nullable=False),
        sa.Column("corrected_label", sa.String(16), nullable=True),
        sa.Column("confidence", sa.String(16), nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("supersedes_id", sa.Integer, sa.ForeignKey("reviews.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reviews_prediction_id", "reviews", ["prediction_id"])
    op.create_index("ix_reviews_reviewer", "reviews", ["reviewer"])
    op.create_index("ix_reviews_created_at", "reviews", ["created_at"])


def downgrade() -> None:
    for table in ("reviews", "predictions", "model_versions", "images"):
        op.drop_table(table)
