"""The gateway over real HTTP: retries with the same idempotency key, and a request rate shared through Redis."""

from __future__ import annotations

import time

import pytest
from flask import current_app

from crm.billing.local_stripe import parse_form
from crm.billing.stripe_gateway import StripeGateway, StripeRefused, StripeUnavailable
from crm.extensions import redis


def _gateway(server, rate: float = 1000, retries: int = 3) -> StripeGateway:
    return StripeGateway(
        api_key="sk_test_crm",
        api_base=server.url,
        api_version=current_app.config["STRIPE_API_VERSION"],
        redis_connection=redis(),
        max_rps=rate,
        retries=retries,
        backoff=0.01,
    )


def test_the_server_parses_stripe_form_encoding():
    parsed = parse_form([("lines[0][amount]", "100"), ("lines[0][tax_rates][0]", "txr_1"), ("metadata[k]", "v")])
    assert parsed == {"lines": [{"amount": "100", "tax_rates": ["txr_1"]}], "metadata": {"k": "v"}}


def test_429_is_retried_with_the_same_idempotency_key_and_a_503_looks_first(app, stripe_server):
    gateway = _gateway(stripe_server)
    stripe_server.fail_next(2, 429)
    first = gateway.create_customer(7, name="A AS", email=None, orgnr=None)
    # A 5xx: Stripe would replay it for the same key, so the gateway asks whether the customer exists (it does).
    stripe_server.fail_next(1, 503)
    again = gateway.create_customer(7, name="A AS", email=None, orgnr=None)
    assert first["id"] == again["id"]
    assert len(stripe_server.objects("customer")) == 1
    assert gateway.stats.retries == 2
    # A 5xx for a customer that does not exist: sent again, under a new key, once.
    stripe_server.fail_next(1, 503)
    gateway.create_customer(8, name="B AS", email=None, orgnr=None)
    assert len(stripe_server.objects("customer")) == 2
    assert gateway.stats.retries == 3 and gateway.stats.rekeyed == 1


def test_a_long_outage_raises_unavailable_and_a_4xx_raises_refused(app, stripe_server):
    gateway = _gateway(stripe_server, retries=2)
    stripe_server.down()
    with pytest.raises(StripeUnavailable):
        gateway.retrieve_invoice("in_missing")
    stripe_server.up()
    with pytest.raises(StripeRefused) as refused:
        gateway.retrieve_invoice("in_missing")
    assert refused.value.status == 404


def test_the_request_rate_is_shared_by_every_gateway(app, stripe_server):
    # Two gateways (two workers) share one bucket of 10 requests per second.
    gateways = [_gateway(stripe_server, rate=10), _gateway(stripe_server, rate=10)]
    started = time.monotonic()
    for n in range(40):
        gateways[n % 2].list_events(limit=1)
    elapsed = time.monotonic() - started
    # 10 tokens at once, then 30 more at 10 per second: about 3 seconds. Two separate buckets would let
    # 20 through at once and 20 per second after: about 1 second.
    assert elapsed >= 2.7
    assert all(g.stats.waited_seconds > 0 for g in gateways), "both waited for the shared bucket"


def test_every_request_asks_for_the_pinned_api_version(app, stripe_server):
    from crm.billing.local_stripe import API_VERSION
    from crm.billing.stripe_gateway import get_gateway

    assert app.config["STRIPE_API_VERSION"] == API_VERSION, "the local server models the version the app pins"
    get_gateway().list_events(limit=1)
    _gateway(stripe_server).list_events(limit=1)
    assert set(stripe_server.versions) == {API_VERSION}
    other = StripeGateway(
        api_key="sk_test_crm", api_base=stripe_server.url, redis_connection=redis(), api_version="2024-06-20"
    )
    with pytest.raises(StripeRefused) as refused:
        other.list_events(limit=1)
    assert refused.value.status == 400 and API_VERSION in refused.value.message


def test_a_saved_500_is_replayed_for_its_key_so_the_gateway_looks_and_retries_under_a_new_key(app, stripe_server):
    import requests

    gateway = _gateway(stripe_server)
    # The endpoint fails with no effect; Stripe saves the 500 under the key and replays it.
    stripe_server.error_next(1, 500, done=False)
    customer = gateway.create_customer(7, name="A AS", email=None, orgnr=None)
    assert [c["id"] for c in stripe_server.objects("customer")] == [customer["id"]]
    assert gateway.stats.rekeyed == 1
    path, body = stripe_server.app.state.idempotent["customer:7"][0].split("?", 1)
    replayed = requests.post(
        f"{stripe_server.url}{path}",
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Bearer sk_test_crm",
            "Idempotency-Key": "customer:7",
            "Stripe-Version": app.config["STRIPE_API_VERSION"],
        },
        timeout=5,
    )
    assert replayed.status_code == 500 and replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.headers["Stripe-Should-Retry"] == "false"

    # The endpoint did its work, then failed: the look-up finds the invoice, nothing is created twice.
    stripe_server.error_next(1, 500, done=True)
    invoice = gateway.create_invoice(
        "invoice:1:2026:membership",
        customer_id=customer["id"],
        days_until_due=30,
        description="Fee",
        custom_fields=[],
        metadata={},
    )
    assert [i["id"] for i in stripe_server.objects("invoice")] == [invoice["id"]]
    gateway.add_lines(invoice["id"], "k:lines", [{"amount": 1000, "description": "Fee"}])
    stripe_server.error_next(1, 502, done=True)
    finalized = gateway.finalize_invoice(invoice["id"], "k:finalize")
    assert finalized["status"] == "open"
    assert len(stripe_server.events("invoice.finalized")) == 1
    assert gateway.stats.rekeyed == 1


