"""Threshold changes carry a calibration (temperature, bias) and the goal they were chosen for;
``predictions.source`` becomes ``channel`` (how a prediction was made: dashboard or cli).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("threshold_changes") as batch:
        batch.add_column(sa.Column("temperature", sa.Float, nullable=True))
        batch.add_column(sa.Column("bias", sa.Float, nullable=True))
        batch.add_column(sa.Column("goal", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("predictions") as batch:
        batch.alter_column("source", new_column_name="channel", existing_type=sa.String(32))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.alter_column("channel", new_column_name="source", existing_type=sa.String(32))
    with op.batch_alter_table("threshold_changes") as batch:
        batch.drop_column("goal")
        batch.drop_column("bias")
        batch.drop_column("temperature")
