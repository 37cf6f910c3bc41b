"""Out-of-domain flags on predictions and the reviewer's confirmation of a flagged image.

``predictions.domain_score`` / ``out_of_domain``: the detector's score and flag (``core.domain``),
NULL for predictions made before it or by a model without one. ``reviews.domain_confirmed``: the
reviewer confirmed that a flagged image is a usable chest X-ray (a "not usable" answer is the
corrected label ``UNUSABLE``, which needs no new column).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("domain_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("out_of_domain", sa.Boolean(), nullable=True))
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("domain_confirmed", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("domain_confirmed")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("out_of_domain")
        batch.drop_column("domain_score")
