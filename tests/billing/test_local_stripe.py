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


def _get(server: StripeServer, path: str) -> dict:
    request = urllib.request.Request(
        server.url + path, headers={"Authorization": f"Bearer {KEY}", "Stripe-Version": API_VERSION}
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


def _idempotent_api(server: StripeServer, path: str, data: str, key: str) -> tuple[dict, bool]:
    request = urllib.request.Request(
        server.url + path,
        data=data.encode(),
        method="POST",
        headers={"Authorization": f"Bearer {KEY}", "Stripe-Version": API_VERSION, "Idempotency-Key": key},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read()), response.headers.get("Idempotent-Replayed") == "true"


def _number(stripe_id: str) -> int:
    return int(stripe_id.rsplit("_test", 1)[1])


def test_a_server_restarted_on_its_state_file_continues_where_the_last_one_stopped(tmp_path, receiver):
    state_file = tmp_path / "local-stripe.json"
    first = StripeServer(KEY, webhook_url=receiver.url, webhook_secret=SECRET, state_file=state_file).start()
    try:
        invoice = _open_invoice(first)
        customer, replayed = _idempotent_api(first, "/v1/customers", "name=Andre+AS", "customer-andre")
        assert not replayed
        first.advance(86_400)
        before = [event["id"] for event in first.events()]
        _wait_for(lambda: len(receiver.received) == len(before))  # all delivered (after one refused post)
        _wait_for(lambda: json.loads(state_file.read_text())["events_delivered"] == len(before))
        ids_before = {*(o["id"] for o in first.app.state.objects.values()), *before}
        clock_before = first.app.state.now()
    finally:
        first.stop()

    second = StripeServer(KEY, webhook_url=receiver.url, webhook_secret=SECRET, state_file=state_file).start()
    try:
        voided = _api(second, f"/v1/invoices/{invoice['id']}/void")
        fetched = _get(second, f"/v1/invoices/{invoice['id']}")
        assert (fetched["id"], fetched["number"], fetched["status"]) == (invoice["id"], invoice["number"], "void")
        assert voided["status"] == "void"
        assert _idempotent_api(second, "/v1/customers", "name=Andre+AS", "customer-andre") == (customer, True)
        assert second.app.state.now() - clock_before in (0, 1, 2)  # the clock's offset came along

        new_invoice = _open_invoice(second)
        assert min(_number(new_invoice["id"]), _number(new_invoice["customer"])) > max(map(_number, ids_before))
        assert new_invoice["number"] > invoice["number"]

        after = [event["id"] for event in second.events()]
        assert after[: len(before)] == before and "invoice.voided" in {e["type"] for e in second.events()}
        _wait_for(lambda: len(receiver.received) >= len(after))
        time.sleep(0.5)  # time enough for a repeat to arrive
        posted = [json.loads(body)["id"] for body, _ in receiver.received]
        assert posted == after  # the ones delivered before the restart once, the ones after it too
    finally:
        second.stop()
    assert [p.name for p in tmp_path.iterdir()] == ["local-stripe.json"]  # no temporary files left behind


def test_events_not_delivered_before_a_restart_are_delivered_after_it(tmp_path, receiver):
    state_file = tmp_path / "local-stripe.json"
    receiver.refuse = 0
    offline = StripeServer(KEY, state_file=state_file).start()  # nothing is posted: the app is "down"
    try:
        _open_invoice(offline)
        recorded = [event["id"] for event in offline.events()]
    finally:
        offline.stop()

    server = StripeServer(KEY, webhook_url=receiver.url, webhook_secret=SECRET, state_file=state_file).start()
    try:
        _wait_for(lambda: len(receiver.received) == len(recorded))
        assert [verify_webhook(body, signature, SECRET)["id"] for body, signature in receiver.received] == recorded
    finally:
        server.stop()


def test_an_unreadable_state_file_is_kept_aside_and_the_server_starts_empty(tmp_path, caplog):
    state_file = tmp_path / "local-stripe.json"
    state_file.write_text('{"format": 1, "objects": {"cus_test')
    server = StripeServer(KEY, state_file=state_file).start()
    try:
        assert server.objects("customer") == []
        customer = _api(server, "/v1/customers", "name=Bedrift+AS")
        assert customer["id"] == "cus_test00000001"
    finally:
        server.stop()
    [aside] = tmp_path.glob("local-stripe.json.unreadable-*")
    assert aside.read_text() == '{"format": 1, "objects": {"cus_test'
    assert "starting empty" in caplog.text and aside.name in caplog.text
    assert StripeServer(KEY, state_file=state_file).objects("customer") == [customer]  # the new state was saved
