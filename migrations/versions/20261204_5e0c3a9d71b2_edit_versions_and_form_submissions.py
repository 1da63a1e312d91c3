"""Edit forms check a version column (existing rows start at 1; users' roles_version counts only admin role edits);
create forms' one-time tokens in form_submissions

Revision ID: 5e0c3a9d71b2
Revises: 8d3f6b2a9c47
Create Date: 2026-12-04 18:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5e0c3a9d71b2'
down_revision = '8d3f6b2a9c47'
branch_labels = None
depends_on = None

VERSIONED_TABLES = (
    'organisations', 'contacts', 'memberships', 'fee_schedules', 'reply_templates', 'service_targets',
    'adviser_absences',
)


def upgrade():
    for table in VERSIONED_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('roles_version', sa.Integer(), server_default='1', nullable=False))

    op.create_table(
        'form_submissions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('record_type', sa.String(length=64), nullable=False),
        sa.Column('record_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_form_submissions')),
        sa.UniqueConstraint('token', name=op.f('uq_form_submissions_token')),
    )
    with op.batch_alter_table('form_submissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_submissions_created_at'), ['created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('form_submissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_submissions_created_at'))
    op.drop_table('form_submissions')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('roles_version')

    for table in reversed(VERSIONED_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('version')
