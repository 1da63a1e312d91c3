"""mail: security messages are stored without their link (secret_link), messages name the record they are about (related_type/_id)

Existing rows are cleaned: every password reset or invitation link in a stored body is replaced by the
placeholder (a queued or retrying one is then sent with a freshly minted link), and the emails about
advisory cases get their case from the "[Sak #<id>]" subject.

Revision ID: 5bf1a00f5ca9
Revises: 5e1d7a93c2b4
Create Date: 2026-12-04 18:45:00.000000

"""
import re

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5bf1a00f5ca9'
down_revision = '5e1d7a93c2b4'
branch_labels = None
depends_on = None

PLACEHOLDER = "[link removed]"  # crm.mail.models.LINK_PLACEHOLDER on this day
LINK = re.compile(r"https?://[^\s\"'<>]+/auth/(reset|invitation)/[A-Za-z0-9_.\-]+")
PURPOSE = {"reset": "reset", "invitation": "invitation"}
CASE_SUBJECT = re.compile(r"^\[Sak #(\d+)\]")

outbox = sa.table(
    "outbox_messages",
    sa.column("id", sa.Integer),
    sa.column("template", sa.String),
    sa.column("subject", sa.String),
    sa.column("body_text", sa.Text),
    sa.column("body_html", sa.Text),
    sa.column("secret_link", sa.String),
    sa.column("related_type", sa.String),
    sa.column("related_id", sa.Integer),
)


def upgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_link', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('related_type', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('related_id', sa.Integer(), nullable=True))

    connection = op.get_bind()
    rows = connection.execute(
        sa.select(outbox.c.id, outbox.c.template, outbox.c.subject, outbox.c.body_text, outbox.c.body_html)
    )
    for row in rows.all():
        values = {}
        found = LINK.search(row.body_text or "") or LINK.search(row.body_html or "")
        if found:
            values["secret_link"] = PURPOSE[found.group(1)]
            values["body_text"] = LINK.sub(PLACEHOLDER, row.body_text or "")
            values["body_html"] = LINK.sub(PLACEHOLDER, row.body_html or "")
        case = CASE_SUBJECT.match(row.subject or "") if (row.template or "").startswith("advisory_") else None
        if case:
            values["related_type"] = "cases"
            values["related_id"] = int(case.group(1))
        if values:
            connection.execute(sa.update(outbox).where(outbox.c.id == row.id).values(**values))


def downgrade():
    # The removed links are not restored: they were the secrets this revision takes out of the table.
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('related_id')
        batch_op.drop_column('related_type')
        batch_op.drop_column('secret_link')
