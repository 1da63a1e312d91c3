"""A small stateful Stripe-compatible HTTP server for `make run` (the embedded default when no Stripe key
is set in development), the tests and the benchmark.

localstripe (the obvious choice) has no idempotency keys, no finalize/send/mark_uncollectible
endpoints, no ``send_invoice`` collection and no credit notes, so this server implements exactly the
endpoints the billing gateway uses, the way Stripe answers them:

- one API version, ``API_VERSION`` (the app's ``STRIPE_API_VERSION``): a request asking for another is refused, and
  objects have that version's fields and none Stripe has removed (no ``invoice.charge`` or ``charge.invoice``: an
  invoice's payments are invoice payment objects pointing at payment intents);
- form-encoded bodies with nested keys (``lines[0][amount]``), JSON objects with ``id`` and ``object``;
- ``Idempotency-Key``: the same key replays the first response, a 5xx included once the endpoint began (different
  parameters: a 400 as Stripe does); a key in use by a request still running gets a 409;
- its own clock (``advance()``): a draft with ``auto_advance`` is finalised an hour after it was created, as Stripe
  does; an open invoice past its due date gets ``invoice.overdue``; ``days_until_due`` counts from the invoice's
  creation, as Stripe documents it;
- errors in Stripe's shape (``{"error": {"type", "code", "message"}}``);
- every change records an event, listed by ``GET /v1/events``;
- invoice lines may be negative (a discount line), as Stripe allows; tax is computed per line with the line's tax
  rates and summed into the invoice's totals. An invoice whose total is negative (Stripe would finalise it with
  nothing due and credit the customer's balance) is not modelled: finalising one is refused.

For ``make run`` (opt-in, the tests leave both off): ``webhook_url`` and ``webhook_secret`` make the server POST
every event it records to the app's ``/stripe/webhook``, signed as Stripe signs them and in order, retrying one the
app does not take; ``hosted_pages=True`` points ``hosted_invoice_url`` at a minimal invoice page served here
(``/i/<invoice id>``, marked as test mode) whose button pays the invoice, as a customer would; ``state_file`` keeps
the state (objects, events, idempotency keys, counters, clock, which events were delivered) in a JSON file, read at
start and rewritten after every change, so that a restarted ``make run`` knows the invoices its database knows.

Test controls: ``down()`` / ``up()`` (503 answers), ``refuse_connections()`` (the socket is closed
without an answer), ``fail_next(n, status)`` (429 or 5xx for the next n requests, before any endpoint runs),
``error_next(n, status, done=...)`` (the endpoint runs, with or without effect, and answers a 5xx that is saved under
the key), ``slow_next(seconds)``, ``advance(seconds)``, ``pay(invoice_id)`` (the customer pays), ``refund(invoice_id,
amount)``, ``delete_invoice``, request counters and timestamps.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import html
import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

logger = logging.getLogger(__name__)

_KEY_PART = re.compile(r"\[([^\]]*)\]")
API_VERSION = "2026-10-28.endive"
AUTO_FINALIZE_SECONDS = 3600  # Stripe finalises an auto-advancing draft about an hour after creating it


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding: ``a[b][0][c]=1`` -> ``{"a": {"b": [{"c": "1"}]}}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        parts = [head, *_KEY_PART.findall(key[len(head) :])]
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = parts[i + 1] if not last else None
            if isinstance(node, list):
                index = len(node) if part == "" else int(part)
                while len(node) <= index:
                    node.append(None)
                if last:
                    node[index] = value
                else:
                    if node[index] is None:
                        node[index] = [] if (nxt == "" or (nxt or "").isdigit()) else {}
                    node = node[index]
            else:
                if last:
                    node[part] = value
                else:
                    if part not in node:
                        node[part] = [] if (nxt == "" or (nxt or "").isdigit()) else {}
                    node = node[part]
    return _lists_from_dicts(root)


def _lists_from_dicts(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists_from_dicts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lists_from_dicts(v) for v in value if v is not None]
    return value


class StripeError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        return {"error": error}


class StripeState:
    """The server's objects; every method runs under the server's lock. Plain data only (the id and number counters
    are the next values, not iterators), so that ``as_json()`` / ``from_json()`` carry all of it across a restart."""

    FORMAT = 1  # of as_json(); a file in another format is not read

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.idempotent: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self.next_id = 1
        self.next_number = 1
        self.clock_offset = 0
        self.overdue_announced: set[str] = set()
        self.events_delivered = 0  # how many of ``events`` the webhook delivery has posted (make run)

    def as_json(self) -> str:
        return json.dumps(
            {
                "format": self.FORMAT,
                "objects": self.objects,
                "events": self.events,
                "idempotent": self.idempotent,
                "next_id": self.next_id,
                "next_number": self.next_number,
                "clock_offset": self.clock_offset,
                "overdue_announced": sorted(self.overdue_announced),
                "events_delivered": self.events_delivered,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> StripeState:
        """The state ``as_json()`` wrote; ``ValueError`` (``KeyError``, ``TypeError``) for anything else."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise ValueError(f"not a local Stripe state file of format {cls.FORMAT}")
        state = cls()
        state.objects = {str(k): dict(v) for k, v in data["objects"].items()}
        state.events = [dict(event) for event in data["events"]]
        state.idempotent = {
            str(k): (str(seen), int(status), dict(body)) for k, (seen, status, body) in data["idempotent"].items()
        }
        state.next_id, state.next_number = int(data["next_id"]), int(data["next_number"])
        state.clock_offset = int(data["clock_offset"])
        state.overdue_announced = {str(i) for i in data["overdue_announced"]}
        state.events_delivered = int(data["events_delivered"])
        if not 0 <= state.events_delivered <= len(state.events):
            raise ValueError("events_delivered is out of range")
        return state

    def revision(self) -> tuple[int, ...]:
        """Changes when the state does: every change records an event or takes an id, and the rest is counted here."""
        return (
            len(self.events),
            self.next_id,
            self.next_number,
            len(self.idempotent),
            self.clock_offset,
            len(self.overdue_announced),
            self.events_delivered,
        )

    def now(self) -> int:
        return int(time.time()) + self.clock_offset

    def new_id(self, prefix: str) -> str:
        self.next_id += 1
        return f"{prefix}_test{self.next_id - 1:08d}"

    def new_number(self) -> str:
        self.next_number += 1
        return f"EHN-{self.next_number - 1:05d}"

    def of(self, object_type: str) -> list[dict[str, Any]]:
        return [o for o in self.objects.values() if o["object"] == object_type]

    def get(self, object_id: str, object_type: str) -> dict[str, Any]:
        found = self.objects.get(object_id)
        if found is None or found["object"] != object_type:
            raise StripeError(404, f"No such {object_type}: '{object_id}'", code="resource_missing")
        return found

    def event(self, type_: str, obj: dict[str, Any]) -> None:
        self.events.append(
            {
                "id": self.new_id("evt"),
                "object": "event",
                "type": type_,
                "created": self.now(),
                "livemode": False,
                "api_version": API_VERSION,
                "data": {"object": json.loads(json.dumps(obj))},
            }
        )


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {name}", code="parameter_invalid_integer") from None


