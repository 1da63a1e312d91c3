"""Billing screens (staff: invoices and billing runs; portal: the organisation's invoices) and the Stripe webhook."""

from __future__ import annotations

import logging
from functools import partial

from flask import Blueprint, Flask, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm.audit.details import names_from, register_audit_details
from crm.auth.access import member_required, public, staff_required
from crm.auth.models import Role
from crm.billing import listing, services
from crm.billing.forms import CreditNoteForm, ReissueForm, RunForm, RunStartForm, SendDraftForm, VoidForm
from crm.billing.models import BillingRun, CreditNote, Invoice, InvoiceStatus, RunItemStatus
from crm.billing.stripe_gateway import WebhookSignatureError, is_test_mode, verify_webhook
from crm.billing.webhooks import record_stripe_event, security_logger
from crm.errors import attempt
from crm.extensions import csrf, db
from crm.submissions import create_once
from crm.ui import register_nav

logger = logging.getLogger(__name__)

bp = Blueprint("billing", __name__, url_prefix="/staff/billing")
webhook_bp = Blueprint("stripe_webhook", __name__)
portal_bp = Blueprint("billing_portal", __name__, url_prefix="/portal/invoices")

FINANCE = (Role.FINANCE,)  # admins always pass


# --- the webhook --------------------------------------------------------------------------------------------


@webhook_bp.route("/stripe/webhook", methods=["POST"])
@public
@csrf.exempt
def stripe_webhook():
    payload = request.get_data(cache=False)
    try:
        event = verify_webhook(
            payload, request.headers.get("Stripe-Signature"), current_app.config["STRIPE_WEBHOOK_SECRET"]
        )
    except WebhookSignatureError as exc:
        security_logger.warning("security: rejected Stripe webhook from %s: %s", request.remote_addr, exc)
        return jsonify(error="invalid signature"), 400
    if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        security_logger.warning("security: signed Stripe webhook without id or type from %s", request.remote_addr)
        return jsonify(error="invalid event"), 400
    _row, created = record_stripe_event(event)
    db.session.commit()
    return jsonify(received=True, duplicate=not created), 200


# --- staff: invoices ----------------------------------------------------------------------------------------


@bp.route("/")
@staff_required(*FINANCE)
def index():
    """The navigation's entry: its URL is a prefix of every billing page, so "Invoices" stays marked
    on the run pages too."""
    return redirect(url_for(".invoices"))


@bp.route("/invoices")
@staff_required(*FINANCE)
def invoices():
    filters = listing.filters_from_args(request.args)
    page, totals = listing.search_invoices(filters)
    return render_template(
        "billing/invoices.html",
        page=page,
        totals=totals,
        replacements=listing.replacements(page.items),
        filters=filters,
        statuses=list(InvoiceStatus),
        categories=listing.categories(),
        today=services.today(),
    )


@bp.route("/invoices/<int:invoice_id>")
@staff_required(*FINANCE)
def invoice(invoice_id: int):
    found = db.get_or_404(Invoice, invoice_id)
    return render_template(
        "billing/invoice.html",
        invoice=found,
        events=listing.invoice_events(found),
        void_form=VoidForm(),
        credit_form=CreditNoteForm(),
        reissue_form=ReissueForm(),
        send_form=SendDraftForm(),
        is_local_draft=services.is_local_draft(found),
        never_at_stripe=services.never_at_stripe(found),
        replacement=listing.replacements([found]).get(found.id),
        reissue_refusal=services.reissue_refusal(found) if found.status is InvoiceStatus.VOID else None,
        today=services.today(),
    )


@bp.route("/invoices/<int:invoice_id>/stripe-progress")
@staff_required(*FINANCE)
def invoice_progress(invoice_id: int):
    """The invoice page's live note while a void or credit note is on its way to Stripe; once none is, htmx
    reloads the whole page to show the outcome."""
    found = db.get_or_404(Invoice, invoice_id)
    if not (found.void_pending or found.pending_credit_notes):
        return "", 200, {"HX-Refresh": "true"}
    return render_template("billing/_invoice_progress.html", invoice=found)


@bp.route("/invoices/<int:invoice_id>/reissue", methods=["POST"])
@staff_required(*FINANCE)
def reissue(invoice_id: int):
    found = db.get_or_404(Invoice, invoice_id)
    if not ReissueForm().validate_on_submit():
        abort(400)
    outcome = attempt(lambda: services.reissue_invoice(found, actor=current_user))
    if not outcome.ok:
        return redirect(url_for(".invoice", invoice_id=invoice_id))
    flash(_("A new invoice is made and is being sent through Stripe."), "success")
    return redirect(url_for(".invoice", invoice_id=outcome.result.id))


