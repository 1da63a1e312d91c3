"""What ``make run`` adds to the local Stripe server (opt-in): signed webhook delivery and the hosted invoice page."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crm.billing.local_stripe import API_VERSION, StripeServer
from crm.billing.stripe_gateway import verify_webhook

KEY, SECRET = "sk_test_local", "whsec_local"


class Receiver(ThreadingHTTPServer):
    """A stand-in for the app's /stripe/webhook that refuses the first ``refuse`` posts with a 503."""

    def __init__(self, refuse: int = 0) -> None:
        self.received: list[tuple[bytes, str]] = []
        self.refuse = refuse
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.refuse:
                    receiver.refuse -= 1
                    self.send_response(503)
                else:
                    receiver.received.append((body, self.headers.get("Stripe-Signature", "")))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/stripe/webhook"


def _api(server: StripeServer, path: str, data: str = "") -> dict:
    request = urllib.request.Request(
        server.url + path,
        data=data.encode(),
        method="POST",
        headers={"Authorization": f"Bearer {KEY}", "Stripe-Version": API_VERSION},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.05)


@pytest.fixture
def receiver():
    server = Receiver(refuse=1)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def local_stripe(receiver):
    server = StripeServer(KEY, webhook_url=receiver.url, webhook_secret=SECRET, hosted_pages=True).start()
    yield server
    server.stop()


def _open_invoice(server: StripeServer) -> dict:
    customer = _api(server, "/v1/customers", "name=Bedrift+AS&email=faktura%40example.no")
    invoice = _api(
        server, "/v1/invoices", f"customer={customer['id']}&collection_method=send_invoice&days_until_due=30"
    )
    _api(server, f"/v1/invoices/{invoice['id']}/add_lines", "lines[0][amount]=770000&lines[0][description]=Kontingent")
    return _api(server, f"/v1/invoices/{invoice['id']}/finalize")


def test_every_event_is_posted_in_order_signed_with_the_webhook_secret_and_retried(local_stripe, receiver):
    _open_invoice(local_stripe)
    recorded = [event["id"] for event in local_stripe.events()]
    _wait_for(lambda: len(receiver.received) == len(recorded))  # the first post was refused with a 503

    delivered = [verify_webhook(body, signature, SECRET) for body, signature in receiver.received]
    assert [event["id"] for event in delivered] == recorded
    assert delivered[-1]["type"] == "invoice.finalized"


def test_the_hosted_invoice_page_is_marked_as_test_mode_and_its_button_pays_the_invoice(local_stripe, receiver):
    invoice = _open_invoice(local_stripe)
    assert invoice["hosted_invoice_url"] == f"{local_stripe.url}/i/{invoice['id']}"
    with urllib.request.urlopen(invoice["hosted_invoice_url"], timeout=5) as response:
        page = response.read().decode()
    assert "TESTMODUS" in page
    assert "7\u00a0700,00\u00a0kr" in page
    assert f'action="/i/{invoice["id"]}/pay"' in page

    request = urllib.request.Request(invoice["hosted_invoice_url"] + "/pay", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:  # follows the 303 back to the page
        page = response.read().decode()
    assert "Betalt" in page
    assert "/pay" not in page
    assert local_stripe.invoice(invoice["id"])["status"] == "paid"
    _wait_for(lambda: any(json.loads(body)["type"] == "invoice.paid" for body, _ in receiver.received))


def test_without_the_options_nothing_is_posted_and_the_hosted_url_is_stripes_shape():
    server = StripeServer(KEY).start()
    try:
        invoice = _open_invoice(server)
        assert invoice["hosted_invoice_url"].startswith("https://invoice.stripe.test/i/")
        assert server.webhooks_delivered == 0
    finally:
        server.stop()
