"""auth: second-factor lockout (wrong codes in a row, lockouts in a row, locked until)

Revision ID: 5f3a9c1d7e20
Revises: 5bf1a00f5ca9
Create Date: 2026-12-04 19:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5f3a9c1d7e20'
down_revision = '5bf1a00f5ca9'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mfa_failed_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('mfa_lockouts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('mfa_locked_until', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('mfa_locked_until')
        batch_op.drop_column('mfa_lockouts')
        batch_op.drop_column('mfa_failed_attempts')