def test_a_key_in_use_by_a_running_request_gets_409_and_is_retried(app, stripe_server):
    import threading

    first, second = _gateway(stripe_server, retries=8), _gateway(stripe_server, retries=8)
    second.backoff = 0.05
    results = {}
    stripe_server.slow_next(0.4)
    running = threading.Thread(
        target=lambda: results.setdefault("first", first.create_customer(7, name="A AS", email=None, orgnr=None))
    )
    running.start()
    time.sleep(0.1)
    results["second"] = second.create_customer(7, name="A AS", email=None, orgnr=None)
    running.join()
    assert results["first"]["id"] == results["second"]["id"]
    assert len(stripe_server.objects("customer")) == 1
    assert second.stats.retries >= 1, "the 409 was retried, not taken as a refusal"


def test_stripe_should_retry_false_is_honoured(app, stripe_server):
    gateway = _gateway(stripe_server, retries=3)
    stripe_server.fail_next(1, 503, should_retry=False)
    with pytest.raises(StripeUnavailable):
        gateway.retrieve_customer("cus_missing")
    assert gateway.stats.attempts == 1
    stripe_server.fail_next(1, 400, should_retry=True)  # e.g. a lock timeout
    with pytest.raises(StripeRefused) as refused:
        gateway.retrieve_customer("cus_missing")
    assert refused.value.status == 404, "retried after the 400, then Stripe's real answer"


def _draft(gateway, server, key="invoice:1:2026:membership"):
    customer = gateway.create_customer(1, name="A AS", email="a@example.no", orgnr=None)
    return gateway.create_invoice(
        key, customer_id=customer["id"], days_until_due=30, description="Fee", custom_fields=[], metadata={}
    )


def test_stripe_finalises_only_auto_advancing_drafts_after_an_hour(app, stripe_server):
    gateway = _gateway(stripe_server)
    ours = _draft(gateway, stripe_server)
    with stripe_server.lock:
        theirs = stripe_server.app.create_invoice(
            {
                "customer": ours["customer"],
                "collection_method": "send_invoice",
                "days_until_due": "30",
                "auto_advance": "true",
            }
        )
    stripe_server.advance(59 * 60)
    assert stripe_server.invoice(theirs["id"])["status"] == "draft"
    stripe_server.advance(2 * 60)
    assert stripe_server.invoice(theirs["id"])["status"] == "open", "an empty auto-advancing draft is finalised"
    assert gateway.retrieve_invoice(ours["id"])["status"] == "draft", "ours waits for its lines"
    assert ours["auto_advance"] is False


def test_the_due_date_counts_from_creation_and_an_uncollectible_invoice_can_be_voided(app, stripe_server):
    gateway = _gateway(stripe_server)
    draft = _draft(gateway, stripe_server)
    gateway.add_lines(draft["id"], "k:lines", [{"amount": 1000, "description": "Fee"}])
    stripe_server.advance(3 * 86400)  # the job waited out an outage
    finalized = gateway.finalize_invoice(draft["id"], "k:finalize")
    assert finalized["due_date"] == draft["created"] + 30 * 86400
    gateway.mark_uncollectible(draft["id"], "k:uncollectible")
    assert gateway.void_invoice(draft["id"], "k:void")["status"] == "void"


def test_payments_have_the_pinned_versions_shapes(app, stripe_server):
    gateway = _gateway(stripe_server)
    draft = _draft(gateway, stripe_server)
    gateway.add_lines(draft["id"], "k:lines", [{"amount": 1000, "description": "Fee"}])
    gateway.finalize_invoice(draft["id"], "k:finalize")
    stripe_server.pay(draft["id"])
    invoice = gateway.retrieve_invoice(draft["id"])
    assert "charge" not in invoice and "payment_intent" not in invoice, "removed in 2025-03-31.basil"
    [payment] = gateway.invoice_payments(invoice_id=draft["id"])
    intent = gateway.retrieve_payment_intent(payment["payment"]["payment_intent"])
    assert "invoice" not in intent and "invoice" not in intent["latest_charge"]
    assert intent["latest_charge"]["amount"] == 1000
    assert [p["id"] for p in gateway.invoice_payments(payment_intent_id=intent["id"])] == [payment["id"]]
