"""billing: invoices finalised before the explicit send step were emailed by Stripe's auto-advance: their step is 'sent'

Revision ID: 5e1d7a93c2b4
Revises: ce0f278ece93
Create Date: 2026-12-04 19:05:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '5e1d7a93c2b4'
down_revision = 'ce0f278ece93'
branch_labels = None
depends_on = None


def upgrade():
    # Before this, 'finalized' was the last step and Stripe emailed the invoice itself (auto_advance); now the job
    # finalises, then sends, then records 'sent'. Existing finalised invoices were sent: never send them again.
    op.execute("UPDATE invoices SET stripe_step = 'sent' WHERE stripe_step = 'finalized'")


def downgrade():
    op.execute("UPDATE invoices SET stripe_step = 'finalized' WHERE stripe_step = 'sent'")