@bp.route("/invoices/<int:invoice_id>/void", methods=["POST"])
@staff_required(*FINANCE)
def void(invoice_id: int):
    found = db.get_or_404(Invoice, invoice_id)
    form = VoidForm()
    if not form.validate_on_submit():
        flash(_("Give a reason."), "danger")
        return redirect(url_for(".invoice", invoice_id=invoice_id))
    if attempt(lambda: services.void_invoice(found, actor=current_user, reason=form.reason.data)).ok:
        if found.status is InvoiceStatus.VOID:
            flash(_("The invoice is voided, without Stripe: Stripe never had it."), "success")
        else:
            flash(_("The invoice is being voided at Stripe."), "success")
    return redirect(url_for(".invoice", invoice_id=invoice_id))


@bp.route("/invoices/<int:invoice_id>/credit", methods=["POST"])
@staff_required(*FINANCE)
def credit(invoice_id: int):
    found = db.get_or_404(Invoice, invoice_id)
    form = CreditNoteForm()
    if not form.validate_on_submit():
        flash(_("Give an amount and a reason."), "danger")
        return redirect(url_for(".invoice", invoice_id=invoice_id))
    issue = partial(services.issue_credit_note, found, form.amount_ore(), actor=current_user, reason=form.reason.data)
    outcome = attempt(lambda: create_once(form.submission.data, CreditNote, issue))
    if outcome.ok and services.never_at_stripe(found):
        flash(_("The credit note is issued, without Stripe: Stripe never had the invoice."), "success")
    elif outcome.ok:
        flash(_("The credit note is being issued at Stripe."), "success")
    return redirect(url_for(".invoice", invoice_id=invoice_id))


@bp.route("/invoices/<int:invoice_id>/send", methods=["POST"])
@staff_required(*FINANCE)
def send_draft(invoice_id: int):
    found = db.get_or_404(Invoice, invoice_id)
    if not SendDraftForm().validate_on_submit():
        abort(400)
    if attempt(lambda: services.send_draft_invoice(found, actor=current_user)).ok:
        flash(_("The invoice is being sent through Stripe."), "success")
    return redirect(url_for(".invoice", invoice_id=invoice_id))


@bp.route("/invoices/<int:invoice_id>/void-draft", methods=["POST"])
@staff_required(*FINANCE)
def void_draft(invoice_id: int):
    found = db.get_or_404(Invoice, invoice_id)
    form = VoidForm()
    if not form.validate_on_submit():
        flash(_("Give a reason."), "danger")
        return redirect(url_for(".invoice", invoice_id=invoice_id))
    if attempt(lambda: services.void_draft_invoice(found, actor=current_user, reason=form.reason.data)).ok:
        flash(_("The draft invoice is voided."), "success")
    return redirect(url_for(".invoice", invoice_id=invoice_id))


@bp.route("/export.<fmt>")
@staff_required(*FINANCE)
def export(fmt: str):
    from crm.billing.export import invoice_export_rows
    from crm.exports import FORMATS, table_response

    if fmt not in FORMATS:
        abort(404)
    filters = listing.filters_from_args(request.args)
    headers, rows = invoice_export_rows(filters)
    name = f"fakturaer-{filters.year or 'alle'}"
    return table_response(headers, rows, fmt=fmt, filename=name, sheet_title=_("Invoices"))


# --- staff: billing runs ------------------------------------------------------------------------------------


@bp.route("/runs/new")
@staff_required(*FINANCE)
def run_preview():
    form = RunForm(request.args, meta={"csrf": False})
    year = form.year.data if form.validate() else services.today().year
    from crm.members.fee_forms import CopyFeeYearForm
    from crm.members.services import fee_rollover_source

    rows = services.preview_billing_run(year)
    return render_template(
        "billing/run_preview.html",
        year=year,
        rows=rows,
        summary=services.summarise_preview(rows),
        fee_rollover_from=fee_rollover_source(year),  # a new year without fees: offer to copy last year's
        copy_form=CopyFeeYearForm(),
    )


@bp.route("/runs/confirm")
@staff_required(*FINANCE)
def run_confirm():
    """The step between the preview and sending: it states how many invoices go out and their total, and the
    start form carries both, so the run refuses if they changed meanwhile (no JavaScript needed)."""
    form = RunForm(request.args, meta={"csrf": False})
    if not form.validate():
        flash(_("Choose a valid year."), "danger")
        return redirect(url_for(".run_preview"))
    summary = services.summarise_preview(services.preview_billing_run(form.year.data))
    if not summary.count:
        flash(_("Nobody can be invoiced for %(year)s.", year=form.year.data), "warning")
        return redirect(url_for(".run_preview", year=form.year.data))
    start_form = RunStartForm(year=form.year.data, count=summary.count, total_ore=summary.gross_ore)
    return render_template("billing/run_confirm.html", year=form.year.data, summary=summary, form=start_form)


