"""The only module that imports ``stripe``.

Every call goes through ``StripeGateway._call``, which
- pins the API version (``STRIPE_API_VERSION``), so Stripe answers in the shapes this code reads whatever the SDK's
  own default;
- waits for a token from a request-rate bucket shared by every worker through Redis (``STRIPE_MAX_RPS``);
- retries 429, 409 (another request is using the same idempotency key) and connection errors with exponential
  backoff, sending the same idempotency key each time, so a retried create returns the first answer instead of
  creating a second object, and honours ``Stripe-Should-Retry``;
- on a 5xx to a keyed request asks Stripe whether the object exists after all (the call's ``exists`` look-up): Stripe
  saves a 5xx under its key and replays it for 24 hours, so the same key cannot succeed; only when the object does
  not exist is the request sent again, under a new key;
- turns Stripe's errors into ``StripeUnavailable`` (temporary: retry later) or ``StripeRefused``.

The gateway returns plain dicts (Stripe's JSON), so no other module depends on the SDK's types.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe
from flask import Flask, current_app

logger = logging.getLogger(__name__)

# Redis Lua: a token bucket refilled at ``rate`` per second up to ``capacity`` tokens. Returns 0 when a token
# was taken, else the milliseconds to wait. Redis' own clock keeps several hosts consistent.
_BUCKET_SCRIPT = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then tokens = capacity; at = now end
tokens = math.min(capacity, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', key, math.ceil(capacity / rate * 1000) + 1000)
return wait
"""
BUCKET_KEY = "crm:stripe:bucket"


class StripeGatewayError(Exception):
    """Stripe did not do what was asked; ``message`` is safe to log."""

    temporary = False

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


class StripeUnavailable(StripeGatewayError):
    """Stripe could not be reached or kept answering 429/5xx after the retries: try again later."""

    temporary = True


class StripeRefused(StripeGatewayError):
    """Stripe refused the request (4xx): retrying the same request will not help."""


class WebhookSignatureError(Exception):
    """The webhook's ``Stripe-Signature`` is missing, wrong or too old."""


class RateLimiter:
    def __init__(self, connection: Any, rate: float, capacity: float | None = None) -> None:
        self.connection, self.rate = connection, rate
        # A burst of at most one second's worth (and at least one token).
        self.capacity = max(1.0, capacity if capacity is not None else rate)
        self._script = connection.register_script(_BUCKET_SCRIPT)

    def acquire(self) -> float:
        """Block until a request may go out; returns the seconds waited."""
        waited = 0.0
        while True:
            wait_ms = int(self._script(keys=[BUCKET_KEY], args=[self.rate, self.capacity]))
            if wait_ms <= 0:
                return waited
            time.sleep(wait_ms / 1000)
            waited += wait_ms / 1000


@dataclass
class GatewayStats:
    calls: int = 0
    attempts: int = 0
    retries: int = 0
    rekeyed: int = 0  # 5xx answers after which the object did not exist: sent again under a new key
    waited_seconds: float = 0.0


# An ``exists`` look-up: what Stripe holds for a keyed request that got a 5xx (the created or changed object), or None
# when the request had no effect.
Lookup = Callable[[], dict | None]


def _repeatable() -> None:
    """The ``exists`` of a request whose repetition is harmless (it sets fields to the same values, or at worst
    sends the same email twice): after a 5xx it is simply sent again under a new key."""
    return None


def _should_retry_header(exc: Exception) -> bool | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("stripe-should-retry") or headers.get("Stripe-Should-Retry")
    return {"true": True, "false": False}.get(value or "")


