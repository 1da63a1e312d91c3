"""Billing tests talk to crm/billing/local_stripe.py through the real stripe SDK over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import date

import pytest

from crm.billing.local_stripe import StripeServer
from crm.extensions import db

YEAR = 2026


@pytest.fixture(scope="session")
def _stripe_server_instance():
    server = StripeServer(api_key="sk_test_crm").start()
    yield server
    server.stop()


@pytest.fixture
def stripe_server(app, _stripe_server_instance, monkeypatch):
    """A fresh, running Stripe test server that the app's gateway talks to during the test."""
    server = _stripe_server_instance
    server.reset()
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", server.url)
    yield server
    server.reset()


def make_billable(*, year: int = YEAR, status=None, turnover: int = 40_000_000, **overrides):
    """An active member (since before ``year``) with an invoice address, and the example fee schedules."""
    from crm.members.fees import seed_fee_schedules
    from crm.members.models import MembershipStatus
    from tests.factories import make_organisation

    seed_fee_schedules(year)
    values = {"invoice_email": "faktura@example.no", "annual_turnover_nok": turnover}
    values.update(overrides)
    organisation = make_organisation(status=status or MembershipStatus.ACTIVE, **values)
    organisation.membership.start_on = date(year - 2, 3, 1)
    db.session.flush()
    return organisation


def sign(payload: bytes, *, secret: str = "whsec_test_crm", at: int | None = None) -> str:
    timestamp = int(time.time()) if at is None else at
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def deliver(client, event: dict, **sign_options):
    """POST ``event`` to the webhook as Stripe does: raw JSON body, ``Stripe-Signature`` header."""
    payload = json.dumps(event).encode()
    return client.post(
        "/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": sign(payload, **sign_options), "Content-Type": "application/json"},
    )
