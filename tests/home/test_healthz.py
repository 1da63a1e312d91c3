"""``GET /healthz``: 200 when the database and Redis answer, 503 when either does not."""

from __future__ import annotations

import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from crm.extensions import redis
from tests.apps import free_port, other_app


def test_healthz_is_200_when_both_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "redis": "ok"}
    assert response.headers["Content-Type"] == "application/json"


def test_healthz_is_503_when_the_database_does_not_answer():
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/crm"
    with other_app(SQLALCHEMY_DATABASE_URI=unreachable) as app:
        response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["database"] == "error: OperationalError"
    assert response.json["redis"] == "ok"


def test_healthz_is_503_when_redis_does_not_answer(client, monkeypatch):
    # The process's Redis connection points at a port where nothing listens.
    dead = redis_lib.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(redis, "connection", dead)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["database"] == "ok"
    assert response.json["redis"] == "error: ConnectionError"
