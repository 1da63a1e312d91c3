"""Billing use cases. Services flush, never commit; the acting user is a parameter."""

from crm.billing.services.corrections import (
    REMINDER_DAYS,
    issue_credit_note,
    overdue_invoices,
    send_due_reminders,
    void_invoice,
)
from crm.billing.services.invoices import (
    BILLABLE_STATUSES,
    apply_stripe_invoice,
    build_invoice,
    cannot_invoice_reason,
    ensure_stripe_customer,
    ensure_tax_rate,
    fee_vat_treatment,
    get_or_create_invoice,
    latest_invoice,
    line_vat,
    live_invoice,
    next_stripe_step,
)
from crm.billing.services.reissue import reissue_invoice, reissue_refusal
from crm.billing.services.runs import (
    PreviewRow,
    billable_memberships,
    finish_run_if_done,
    invoiced_membership_ids,
    preview_billing_run,
    retry_failed_items,
    run_progress,
    start_billing_run,
)
from crm.members.services import today

__all__ = [
    "BILLABLE_STATUSES",
    "REMINDER_DAYS",
    "PreviewRow",
    "apply_stripe_invoice",
    "billable_memberships",
    "build_invoice",
    "cannot_invoice_reason",
    "ensure_stripe_customer",
    "ensure_tax_rate",
    "fee_vat_treatment",
    "finish_run_if_done",
    "get_or_create_invoice",
    "invoiced_membership_ids",
    "issue_credit_note",
    "latest_invoice",
    "line_vat",
    "live_invoice",
    "next_stripe_step",
    "overdue_invoices",
    "preview_billing_run",
    "reissue_invoice",
    "reissue_refusal",
    "retry_failed_items",
    "run_progress",
    "send_due_reminders",
    "start_billing_run",
    "today",
    "void_invoice",
]
