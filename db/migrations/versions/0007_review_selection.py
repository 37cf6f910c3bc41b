"""How each reviewed case was chosen: the uncertainty queue, a random audit, or outside the queue.

Queue-chosen cases are the most uncertain ones, not a sample of the site, so site figures and
calibration leave them out (``service.site``). Reviews made before this revision have none (NULL).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("selection", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("selection")
