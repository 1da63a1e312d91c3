"""SQLite databases drop the lower(name) expression indexes (PostgreSQL keeps them)

SQLite cannot reflect an expression index: every batch migration that reflected organisations or contacts
printed "SAWarning: Skipped unsupported reflection of expression-based index", and a batch migration of those
tables themselves would have dropped the index silently. A fresh SQLite database no longer gets them
(20261126_47b5b751c9ee); this removes them from SQLite databases upgraded before.

Revision ID: 5e1c0a7d2b19
Revises: 5f3a9c1d7e20
Create Date: 2026-12-04 18:55:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '5e1c0a7d2b19'
down_revision = '5f3a9c1d7e20'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('DROP INDEX IF EXISTS ix_organisations_name_lower')
        op.execute('DROP INDEX IF EXISTS ix_contacts_name_lower')


def downgrade():
    # Nothing to restore: SQLite databases are meant to be without them.
    pass
