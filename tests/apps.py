"""A second, differently configured app inside the test process.

``create_app`` points process-wide singletons (the Redis holder, Flask-Limiter's storage) at the
new app's services, and the suite binds ``db.session`` to the running test's connection;
``other_app`` gives the new app a plain session and puts everything back afterwards.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from crm import create_app
from crm.config import TestingConfig
from crm.extensions import db, limiter, redis


@contextmanager
def other_app(**settings: Any) -> Iterator[Flask]:
    """An app built from ``TestingConfig`` with ``settings`` on top; it shares the suite's Redis unless told."""
    saved = (redis.connection, redis.url, limiter._storage, limiter._limiter)
    test_session = db.session
    with tempfile.TemporaryDirectory(prefix="crm-other-app-") as instance:
        values = {"INSTANCE_PATH": instance, "REDIS_URL": redis.url, "EMBEDDED_REDIS_PATH": f"{instance}/redis.db"}
        values.update(settings)
        app = create_app(type("OtherAppConfig", (TestingConfig,), values))
        db.session = db._make_scoped_session({})
        try:
            yield app
        finally:
            db.session.remove()
            db.session = test_session
            with app.app_context():
                db.engine.dispose()
            if redis.connection is not saved[0]:
                redis.connection.close()
            redis.connection, redis.url, limiter._storage, limiter._limiter = saved


def closed_port() -> int:
    """A local TCP port on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
