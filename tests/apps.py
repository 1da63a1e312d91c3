"""A second, differently configured app inside the test process.

``create_app`` points process-wide singletons (the Redis holder, Flask-Limiter's storage) at the
new app's services, and the suite binds ``db.session`` to the running test's connection;
``other_app`` gives the new app a plain session and puts everything back afterwards.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


def free_port() -> int:
    """A local TCP port on which nothing listens (for a server to start on, or to fail to connect to)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ROOT = Path(__file__).resolve().parent.parent
# Settings a developer's shell may hold that must not leak into an app started by a test.
_APP_VARIABLES = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "FLASK_DEBUG", "FLASK_APP", "PORT", "MAIL_SERVER")


def app_process_env(instance: Path, **settings: str) -> dict[str, str]:
    """The environment for ``flask ...`` / ``python -m crm.devserver`` run by a test: development
    configuration, its own instance folder (SQLite and embedded Redis there), ``settings`` on top."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _APP_VARIABLES and not name.startswith(("CRM_", "TEST_", "MAIL_"))
    }
    env.update(
        CRM_ENV="development",
        CRM_INSTANCE_PATH=str(instance),
        CRM_REQUIRE_STAFF_MFA="0",
        FLASK_APP=str(ROOT / "wsgi.py"),
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


def flask_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", *args]
