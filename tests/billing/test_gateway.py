"""The gateway over real HTTP: retries with the same idempotency key, and a request rate shared through Redis."""

from __future__ import annotations

import time

import pytest

from crm.billing.local_stripe import parse_form
from crm.billing.stripe_gateway import StripeGateway, StripeRefused, StripeUnavailable
from crm.extensions import redis


def _gateway(server, rate: float = 1000, retries: int = 3) -> StripeGateway:
    return StripeGateway(
        api_key="sk_test_crm",
        api_base=server.url,
        redis_connection=redis(),
        max_rps=rate,
        retries=retries,
        backoff=0.01,
    )


def test_the_server_parses_stripe_form_encoding():
    parsed = parse_form([("lines[0][amount]", "100"), ("lines[0][tax_rates][0]", "txr_1"), ("metadata[k]", "v")])
    assert parsed == {"lines": [{"amount": "100", "tax_rates": ["txr_1"]}], "metadata": {"k": "v"}}


def test_429_and_503_are_retried_with_the_same_idempotency_key(app, stripe_server):
    gateway = _gateway(stripe_server)
    stripe_server.fail_next(2, 429)
    first = gateway.create_customer(7, name="A AS", email=None, orgnr=None)
    stripe_server.fail_next(1, 503)
    again = gateway.create_customer(7, name="A AS", email=None, orgnr=None)
    assert first["id"] == again["id"]
    assert len(stripe_server.objects("customer")) == 1
    assert gateway.stats.retries == 3


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
