"""Stripe webhook events: stored once, processed by a job through a registry of handlers by event type.

Later features (event tickets through Stripe Checkout) add ``register_event_handler("checkout.session.
completed", fn)`` in their own module; the webhook view and the processing job stay as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm.billing.models import Invoice, StripeEvent
from crm.billing.services import (
    apply_stripe_credit_note,
    apply_stripe_invoice,
    invoices_paid_by,
    record_deleted_draft,
    record_refunds,
)
from crm.billing.stripe_gateway import StripeRefused, get_gateway
from crm.extensions import db
from crm.models import utcnow

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("crm.security")

EventHandler = Callable[[StripeEvent, dict[str, Any]], None]
_HANDLERS: dict[str, EventHandler] = {}


def register_event_handler(event_type: str, handler: EventHandler) -> None:
    """``handler(event_row, event_object)`` processes one event type; it must be safe to run twice."""
    _HANDLERS[event_type] = handler


def event_handler(*event_types: str) -> Callable[[EventHandler], EventHandler]:
    def decorator(handler: EventHandler) -> EventHandler:
        for event_type in event_types:
            register_event_handler(event_type, handler)
        return handler

    return decorator


def handled_event_types() -> list[str]:
    return sorted(_HANDLERS)


def record_stripe_event(event: dict[str, Any]) -> tuple[StripeEvent, bool]:
    """Store a verified event under its unique id and enqueue its processing. A duplicate (also one
    arriving at the same moment) returns the stored row and ``False``, and enqueues nothing."""
    existing = db.session.scalar(select(StripeEvent).where(StripeEvent.stripe_event_id == event["id"]))
    if existing is not None:
        return existing, False
    obj = (event.get("data") or {}).get("object") or {}
    row = StripeEvent(stripe_event_id=event["id"], type=event.get("type", ""), object_id=obj.get("id"), payload=event)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        existing = db.session.scalar(select(StripeEvent).where(StripeEvent.stripe_event_id == event["id"]))
        if existing is None:
            raise
        return existing, False
    from crm.billing.jobs import enqueue_stripe_event

    enqueue_stripe_event(row.id)
    logger.info("stripe event %s (%s) stored", row.stripe_event_id, row.type)
    return row, True


def process_event(row: StripeEvent) -> bool:
    """Run the handler for the event's type (unknown types are only marked processed). Returns False when
    the event had already been processed."""
    if row.processed_at is not None:
        return False
    handler = _HANDLERS.get(row.type)
    if handler is not None:
        handler(row, (row.payload.get("data") or {}).get("object") or {})
    else:
        logger.info("stripe event %s: no handler for %s", row.stripe_event_id, row.type)
    row.processed_at = utcnow()
    row.error = None
    db.session.flush()
    return True


def _locked_invoice(stripe_invoice_id: str | None) -> Invoice | None:
    if not stripe_invoice_id:
        return None
    return db.session.scalar(select(Invoice).where(Invoice.stripe_invoice_id == stripe_invoice_id).with_for_update())


@event_handler(
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.sent",
    "invoice.updated",  # e.g. a credit note settled it, or its details were edited in Stripe's dashboard
    "invoice.overdue",  # nothing to change unless Stripe's state differs from ours (reminders are our own)
)
def _invoice_changed(row: StripeEvent, obj: dict[str, Any]) -> None:
    invoice = _locked_invoice(obj.get("id"))
    if invoice is None:
        logger.info("stripe event %s: invoice %s is not ours", row.stripe_event_id, obj.get("id"))
        return
    # The event is a snapshot that may be old or out of order; Stripe's current state decides.
    current = get_gateway().retrieve_invoice(invoice.stripe_invoice_id)  # type: ignore[arg-type]
    changed = apply_stripe_invoice(invoice, current)
    if row.type == "invoice.payment_failed":
        logger.warning("invoice %s: a payment attempt failed", invoice.id)
    logger.info("stripe event %s applied to invoice %s: %s", row.stripe_event_id, invoice.id, changed or "no change")


@event_handler("invoice.deleted")
def _invoice_deleted(row: StripeEvent, obj: dict[str, Any]) -> None:
    invoice = _locked_invoice(obj.get("id"))
    if invoice is None:
        return
    try:
        get_gateway().retrieve_invoice(invoice.stripe_invoice_id)  # type: ignore[arg-type]
    except StripeRefused as exc:
        if exc.status != 404:
            raise
        record_deleted_draft(invoice)
        return
    logger.info("stripe event %s: invoice %s still exists at Stripe", row.stripe_event_id, invoice.id)


# A refund shows as several events (refund.created, charge.refunded, refund.updated, and credit_note.created when a
# credit note refunds), in any order and possibly twice: each only points at the payment, and the invoice's refunded
# amount is set from Stripe's current state.
@event_handler("charge.refunded", "charge.refund.updated", "refund.created", "refund.updated", "refund.failed")
def _refund_changed(row: StripeEvent, obj: dict[str, Any]) -> None:
    intent = obj.get("payment_intent")
    intent_id = intent.get("id") if isinstance(intent, dict) else intent
    if not intent_id:
        logger.info("stripe event %s: %s has no payment intent, so no invoice", row.stripe_event_id, obj.get("id"))
        return
    gateway = get_gateway()
    for stripe_invoice_id in invoices_paid_by(intent_id, gateway):
        invoice = _locked_invoice(stripe_invoice_id)
        if invoice is not None:
            record_refunds(invoice, gateway)


@event_handler("credit_note.created", "credit_note.updated", "credit_note.voided")
def _credit_note_changed(row: StripeEvent, obj: dict[str, Any]) -> None:
    invoice = _locked_invoice(obj.get("invoice"))
    if invoice is None:
        return
    gateway = get_gateway()
    current = gateway.retrieve_credit_note(obj["id"])
    apply_stripe_credit_note(invoice, current)
    if current.get("refunds"):
        record_refunds(invoice, gateway)