class StripeGateway:
    def __init__(
        self,
        *,
        api_key: str,
        api_base: str,
        api_version: str,
        redis_connection: Any,
        max_rps: float = 20,
        timeout: float = 20,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        http_client = stripe.RequestsClient(timeout=timeout)
        # Never the SDK's own default, which changes with the SDK: the shapes this code reads are the pinned version's.
        self.api_version = api_version
        self.client = stripe.StripeClient(
            api_key or "sk_missing",
            stripe_version=self.api_version,
            base_addresses={"api": api_base},
            max_network_retries=0,  # we retry ourselves, through the rate limiter
            http_client=http_client,
        )
        self.limiter = RateLimiter(redis_connection, max_rps)
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.stats = GatewayStats()

    # --- the one way out ---------------------------------------------------------------------------

    def _call(
        self,
        what: str,
        func: Callable[..., Any],
        *args: Any,
        key: str | None = None,
        exists: Lookup | None = None,
        **params: Any,
    ) -> dict:
        """Send one request, retrying as the module says. A keyed request (a POST) must say in ``exists`` how to find
        out whether Stripe did it after a 5xx."""
        assert key is None or exists is not None, f"{what}: a keyed request needs its exists look-up"
        self.stats.calls += 1
        attempt = 0
        current_key = key
        while True:
            self.stats.waited_seconds += self.limiter.acquire()
            self.stats.attempts += 1
            try:
                options = {"idempotency_key": current_key} if current_key else None
                result = func(*args, params=params or None, options=options)
                return _plain(result)
            except stripe.StripeError as exc:
                status = exc.http_status
                connection_error = isinstance(exc, stripe.APIConnectionError)
                should_retry = _should_retry_header(exc)
                server_error = status is not None and status >= 500
                if not connection_error and not server_error:
                    if should_retry is None:
                        should_retry = status in (409, 429)
                    if not should_retry:
                        code = "idempotency_error" if isinstance(exc, stripe.IdempotencyError) else exc.code
                        raise StripeRefused(_message(exc), code=code, status=status) from exc
                elif server_error and current_key and exists is not None:
                    # Stripe replays this 5xx for the same key: the request can only succeed under a new key, and
                    # only if it had no effect.
                    found = exists()
                    if found is not None:
                        logger.info("stripe %s: %s, but it was done; using that", what, _message(exc))
                        return found
                    current_key = f"{key}:{uuid.uuid4().hex[:12]}"
                    self.stats.rekeyed += 1
                elif server_error and should_retry is False:
                    raise StripeUnavailable(_message(exc), code=exc.code, status=status) from exc
                if attempt >= self.retries:
                    logger.warning("stripe %s gave up after %s attempts: %s", what, attempt + 1, _message(exc))
                    raise StripeUnavailable(_message(exc), code=getattr(exc, "code", None), status=status) from exc
                delay = min(self.max_backoff, self.backoff * 2**attempt)
                logger.info("stripe %s: %s; retry %s in %.2fs", what, _message(exc), attempt + 1, delay)
                attempt += 1
                self.stats.retries += 1
                time.sleep(delay)

    # --- customers and tax rates -------------------------------------------------------------------

    def create_customer(self, organisation_id: int, *, name: str, email: str | None, orgnr: str | None) -> dict:
        params: dict[str, Any] = {"name": name, "metadata": {"organisation_id": str(organisation_id)}}
        if email:
            params["email"] = email
        if orgnr:
            params["metadata"]["orgnr"] = orgnr

        def exists() -> dict | None:
            # Search is eventually consistent (about a minute): a customer created a moment ago may be missed, and a
            # second customer is then made; harmless, as we keep the first one stored.
            query = f"metadata['organisation_id']:'{organisation_id}'"
            found = self._call("customer.search", self.client.v1.customers.search, query=query, limit=1)
            return found["data"][0] if found.get("data") else None

        return self._call(
            "customer.create",
            self.client.v1.customers.create,
            key=f"customer:{organisation_id}",
            exists=exists,
            **params,
        )

    def update_customer(self, customer_id: str, key: str, *, name: str, email: str | None) -> dict:
        """Set the customer's name and email (Stripe sends a ``send_invoice`` invoice to the customer's email)."""
        return self._call(
            "customer.update",
            self.client.v1.customers.update,
            customer_id,
            key=key,
            exists=_repeatable,
            name=name,
            email=email or "",
        )

    def retrieve_customer(self, customer_id: str) -> dict:
        return self._call("customer.retrieve", self.client.v1.customers.retrieve, customer_id)

    def create_tax_rate(self, treatment: str, *, percentage: int, display_name: str) -> dict:
        def exists() -> dict | None:
            rates = self._call("tax_rate.list", self.client.v1.tax_rates.list, active=True, limit=100)
            return next((r for r in rates["data"] if (r.get("metadata") or {}).get("treatment") == treatment), None)

        return self._call(
            "tax_rate.create",
            self.client.v1.tax_rates.create,
            key=f"tax_rate:{treatment}",
            exists=exists,
            percentage=percentage,
            display_name=display_name,
            inclusive=False,
            country="NO",
            metadata={"treatment": treatment},
        )

    # --- invoices ----------------------------------------------------------------------------------

    def create_invoice(
        self,
        key: str,
        *,
        customer_id: str,
        days_until_due: int,
        description: str,
        custom_fields: list[dict[str, str]],
        metadata: dict[str, str],
    ) -> dict:
        """A draft ``send_invoice`` invoice; ``key`` (``invoice:<membership>:<year>:<kind>``) makes it unique.
        ``auto_advance`` is off: Stripe would otherwise finalise (and send) the draft by itself about an hour after
        creating it, even one still without its lines while our job waits out an outage. ``finalize_invoice`` and
        ``send_invoice`` advance it."""
        return self._call(
            "invoice.create",
            self.client.v1.invoices.create,
            key=key,
            exists=lambda: self._customer_invoice(key, customer_id),
            customer=customer_id,
            collection_method="send_invoice",
            days_until_due=days_until_due,
            currency="nok",
            auto_advance=False,
            pending_invoice_items_behavior="exclude",
            description=description,
            custom_fields=custom_fields,
            metadata={**metadata, "crm_key": key},
        )

    def find_invoice(self, key: str) -> dict | None:
        """The invoice created with ``key`` (through its metadata), for retries after Stripe forgot the key (24 hours
        on: search is eventually consistent, which a day's wait makes moot)."""
        found = self._call(
            "invoice.search", self.client.v1.invoices.search, query=f"metadata['crm_key']:'{key}'", limit=1
        )
        return found["data"][0] if found.get("data") else None

    def _customer_invoice(self, key: str, customer_id: str) -> dict | None:
        """The customer's invoice created with ``key``, after a 5xx a moment ago: listing, unlike search, sees it at
        once."""
        starting_after = None
        while True:
            params: dict[str, Any] = {"customer": customer_id, "limit": 100}
            if starting_after:
                params["starting_after"] = starting_after
            page = self._call("invoice.list", self.client.v1.invoices.list, **params)
            for invoice in page["data"]:
                if (invoice.get("metadata") or {}).get("crm_key") == key:
                    return invoice
            if not page.get("has_more") or not page["data"]:
                return None
            starting_after = page["data"][-1]["id"]

    def _invoice_if(self, invoice_id: str, done: Callable[[dict], bool]) -> Lookup:
        def exists() -> dict | None:
            invoice = self.retrieve_invoice(invoice_id)
            return invoice if done(invoice) else None

        return exists

    def add_lines(self, invoice_id: str, key: str, lines: list[dict[str, Any]]) -> dict:
        """``lines``: ``{"amount": øre, "description": str, "tax_rates": [ids]}``, added in one request (all or
        none)."""
        return self._call(
            "invoice.add_lines",
            self.client.v1.invoices.add_lines,
            invoice_id,
            key=key,
            exists=self._invoice_if(invoice_id, lambda inv: bool((inv.get("lines") or {}).get("data"))),
            lines=lines,
        )

    def finalize_invoice(self, invoice_id: str, key: str) -> dict:
        """Finalise, keeping ``auto_advance`` off; whether finalising alone emails a ``send_invoice`` invoice is not
        documented, so ``send_invoice`` follows."""
        return self._call(
            "invoice.finalize",
            self.client.v1.invoices.finalize_invoice,
            invoice_id,
            key=key,
            exists=self._invoice_if(invoice_id, lambda inv: inv.get("status") != "draft"),
            auto_advance=False,
        )

    def send_invoice(self, invoice_id: str, key: str) -> dict:
        """Email the finalised invoice to the customer (sending it twice after a 5xx beats never sending it)."""
        return self._call("invoice.send", self.client.v1.invoices.send_invoice, invoice_id, key=key, exists=_repeatable)

    def void_invoice(self, invoice_id: str, key: str) -> dict:
        return self._call(
            "invoice.void",
            self.client.v1.invoices.void_invoice,
            invoice_id,
            key=key,
            exists=self._invoice_if(invoice_id, lambda inv: inv.get("status") == "void"),
        )

    def mark_uncollectible(self, invoice_id: str, key: str) -> dict:
        return self._call(
            "invoice.uncollectible",
            self.client.v1.invoices.mark_uncollectible,
            invoice_id,
            key=key,
            exists=self._invoice_if(invoice_id, lambda inv: inv.get("status") == "uncollectible"),
        )

    def retrieve_invoice(self, invoice_id: str) -> dict:
        return self._call("invoice.retrieve", self.client.v1.invoices.retrieve, invoice_id)

    def list_invoices(self, *, limit: int = 100, starting_after: str | None = None) -> dict:
        params: dict[str, Any] = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        return self._call("invoice.list", self.client.v1.invoices.list, **params)

    # --- payments and refunds ----------------------------------------------------------------------

    def invoice_payments(self, *, invoice_id: str | None = None, payment_intent_id: str | None = None) -> list[dict]:
        """The invoice payments of an invoice, or those made by a payment intent (since API version
        2025-03-31.basil the only link between an invoice and its payments: ``invoice.charge`` and
        ``charge.invoice`` are gone)."""
        params: dict[str, Any] = {"limit": 100}
        if invoice_id:
            params["invoice"] = invoice_id
        if payment_intent_id:
            params["payment"] = {"type": "payment_intent", "payment_intent": payment_intent_id}
        found: list[dict] = []
        while True:
            page = self._call("invoice_payment.list", self.client.v1.invoice_payments.list, **params)
            found.extend(page["data"])
            if not page.get("has_more") or not page["data"]:
                return found
            params["starting_after"] = page["data"][-1]["id"]

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict:
        return self._call(
            "payment_intent.retrieve",
            self.client.v1.payment_intents.retrieve,
            payment_intent_id,
            expand=["latest_charge"],
        )

    def retrieve_credit_note(self, credit_note_id: str) -> dict:
        return self._call("credit_note.retrieve", self.client.v1.credit_notes.retrieve, credit_note_id)

    def create_credit_note(self, invoice_id: str, key: str, *, amount: int, memo: str, out_of_band: int = 0) -> dict:
        """``out_of_band``: the part of ``amount`` beyond what is left to pay, which Stripe requires to be
        settled somehow; we record it as settled outside Stripe (paid back by bank transfer). The note carries
        ``key`` in its metadata, so it can be found after a 5xx and its webhook events told from notes made in
        Stripe's dashboard."""
        params: dict[str, Any] = {"invoice": invoice_id, "amount": amount, "memo": memo[:500]}
        params["metadata"] = {"crm_key": key}
        if out_of_band:
            params["out_of_band_amount"] = out_of_band

        def exists() -> dict | None:
            notes = self._call("credit_note.list", self.client.v1.credit_notes.list, invoice=invoice_id, limit=100)
            return next((n for n in notes["data"] if (n.get("metadata") or {}).get("crm_key") == key), None)

        return self._call("credit_note.create", self.client.v1.credit_notes.create, key=key, exists=exists, **params)

    def list_events(self, *, limit: int = 100, starting_after: str | None = None, type: str | None = None) -> dict:
        params: dict[str, Any] = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        if type:
            params["type"] = type
        return self._call("event.list", self.client.v1.events.list, **params)


def _plain(obj: Any) -> dict:
    """Stripe's JSON of an SDK object, nested objects included. ``str()`` is that JSON in every SDK version this
    project allows; ``to_dict()`` is not (12.x: shallow and deprecated; 13+: recursive)."""
    return json.loads(str(obj))


def _message(exc: Exception) -> str:
    return getattr(exc, "user_message", None) or str(exc) or exc.__class__.__name__


def verify_webhook(payload: bytes, signature: str | None, secret: str, tolerance: int = 300) -> dict[str, Any]:
    """The event in ``payload`` if ``signature`` (``t=...,v1=...``) is Stripe's HMAC-SHA256 of it made
    with ``secret`` within ``tolerance`` seconds; else ``WebhookSignatureError``."""
    if not signature:
        raise WebhookSignatureError("missing Stripe-Signature header")
    if not secret:
        raise WebhookSignatureError("no webhook secret configured")
    try:
        stripe.Webhook.construct_event(payload, signature, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        raise WebhookSignatureError(str(exc)) from None
    except ValueError as exc:
        raise WebhookSignatureError(f"invalid payload: {exc}") from None
    return json.loads(payload)  # verified; the SDK's event object would only be turned back into this


def is_test_mode(config: Any) -> bool:
    """Stripe runs in test mode: a test key, or a server other than Stripe's (make run's local one)."""
    return config["STRIPE_SECRET_KEY"].startswith("sk_test_") or config["STRIPE_API_BASE"] != "https://api.stripe.com"


def get_gateway(app: Flask | None = None) -> StripeGateway:
    """The process's gateway for the app (one HTTP session, one shared rate limit)."""
    from crm.extensions import redis

    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    config = app.config
    settings = (
        config["STRIPE_SECRET_KEY"],
        config["STRIPE_API_BASE"],
        config["STRIPE_MAX_RPS"],
        config["STRIPE_TIMEOUT_SECONDS"],
        config.get("STRIPE_RETRIES", 4),
        config.get("STRIPE_RETRY_BACKOFF", 0.5),
        config["STRIPE_API_VERSION"],
    )
    cached = app.extensions.get("crm_stripe_gateway")
    if cached is not None and cached[0] == settings:
        return cached[1]
    gateway = StripeGateway(
        api_key=settings[0],
        api_base=settings[1],
        redis_connection=redis(),
        max_rps=settings[2],
        timeout=settings[3],
        retries=settings[4],
        backoff=settings[5],
        api_version=settings[6],
    )
    app.extensions["crm_stripe_gateway"] = (settings, gateway)
    return gateway