def _tax_amount(amount: int, percentage: float) -> int:
    """A tax rate's amount on one line, to the currency's minor unit, half up as Stripe documents it (0.025 -> 0.03;
    Python's ``round`` would round half to even). Lines may be negative (a discount or credit line, as Stripe
    allows): their tax rounds half away from zero, mirroring the positive line. crm/billing/services/invoices.py
    ``line_vat`` rounds the same way."""
    exact = Decimal(amount) * Decimal(str(percentage)) / 100
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _meta(params: dict[str, Any]) -> dict[str, str]:
    meta = params.get("metadata") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


class StripeApp:
    """The request handling, separate from the HTTP plumbing."""

    def __init__(self, hosted_base: str = "https://invoice.stripe.test") -> None:
        self.state = StripeState()
        self.hosted_base = hosted_base  # where finalised invoices' hosted_invoice_url points

    # --- routing -------------------------------------------------------------------------------

    def handle(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        s = self.state
        self.run_clock()
        parts = [p for p in path.split("/") if p][1:]  # drop "v1"
        match method, parts:
            case "POST", ["customers"]:
                return self.create_customer(params)
            case "GET", ["customers", "search"]:
                return self.search("customer", "/v1/customers/search", params)
            case "GET", ["customers", cid]:
                return s.get(cid, "customer")
            case "POST", ["customers", cid]:
                return self.update_customer(s.get(cid, "customer"), params)
            case "POST", ["tax_rates"]:
                return self.create_tax_rate(params)
            case "GET", ["tax_rates"]:
                rates = s.of("tax_rate")
                if "active" in params:
                    rates = [r for r in rates if r["active"] == (params["active"] == "true")]
                return self.listing(rates, "/v1/tax_rates", params)
            case "POST", ["invoices"]:
                return self.create_invoice(params)
            case "GET", ["invoices", "search"]:
                return self.search("invoice", "/v1/invoices/search", params)
            case "GET", ["invoices"]:
                return self.listing(s.of("invoice"), "/v1/invoices", params)
            case "GET", ["invoices", iid]:
                return self.expanded(s.get(iid, "invoice"), params)
            case "DELETE", ["invoices", iid]:
                return self.delete_invoice(s.get(iid, "invoice"))
            case "POST", ["invoices", iid, "add_lines"]:
                return self.add_lines(s.get(iid, "invoice"), params)
            case "POST", ["invoices", iid, "finalize"]:
                return self.finalize(s.get(iid, "invoice"), params)
            case "POST", ["invoices", iid, "send"]:
                return self.send(s.get(iid, "invoice"))
            case "POST", ["invoices", iid, "void"]:
                # Stripe voids open and uncollectible invoices alike.
                return self.transition(
                    s.get(iid, "invoice"), "void", {"open", "uncollectible"}, "invoice.voided", "voided_at"
                )
            case "POST", ["invoices", iid, "mark_uncollectible"]:
                return self.transition(
                    s.get(iid, "invoice"),
                    "uncollectible",
                    {"open"},
                    "invoice.marked_uncollectible",
                    "marked_uncollectible_at",
                )
            case "POST", ["invoices", iid, "pay"]:
                return self.pay_invoice(s.get(iid, "invoice"))
            case "GET", ["invoice_payments"]:
                return self.list_invoice_payments(params)
            case "GET", ["invoice_payments", ipid]:
                return s.get(ipid, "invoice_payment")
            case "GET", ["payment_intents", piid]:
                return self.expanded(s.get(piid, "payment_intent"), params)
            case "GET", ["charges", chid]:
                return s.get(chid, "charge")
            case "GET", ["refunds", reid]:
                return s.get(reid, "refund")
            case "POST", ["credit_notes"]:
                return self.create_credit_note(params)
            case "GET", ["credit_notes"]:
                notes = s.of("credit_note")
                if params.get("invoice"):
                    notes = [n for n in notes if n["invoice"] == params["invoice"]]
                return self.listing(notes, "/v1/credit_notes", params)
            case "GET", ["credit_notes", cnid]:
                return s.get(cnid, "credit_note")
            case "POST", ["credit_notes", cnid, "void"]:
                return self.void_credit_note(s.get(cnid, "credit_note"))
            case "GET", ["events"]:
                events = list(reversed(s.events))
                if params.get("type"):
                    events = [e for e in events if e["type"] == params["type"]]
                return self.listing(events, "/v1/events", params, newest_first=True)
            case "GET", ["events", eid]:
                for event in s.events:
                    if event["id"] == eid:
                        return event
                raise StripeError(404, f"No such event: '{eid}'", code="resource_missing")
        raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")

    def listing(self, items: list[dict[str, Any]], url: str, params: dict[str, Any], newest_first: bool = False):
        if not newest_first:
            # Newest first as Stripe lists; the id breaks ties within one second.
            items = sorted(items, key=lambda o: (o.get("created", 0), o["id"]), reverse=True)
        if params.get("customer"):
            items = [o for o in items if o.get("customer") == params["customer"]]
        if params.get("starting_after"):
            ids = [o["id"] for o in items]
            if params["starting_after"] in ids:
                items = items[ids.index(params["starting_after"]) + 1 :]
        limit = _int(params.get("limit", 10), "limit")
        return {"object": "list", "url": url, "data": items[:limit], "has_more": len(items) > limit}

    def expanded(self, obj: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """``obj`` with the fields named in ``expand[]`` replaced by their objects (a copy; only the few the gateway
        asks for: ``latest_charge`` of a payment intent, ``payments`` of an invoice)."""
        expand = params.get("expand") or []
        if not expand:
            return obj
        out = json.loads(json.dumps(obj))
        for field in expand:
            if field == "payments" and obj["object"] == "invoice":
                payments = [p for p in self.state.of("invoice_payment") if p["invoice"] == obj["id"]]
                out["payments"] = {"object": "list", "data": payments, "has_more": False, "url": "/v1/invoice_payments"}
            elif isinstance(obj.get(field), str):
                out[field] = self.state.objects.get(obj[field], obj[field])
        return out

    def search(self, object_type: str, url: str, params: dict[str, Any]) -> dict[str, Any]:
        match = re.fullmatch(r"metadata\['([^']+)'\]:'([^']*)'", params.get("query", ""))
        if not match:
            raise StripeError(400, "This test server only searches metadata['key']:'value'.")
        key, value = match.groups()
        found = [o for o in self.state.of(object_type) if o["metadata"].get(key) == value]
        return {"object": "search_result", "url": url, "data": found, "has_more": False}

    # --- the clock -----------------------------------------------------------------------------

    def run_clock(self) -> None:
        """What Stripe does by itself as time passes: finalise auto-advancing drafts an hour after their creation
        (an empty one too), and announce open invoices past their due date."""
        now = self.state.now()
        for invoice in self.state.of("invoice"):
            finalizes_at = invoice["automatically_finalizes_at"] if invoice["status"] == "draft" else None
            if finalizes_at and invoice["auto_advance"] and now >= finalizes_at and invoice["total"] >= 0:
                self.finalize(invoice, {})
            if (
                invoice["status"] == "open"
                and invoice["due_date"] is not None
                and now > invoice["due_date"]
                and invoice["id"] not in self.state.overdue_announced
            ):
                self.state.overdue_announced.add(invoice["id"])
                self.state.event("invoice.overdue", invoice)

    # --- customers and tax rates ---------------------------------------------------------------

    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = {
            "id": self.state.new_id("cus"),
            "object": "customer",
            "created": self.state.now(),
            "email": params.get("email"),
            "name": params.get("name"),
            "metadata": _meta(params),
            "livemode": False,
        }
        self.state.objects[customer["id"]] = customer
        self.state.event("customer.created", customer)
        return customer

    def update_customer(self, customer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        for field in ("name", "email"):
            if field in params:
                customer[field] = params[field] or None
        if "metadata" in params:
            customer["metadata"].update(_meta(params))
        self.state.event("customer.updated", customer)
        return customer

    def create_tax_rate(self, params: dict[str, Any]) -> dict[str, Any]:
        if "percentage" not in params or "display_name" not in params:
            raise StripeError(400, "Missing required param: percentage.", code="parameter_missing")
        rate = {
            "id": self.state.new_id("txr"),
            "object": "tax_rate",
            "created": self.state.now(),
            "percentage": float(params["percentage"]),
            "inclusive": params.get("inclusive") == "true",
            "display_name": params["display_name"],
            "country": params.get("country"),
            "active": True,
            "metadata": _meta(params),
        }
        self.state.objects[rate["id"]] = rate
        return rate

    # --- invoices ------------------------------------------------------------------------------

    def create_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = self.state.get(params.get("customer", ""), "customer")
        method = params.get("collection_method", "charge_automatically")
        if method == "send_invoice" and "days_until_due" not in params:
            raise StripeError(400, "Missing days_until_due for send_invoice invoices.", code="parameter_missing")
        now = self.state.now()
        auto_advance = params.get("auto_advance") == "true"
        days_until_due = _int(params["days_until_due"], "days_until_due") if "days_until_due" in params else None
        invoice = {
            "id": self.state.new_id("in"),
            "object": "invoice",
            "created": now,
            "customer": customer["id"],
            "customer_email": customer.get("email"),
            "customer_name": customer.get("name"),
            "collection_method": method,
            "days_until_due": days_until_due,
            # "The number of days from when the invoice is created until it is due" (Stripe's reference).
            "due_date": now + days_until_due * 86400 if days_until_due is not None else None,
            "auto_advance": auto_advance,
            "automatically_finalizes_at": now + AUTO_FINALIZE_SECONDS if auto_advance else None,
            "currency": params.get("currency", "nok"),
            "custom_fields": params.get("custom_fields") or None,
            "description": params.get("description"),
            "footer": params.get("footer"),
            "metadata": _meta(params),
            "number": None,
            "status": "draft",
            "parent": None,
            "lines": {"object": "list", "data": [], "has_more": False, "url": ""},
            "subtotal": 0,
            "total_excluding_tax": 0,
            "total_taxes": [],
            "total": 0,
            "amount_due": 0,
            "amount_paid": 0,
            "amount_overpaid": 0,
            "amount_remaining": 0,
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "status_transitions": {
                "finalized_at": None,
                "paid_at": None,
                "voided_at": None,
                "marked_uncollectible_at": None,
            },
            "livemode": False,
        }
        invoice["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
        self.state.objects[invoice["id"]] = invoice
        self.state.event("invoice.created", invoice)
        return invoice

    def delete_invoice(self, invoice: dict[str, Any]) -> dict[str, Any]:
        if invoice["status"] != "draft":
            raise StripeError(400, "You can only delete draft invoices.", code="invoice_not_editable")
        del self.state.objects[invoice["id"]]
        self.state.event("invoice.deleted", invoice)
        return {"id": invoice["id"], "object": "invoice", "deleted": True}

    def add_lines(self, invoice: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if invoice["status"] != "draft":
            raise StripeError(400, "You can only add lines to a draft invoice.", code="invoice_not_editable")
        for line in params.get("lines") or []:
            amount = _int(line.get("amount"), "lines[amount]")
            taxes = []
            for rate_id in line.get("tax_rates") or []:
                rate = self.state.get(rate_id, "tax_rate")
                tax = _tax_amount(amount, rate["percentage"])
                taxes.append({"amount": tax, "tax_rate_details": {"tax_rate": rate_id}, "taxability_reason": None})
            invoice["lines"]["data"].append(
                {
                    "id": self.state.new_id("il"),
                    "object": "line_item",
                    "amount": amount,
                    "currency": invoice["currency"],
                    "description": line.get("description"),
                    "metadata": _meta(line),
                    "taxes": taxes,
                }
            )
        self._totals(invoice)
        self.state.event("invoice.updated", invoice)
        return invoice

    def _totals(self, invoice: dict[str, Any]) -> None:
        lines = invoice["lines"]["data"]
        subtotal = sum(line["amount"] for line in lines)
        tax = sum(t["amount"] for line in lines for t in line["taxes"])
        invoice.update(
            subtotal=subtotal,
            total_excluding_tax=subtotal,
            total_taxes=[{"amount": tax, "tax_behavior": "exclusive"}] if tax else [],
            total=subtotal + tax,
            amount_due=subtotal + tax,
            amount_remaining=subtotal + tax - invoice["amount_paid"],
        )

    def finalize(self, invoice: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if invoice["status"] != "draft":
            raise StripeError(400, "This invoice is already finalized.", code="invoice_not_editable")
        if invoice["total"] < 0:
            raise StripeError(400, "crm/billing/local_stripe.py does not model invoices with a negative total.")
        now = self.state.now()
        invoice["status"] = "open"
        invoice["number"] = self.state.new_number()
        invoice["status_transitions"]["finalized_at"] = now
        invoice["automatically_finalizes_at"] = None
        invoice["hosted_invoice_url"] = f"{self.hosted_base}/i/{invoice['id']}"
        invoice["invoice_pdf"] = f"https://pay.stripe.test/invoice/{invoice['id']}/pdf"
        if "auto_advance" in params:
            invoice["auto_advance"] = params["auto_advance"] == "true"
        self.state.event("invoice.finalized", invoice)
        if invoice["collection_method"] == "send_invoice" and invoice["auto_advance"]:
            self.state.event("invoice.sent", invoice)  # Stripe emails auto-advancing send_invoice invoices
        return invoice

    def send(self, invoice: dict[str, Any]) -> dict[str, Any]:
        if invoice["status"] == "draft":
            self.finalize(invoice, {})
        if invoice["status"] != "open":
            raise StripeError(400, "You can only send an open invoice.", code="invoice_not_open")
        self.state.event("invoice.sent", invoice)
        return invoice

    def transition(self, invoice, to: str, allowed: set[str], event: str, stamp: str) -> dict[str, Any]:
        if invoice["status"] not in allowed:
            raise StripeError(400, f"You can't do this with a {invoice['status']} invoice.", code="invoice_not_open")
        invoice["status"] = to
        invoice["auto_advance"] = False  # never on a paid, void or uncollectible invoice
        invoice["status_transitions"][stamp] = self.state.now()
        self.state.event(event, invoice)
        return invoice

    # --- payments and refunds ------------------------------------------------------------------

    def pay_invoice(self, invoice: dict[str, Any]) -> dict[str, Any]:
        """The customer pays what is left, through a payment intent; the invoice payment links the two (the only
        link since 2025-03-31.basil)."""
        if invoice["status"] == "paid":
            raise StripeError(400, "Invoice is already paid", code="invoice_already_paid")
        if invoice["status"] not in ("open", "uncollectible"):
            raise StripeError(400, "You can only pay an open invoice.", code="invoice_not_open")
        now = self.state.now()
        amount = invoice["amount_remaining"]
        intent_id, charge_id = self.state.new_id("pi"), self.state.new_id("ch")
        charge = {
            "id": charge_id,
            "object": "charge",
            "created": now,
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": 0,
            "refunded": False,
            "captured": True,
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "payment_intent": intent_id,
            "paid": True,
            "status": "succeeded",
            "livemode": False,
        }
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "created": now,
            "amount": amount,
            "amount_received": amount,
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "latest_charge": charge_id,
            "status": "succeeded",
            "livemode": False,
        }
        payment = {
            "id": self.state.new_id("inpay"),
            "object": "invoice_payment",
            "created": now,
            "amount_paid": amount,
            "amount_requested": amount,
            "currency": invoice["currency"],
            "invoice": invoice["id"],
            "is_default": True,
            "livemode": False,
            "payment": {"type": "payment_intent", "payment_intent": intent_id},
            "status": "paid",
            "status_transitions": {"canceled_at": None, "paid_at": now},
        }
        for obj in (charge, intent, payment):
            self.state.objects[obj["id"]] = obj
        invoice["amount_paid"] += amount
        invoice["amount_remaining"] = 0
        invoice["status"] = "paid"
        invoice["auto_advance"] = False
        invoice["status_transitions"]["paid_at"] = now
        self.state.event("payment_intent.succeeded", intent)
        self.state.event("charge.succeeded", charge)
        self.state.event("invoice_payment.paid", payment)
        self.state.event("invoice.paid", invoice)
        return invoice

    def list_invoice_payments(self, params: dict[str, Any]) -> dict[str, Any]:
        payments = self.state.of("invoice_payment")
        if params.get("invoice"):
            payments = [p for p in payments if p["invoice"] == params["invoice"]]
        wanted = params.get("payment") or {}
        if wanted:
            if wanted.get("type") != "payment_intent" or not wanted.get("payment_intent"):
                raise StripeError(400, "payment[type]=payment_intent and payment[payment_intent] go together.")
            payments = [p for p in payments if p["payment"].get("payment_intent") == wanted["payment_intent"]]
        if params.get("status"):
            payments = [p for p in payments if p["status"] == params["status"]]
        return self.listing(payments, "/v1/invoice_payments", params)

    def refund(self, charge: dict[str, Any], amount: int | None, *, credit_note: str | None = None) -> dict[str, Any]:
        """Refund part or all of a charge (the dashboard, the Refund API or a credit note's ``refund_amount``):
        ``refund.created`` and ``charge.refunded`` follow, as at Stripe."""
        amount = charge["amount"] - charge["amount_refunded"] if amount is None else amount
        if amount <= 0 or charge["amount_refunded"] + amount > charge["amount"]:
            raise StripeError(400, f"Refund amount ({amount}) is greater than unrefunded amount on charge.")
        refund = {
            "id": self.state.new_id("re"),
            "object": "refund",
            "created": self.state.now(),
            "amount": amount,
            "charge": charge["id"],
            "payment_intent": charge["payment_intent"],
            "currency": charge["currency"],
            "metadata": {"credit_note": credit_note} if credit_note else {},
            "status": "succeeded",
        }
        self.state.objects[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self.state.event("refund.created", refund)
        self.state.event("charge.refunded", charge)
        return refund

    def _charges_of(self, invoice: dict[str, Any]) -> list[dict[str, Any]]:
        payments = [p for p in self.state.of("invoice_payment") if p["invoice"] == invoice["id"]]
        intents = [self.state.get(p["payment"]["payment_intent"], "payment_intent") for p in payments]
        return [self.state.get(i["latest_charge"], "charge") for i in intents if i["latest_charge"]]

    # --- credit notes --------------------------------------------------------------------------

    def create_credit_note(self, params: dict[str, Any]) -> dict[str, Any]:
        invoice = self.state.get(params.get("invoice", ""), "invoice")
        if invoice["status"] not in ("open", "paid"):
            raise StripeError(400, "Credit notes need an open or paid invoice.", code="invoice_not_open")
        if "amount" in params:
            amount = _int(params["amount"], "amount")
        else:
            amount = sum(_int(line.get("amount"), "lines[amount]") for line in params.get("lines") or [])
        credited = invoice["pre_payment_credit_notes_amount"] + invoice["post_payment_credit_notes_amount"]
        if amount <= 0 or amount + credited > invoice["total"]:
            raise StripeError(400, "The credit note amount is more than the invoice's remaining amount.")
        # As Stripe: the credit first lowers what is left to pay; the rest (post payment) must be settled as a
        # refund, a customer balance credit or outside Stripe, and those must add up to it.
        pre = min(amount, invoice["amount_remaining"]) if invoice["status"] == "open" else 0
        post = amount - pre
        settled = sum(
            _int(params[name], name)
            for name in ("refund_amount", "credit_amount", "out_of_band_amount")
            if name in params
        )
        if post and settled != post:
            raise StripeError(
                400,
                f"The sum of credit amount, refund amount and out of band amount ({settled}) must equal the credit "
                f"note's post-payment amount ({post}).",
            )
        refund_amount = _int(params["refund_amount"], "refund_amount") if "refund_amount" in params else 0
        charges = [c for c in self._charges_of(invoice) if c["amount"] > c["amount_refunded"]]
        if refund_amount and (not charges or charges[0]["amount"] - charges[0]["amount_refunded"] < refund_amount):
            raise StripeError(400, "The refund amount is more than what can be refunded of the invoice's payment.")
        note_id = self.state.new_id("cn")
        refunds = []
        if refund_amount:
            refund = self.refund(charges[0], refund_amount, credit_note=note_id)
            refunds.append({"amount_refunded": refund_amount, "refund": refund["id"], "type": "refund"})
        note = {
            "id": note_id,
            "object": "credit_note",
            "created": self.state.now(),
            "invoice": invoice["id"],
            "customer": invoice["customer"],
            "amount": amount,
            "currency": invoice["currency"],
            "number": f"{invoice['number']}-CN{len(self.state.of('credit_note')) + 1}",
            "reason": params.get("reason"),
            "memo": params.get("memo"),
            "metadata": _meta(params),
            "status": "issued",
            "type": "post_payment" if post else "pre_payment",
            "pre_payment_amount": pre,
            "post_payment_amount": post,
            "refunds": refunds,
            "out_of_band_amount": _int(params["out_of_band_amount"], "out_of_band_amount")
            if "out_of_band_amount" in params
            else None,
            "voided_at": None,
        }
        self.state.objects[note["id"]] = note
        invoice["post_payment_credit_notes_amount"] += post
        if pre:
            invoice["pre_payment_credit_notes_amount"] += pre
            invoice["amount_remaining"] -= pre
            invoice["amount_due"] -= pre
            if invoice["amount_remaining"] <= 0:
                invoice["status"] = "paid"
                invoice["auto_advance"] = False
                invoice["status_transitions"]["paid_at"] = self.state.now()
                self.state.event("invoice.paid", invoice)
        self.state.event("credit_note.created", note)
        self.state.event("invoice.updated", invoice)
        return note

    def void_credit_note(self, note: dict[str, Any]) -> dict[str, Any]:
        """Void a credit note: its amounts go back on the invoice. Stripe voids only notes without refunds (a refund
        cannot be undone)."""
        if note["status"] == "void":
            raise StripeError(400, "This credit note is already voided.")
        if note["refunds"]:
            raise StripeError(400, "You can't void a credit note that has refunds.")
        invoice = self.state.get(note["invoice"], "invoice")
        if note["pre_payment_amount"] and invoice["status"] != "open":
            raise StripeError(400, "You can only void a pre-payment credit note of an open invoice.")
        note["status"], note["voided_at"] = "void", self.state.now()
        invoice["pre_payment_credit_notes_amount"] -= note["pre_payment_amount"]
        invoice["post_payment_credit_notes_amount"] -= note["post_payment_amount"]
        invoice["amount_remaining"] += note["pre_payment_amount"]
        invoice["amount_due"] += note["pre_payment_amount"]
        self.state.event("credit_note.voided", note)
        self.state.event("invoice.updated", invoice)
        return note


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else keep-alive requests wait ~40 ms for delayed ACKs

    def log_message(self, format, *args):  # quiet
        pass

    def _serve(self, method: str) -> None:
        srv = self.server.owner
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        if url.path.startswith("/i/"):  # the customer's hosted invoice page: a browser, no API key
            return self._hosted_invoice(method, url.path)
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        with srv.lock:
            srv.request_times.append(time.monotonic())
            srv.requests[(method, re.sub(r"/(cus|in|cn|txr|evt|ch|pi|re|inpay)_test\d+", r"/:\1", url.path))] += 1
            srv.versions[self.headers.get("Stripe-Version")] += 1
            number = srv.total_requests()
            if srv.outage and srv.outage[0] <= number < srv.outage[1]:
                if srv.outage[2] == "refuse":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                return self._reply(503, _failure(503), retry_header=True)
            if srv.refusing:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if srv.failures:
                srv.failures -= 1
                return self._reply(
                    srv.failure_status, _failure(srv.failure_status), retry_header=srv.failure_should_retry
                )
            if srv.is_down:
                return self._reply(503, _failure(503), retry_header=True)
            if self.headers.get("Authorization", "") != f"Bearer {srv.api_key}":
                return self._reply(401, StripeError(401, "Invalid API Key provided.", "authentication_error").body())
            version = self.headers.get("Stripe-Version")
            if version != API_VERSION:
                # Stripe would answer in any version; this server knows one, and a client without the pin (or with
                # another) would otherwise be tested against shapes it will not get.
                message = f"crm/billing/local_stripe.py answers only in API version {API_VERSION}, not {version}."
                return self._reply(400, StripeError(400, message).body())
            params = parse_form(parse_qsl(raw if method == "POST" else url.query, keep_blank_values=True))
            if key:
                if key in srv.in_flight:
                    # Stripe: a key in use by a request still running; nothing is saved, a retry may succeed.
                    error = StripeError(
                        409,
                        "There is currently another in-progress request using this Stripe-Idempotency-Key. Please "
                        "try again later.",
                        code="idempotency_key_in_use",
                    )
                    return self._reply(409, error.body())
                stored = srv.app.state.idempotent.get(key)
                if stored is not None:
                    body_seen, status, response = stored
                    if body_seen != f"{url.path}?{raw}":
                        error = StripeError(
                            400,
                            "Keys for idempotent requests can only be used with the same parameters they were "
                            "first used with.",
                            "idempotency_error",
                        )
                        return self._reply(400, error.body())
                    srv.replays += 1
                    return self._reply(status, response, replayed=True, retry_header=False if status >= 500 else None)
                srv.in_flight.add(key)
            delay, srv.delay_next = srv.delay_next, 0.0
            error_after = srv.errors.pop(0) if srv.errors else None
        try:
            if delay:
                time.sleep(delay)  # outside the lock: another request may come meanwhile
            with srv.lock:
                if error_after is not None and not error_after[1]:
                    status, response = error_after[0], _failure(error_after[0])  # the endpoint began, then failed
                else:
                    try:
                        status, response = 200, json.loads(json.dumps(srv.app.handle(method, url.path, params)))
                    except StripeError as exc:
                        status, response = exc.status, exc.body()
                    if error_after is not None:  # done, but the answer is a 5xx
                        status, response = error_after[0], _failure(error_after[0])
                if key and (status < 500 or error_after is not None):
                    # Saved once the endpoint began, 5xx included, and replayed for that key (24 hours at Stripe).
                    srv.app.state.idempotent[key] = (f"{url.path}?{raw}", status, response)
                srv._save_state()
        finally:
            if key:
                with srv.lock:
                    srv.in_flight.discard(key)
        # Stripe says a saved 5xx is not worth retrying under its key (it would be replayed).
        self._reply(status, response, retry_header=(not key) if status >= 500 else None)

    def _reply(
        self, status: int, body: dict[str, Any], *, replayed: bool = False, retry_header: bool | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", f"req_{time.monotonic_ns()}")
        if replayed:
            self.send_header("Idempotent-Replayed", "true")
        if retry_header is not None:
            self.send_header("Stripe-Should-Retry", "true" if retry_header else "false")
        self.end_headers()
        self.wfile.write(payload)

    def _hosted_invoice(self, method: str, path: str) -> None:
        srv = self.server.owner
        match = re.fullmatch(r"/i/([A-Za-z0-9_]+)(/pay)?", path)
        with srv.lock:
            invoice = srv.app.state.objects.get(match[1]) if match else None
            if invoice is None or invoice["object"] != "invoice":
                return self._html(404, hosted_invoice_page(None))
            if match[2]:
                if method != "POST":
                    return self._html(405, hosted_invoice_page(invoice))
                if invoice["status"] in ("open", "uncollectible"):
                    srv.app.pay_invoice(invoice)
                    srv._save_state()
                self.send_response(303)
                self.send_header("Location", f"/i/{invoice['id']}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            page = hosted_invoice_page(invoice)
        return self._html(200, page)

    def _html(self, status: int, page: str) -> None:
        payload = page.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")


def _kroner(ore: int) -> str:
    whole, part = divmod(abs(ore), 100)
    return f"{'-' if ore < 0 else ''}{whole:,}".replace(",", "\u00a0") + f",{part:02d}\u00a0kr"


def hosted_invoice_page(invoice: dict[str, Any] | None) -> str:
    """A minimal stand-in for Stripe's hosted invoice page, clearly marked as test mode."""
    if invoice is None:
        title = "Fant ikke fakturaen"
        body = (
            "<p>Den lokale Stripe-testserveren kjenner ikke denne fakturaen. Den husker fakturaene sine i "
            "<code>local-stripe.json</code> i instansmappen; er filen slettet (eller <code>make clean</code> kjørt), "
            "er de glemt.</p>"
        )
    else:
        title = f"Faktura {html.escape(invoice['number'] or invoice['id'])}"
        rows = "".join(
            f"<tr><td>{html.escape(line['description'] or '')}</td><td class=num>{_kroner(line['amount'])}</td></tr>"
            for line in invoice["lines"]["data"]
        )
        status = {"open": "Ubetalt", "paid": "Betalt", "void": "Annullert", "uncollectible": "Ubetalt (tapsført)"}
        body = (
            f"<p>{html.escape(invoice.get('customer_name') or '')}</p>"
            f"<table>{rows}<tr><th>Å betale</th><th class=num>{_kroner(invoice['amount_remaining'])}</th></tr></table>"
            f"<p>Status: <strong id=status>{status.get(invoice['status'], invoice['status'])}</strong></p>"
        )
        if invoice["status"] in ("open", "uncollectible"):
            body += (
                f'<form method="post" action="/i/{invoice["id"]}/pay">'
                '<button type="submit">Betal (testmodus)</button></form>'
            )
    return (
        '<!doctype html><html lang="nb"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        f"<title>{title} · Stripe testmodus</title><style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}"
        ".test-mode{background:#ffc107;color:#000;padding:.25em .5em;font-weight:bold}"
        "td,th{padding:.25em 1em .25em 0;text-align:left}.num{text-align:right}</style></head><body>"
        '<p class="test-mode">TESTMODUS: den lokale Stripe-testserveren i make run. Ingen penger flyttes.</p>'
        f"<main><h1>{title}</h1>{body}</main></body></html>"
    )


def _failure(status: int) -> dict[str, Any]:
    if status == 429:
        return StripeError(429, "Too many requests.", "invalid_request_error", "rate_limit").body()
    return StripeError(status, "Stripe is unavailable (test server).", "api_error").body()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: StripeServer


class StripeServer:
    """``server = StripeServer().start()``; ``server.url`` is the SDK's api_base."""

    def __init__(
        self,
        api_key: str = "sk_test_crm",
        *,
        webhook_url: str | None = None,
        webhook_secret: str = "",
        hosted_pages: bool = False,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.webhook_url, self.webhook_secret, self.hosted_pages = webhook_url, webhook_secret, hosted_pages
        self.webhooks_delivered = 0
        self.lock = threading.RLock()
        self.app = StripeApp()
        self.state_file = Path(state_file) if state_file is not None else None
        if self.state_file is not None:
            self.app.state = self._load_state(self.state_file)
        self._saved_revision = self.app.state.revision()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.versions: Counter[str | None] = Counter()  # the Stripe-Version headers received
        self.in_flight: set[str] = set()  # idempotency keys of requests still running
        self.delay_next = 0.0
        self.errors: list[tuple[int, bool]] = []  # (status, done) for the next requests that reach an endpoint
        self.request_times: list[float] = []
        self.replays = 0
        self.is_down = False
        self.refusing = False
        self.failures = 0
        self.failure_status = 503
        self.failure_should_retry = True
        self.outage: tuple[int, int, str] | None = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self, port: int = 0) -> StripeServer:
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        if self.hosted_pages:
            self.app.hosted_base = self.url
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="stripe-test-server", daemon=True)
        self._thread.start()
        if self.webhook_url:
            threading.Thread(target=self._deliver_events, name="stripe-test-webhooks", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # --- the state file (make run) -------------------------------------------------------------

    @staticmethod
    def _load_state(path: Path) -> StripeState:
        """The state saved in ``path``; an empty one when there is none, or when it cannot be read (the bad file is
        renamed aside, so that it is not overwritten and can be looked at)."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return StripeState()
        except OSError as exc:
            logger.warning("local Stripe: cannot read %s (%s); starting empty", path, exc)
            return StripeState()
        try:
            return StripeState.from_json(text)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
            with contextlib.suppress(OSError):
                os.replace(path, aside)
            logger.warning(
                "local Stripe: %s is not a state it wrote (%s); kept as %s, starting empty", path, exc, aside
            )
            return StripeState()

    def _save_state(self) -> None:
        """Write the state to ``state_file`` if it changed since the last write (call under the lock): to a temporary
        file first, then renamed over it, so a stop half way leaves the previous state, never half of one."""
        if self.state_file is None or self.app.state.revision() == self._saved_revision:
            return
        temporary = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(self.app.state.as_json(), encoding="utf-8")
            os.replace(temporary, self.state_file)
        except OSError as exc:  # a full disk must not stop billing in make run; the next change tries again
            logger.warning("local Stripe: cannot save its state to %s: %s", self.state_file, exc)
            with contextlib.suppress(OSError):
                temporary.unlink()
            return
        self._saved_revision = self.app.state.revision()

    # --- webhook delivery (make run) ----------------------------------------------------------

    def _deliver_events(self) -> None:
        """POST every recorded event to ``webhook_url`` in order; one the app does not take (not started yet,
        down, an error status) is tried again, with a growing pause as Stripe does, before any later one."""
        failures = 0
        while not self._stopping.is_set():
            with self.lock:
                state = self.app.state
                pending = state.events[state.events_delivered :]
            for event in pending:
                if not self._post_event(event):
                    failures += 1
                    self._stopping.wait(min(30.0, 0.5 * 2**failures))
                    break
                failures = 0
                self.webhooks_delivered += 1
                with self.lock:
                    if self.app.state is not state:  # reset(): a new set of events
                        break
                    # Saved, so that a restart posts only what was not delivered (the app ignores a repeat anyway).
                    state.events_delivered += 1
                    self._save_state()
            else:
                self._stopping.wait(0.2)

    def _post_event(self, event: dict[str, Any]) -> bool:
        payload = json.dumps(event).encode()
        at = int(time.time())
        signature = hmac.new(self.webhook_secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
        request = urllib.request.Request(  # noqa: S310 - the app's own webhook URL
            self.webhook_url or "",
            data=payload,
            method="POST",
            headers={"Content-Type": "application/json", "Stripe-Signature": f"t={at},v1={signature}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError) as exc:
            logger.info("local Stripe: webhook %s (%s) not delivered: %s", event["id"], event["type"], exc)
            return False

    # --- test controls -------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.app = StripeApp(self.app.hosted_base)
            self.requests.clear()
            self.versions.clear()
            self.in_flight.clear()
            self.delay_next = 0.0
            self.errors = []
            self.request_times.clear()
            self.replays = 0
            self.is_down = self.refusing = False
            self.failures = 0
            self.outage = None
            self._save_state()

    def down(self) -> None:
        self.is_down = True

    def up(self) -> None:
        self.is_down = self.refusing = False

    def refuse_connections(self) -> None:
        self.refusing = True

    def outage_after(self, requests: int, lasting: int, mode: str = "503") -> None:
        """Go down once ``requests`` more requests have been served, for the ``lasting`` requests after
        them (``mode`` "503" answers Service Unavailable, "refuse" closes the connection)."""
        with self.lock:
            start = self.total_requests() + requests
            self.outage = (start, start + lasting, mode)

    def fail_next(self, count: int, status: int = 429, *, should_retry: bool = True) -> None:
        """The next ``count`` requests get ``status`` before any endpoint runs (nothing saved under their key), with
        ``Stripe-Should-Retry`` saying ``should_retry``."""
        with self.lock:
            self.failures, self.failure_status, self.failure_should_retry = count, status, should_retry

    def total_requests(self) -> int:
        return sum(self.requests.values())

    def objects(self, object_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return self.app.state.of(object_type)

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.app.state.events if type_ is None or e["type"] == type_]

    def pay(self, invoice_id: str) -> dict[str, Any]:
        """The customer pays the invoice (as through the hosted invoice page)."""
        with self.lock:
            result = self.app.pay_invoice(self.app.state.get(invoice_id, "invoice"))
            self._save_state()
            return result

    def refund(self, invoice_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund ``amount`` (or all that is left) of the invoice's payment, as from Stripe's dashboard."""
        with self.lock:
            [charge] = self.app._charges_of(self.app.state.get(invoice_id, "invoice"))
            result = self.app.refund(charge, amount)
            self._save_state()
            return result

    def credit_note(self, invoice_id: str, amount: int, **params: Any) -> dict[str, Any]:
        """Issue a credit note as from Stripe's dashboard (``refund_amount=...``, ``out_of_band_amount=...``)."""
        with self.lock:
            form = {"invoice": invoice_id, "amount": str(amount), **{k: str(v) for k, v in params.items()}}
            result = self.app.create_credit_note(form)
            self._save_state()
            return result

    def void_credit_note(self, credit_note_id: str) -> dict[str, Any]:
        with self.lock:
            result = self.app.void_credit_note(self.app.state.get(credit_note_id, "credit_note"))
            self._save_state()
            return result

    def delete_invoice(self, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            result = self.app.delete_invoice(self.app.state.get(invoice_id, "invoice"))
            self._save_state()
            return result

    def advance(self, seconds: int) -> None:
        """Move the server's clock on, and let Stripe's own work of that time happen."""
        with self.lock:
            self.app.state.clock_offset += seconds
            self.app.run_clock()
            self._save_state()

    def slow_next(self, seconds: float) -> None:
        """The next request takes ``seconds`` at its endpoint (its idempotency key stays in use meanwhile)."""
        with self.lock:
            self.delay_next = seconds

    def error_next(self, count: int = 1, status: int = 500, *, done: bool) -> None:
        """The next ``count`` requests reach their endpoint and answer ``status``, which is saved under their
        idempotency key and replayed for it; with ``done`` the endpoint did its work anyway."""
        with self.lock:
            self.errors = [(status, done)] * count

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            return self.app.state.get(invoice_id, "invoice")
