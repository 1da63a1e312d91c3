"""billing: billing_run_items.retry_at (when a run item waiting for Stripe is tried again, for the run page)

Revision ID: 8d3f6b2a9c47
Revises: 5e1c0a7d2b19
Create Date: 2026-12-04 19:15:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8d3f6b2a9c47'
down_revision = '5e1c0a7d2b19'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('billing_run_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('billing_run_items', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