@bp.route("/runs", methods=["POST"])
@staff_required(*FINANCE)
def run_start():
    form = RunStartForm()
    if not form.validate_on_submit():
        flash(_("Confirm the number of invoices and the total first."), "danger")
        return redirect(url_for(".run_preview", year=form.year.data) if form.year.data else url_for(".run_preview"))
    confirmed = (form.count.data, form.total_ore.data)
    start = partial(services.start_billing_run, form.year.data, actor=current_user, confirmed=confirmed)
    outcome = attempt(lambda: create_once(form.submission.data, BillingRun, start))
    if not outcome.ok:
        return redirect(url_for(".run_preview", year=form.year.data))
    flash(_("The billing run has started."), "success")
    return redirect(url_for(".run", run_id=outcome.result.id))


def _run_context(run_id: int) -> dict:
    run = db.get_or_404(BillingRun, run_id)
    counts = services.run_progress(run)
    total = sum(counts.values())
    return {
        "run": run,
        "counts": counts,
        "total": total,
        "statuses": RunItemStatus,
        "failed": listing.failed_items(run) if counts[RunItemStatus.FAILED] else [],
        "stripe_retry_at": listing.next_stripe_retry(run) if counts[RunItemStatus.QUEUED] else None,
        "percent": int(100 * (total - counts[RunItemStatus.QUEUED]) / total) if total else 100,
        "retry_form": RunForm(),
    }


@bp.route("/runs/<int:run_id>")
@staff_required(*FINANCE)
def run(run_id: int):
    return render_template("billing/run.html", **_run_context(run_id))


@bp.route("/runs/<int:run_id>/progress")
@staff_required(*FINANCE)
def run_progress(run_id: int):
    return render_template("billing/_run_progress.html", **_run_context(run_id))


@bp.route("/runs/<int:run_id>/retry", methods=["POST"])
@staff_required(*FINANCE)
def run_retry(run_id: int):
    found = db.get_or_404(BillingRun, run_id)
    count = services.retry_failed_items(found, actor=current_user)
    db.session.commit()
    flash(_("%(count)s invoices queued again.", count=count), "success")
    return redirect(url_for(".run", run_id=run_id))


@bp.route("/runs")
@staff_required(*FINANCE)
def runs():
    return render_template("billing/runs.html", runs=listing.recent_runs())


# --- portal -------------------------------------------------------------------------------------------------


@portal_bp.route("/")
@member_required
def portal_invoices():
    from crm.members.services import portal_contact_for

    contact = portal_contact_for(current_user)
    if contact is None:
        abort(403)
    invoices = listing.organisation_invoices(contact.organisation_id, include_drafts=False)
    return render_template(
        "billing/portal_invoices.html",
        organisation=contact.organisation,
        invoices=invoices,
        replacements=listing.replacements(invoices),
        today=services.today(),
    )


# --- the organisation page's tab ----------------------------------------------------------------------------


def _organisation_tab(organisation) -> str:
    invoices = listing.organisation_invoices(organisation.id)
    return render_template(
        "billing/_organisation_invoices.html",
        invoices=invoices,
        replacements=listing.replacements(invoices),
        today=services.today(),
    )


def init_app(app: Flask) -> None:
    from crm.billing.cli import register_commands
    from crm.members.panels import register_panel

    app.register_blueprint(webhook_bp)
    app.register_blueprint(portal_bp)

    @app.context_processor
    def inject_stripe_mode():
        # base.html marks the staff pages (and the portal's invoices page) while no real money can move.
        return {"stripe_test_mode": is_test_mode(app.config)}

    register_panel("invoices", _l("Invoices"), _organisation_tab, order=60)
    register_nav(_l("Invoices"), "billing.index", audience="staff", roles=FINANCE, order=60)
    register_nav(
        _l("Invoices"),
        "billing_portal.portal_invoices",
        audience="member",
        order=60,
        description=_l("Your organisation's membership invoices: pay online or download them as PDF."),
    )
    register_commands()
    register_audit_details(
        actions={
            "billing.run.started": _l("Billing run started"),
            "billing.run.retried": _l("Billing run retried"),
            "billing.invoice.credited": _l("Invoice credited"),
            "billing.invoice.void_requested": _l("Invoice void requested"),
            "billing.invoice.voided": _l("Invoice voided"),
            "billing.invoice.void_failed": _l("Invoice void refused by Stripe"),
            "billing.invoice.credit_failed": _l("Credit note refused by Stripe"),
            "billing.invoice.reissued": _l("Invoice reissued"),
            "billing.invoice.send_requested": _l("Draft invoice sent on"),
        },
        targets={"invoices": _l("Invoice"), "billing_runs": _l("Billing run")},
        namers={
            "invoices": names_from(Invoice.id, Invoice.number),
            "billing_runs": names_from(BillingRun.id, BillingRun.year),
        },
        labels={
            "number": _l("Invoice number"),
            "amount_ore": _l("Amount"),
            "year": _l("Year"),
            "queued": _l("Invoices queued"),
            "skipped": _l("Skipped"),
            "items": _l("Invoices"),
            "voided_number": _l("Voided invoice"),
            "sequence": _l("Invoice for the year, no."),
            "error": _l("Error"),
            "step": _l("Stripe step"),
        },
        hidden=("billing.invoice.reissued:new_invoice_id",),
    )
