"""Production as documented in the README: gunicorn with gunicorn.conf.py, behind a reverse proxy."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from flask import request

from crm.auth.access import public
from crm.redis_setup import start_embedded_redis, stop_embedded_redis
from tests.apps import ROOT, app_process_env, free_port, other_app


def _client_address_route(app):
    app.add_url_rule("/_client", "client_address", public(lambda: f"{request.remote_addr} {request.scheme}"))


def test_behind_a_trusted_proxy_the_app_sees_the_clients_address_and_scheme():
    with other_app(TRUSTED_PROXY_COUNT=1) as app:
        _client_address_route(app)
        response = app.test_client().get(
            "/_client",
            headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
            environ_base={"REMOTE_ADDR": "10.0.0.2"},
        )
    assert response.text == "203.0.113.7 https"


def test_without_trusted_proxies_forwarded_headers_are_ignored():
    # Otherwise any client could pick its own address and dodge the login rate limit.
    with other_app(TRUSTED_PROXY_COUNT=0) as app:
        _client_address_route(app)
        response = app.test_client().get(
            "/_client", headers={"X-Forwarded-For": "203.0.113.7"}, environ_base={"REMOTE_ADDR": "10.0.0.2"}
        )
    assert response.text == "10.0.0.2 http"


@pytest.fixture
def production_env(tmp_path):
    redis_path = str(tmp_path / "redis.db")
    port = free_port()
    env = app_process_env(
        tmp_path,
        CRM_ENV="production",
        CRM_REQUIRE_STAFF_MFA="1",
        SECRET_KEY="p" * 48,
        DATABASE_URL=f"sqlite:///{tmp_path / 'crm.sqlite'}",
        REDIS_URL=start_embedded_redis(redis_path),
        MAIL_SERVER="127.0.0.1",
        MAIL_DEFAULT_SENDER="Etisk handel Norge <post@etiskhandel.example>",
        STRIPE_SECRET_KEY="sk_test_deployment",
        STRIPE_WEBHOOK_SECRET="whsec_deployment",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
    )
    yield env, f"http://127.0.0.1:{port}/"
    stop_embedded_redis(redis_path, wait=False)


def gunicorn(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_gunicorn_serves_the_production_configuration(production_env):
    env, url = production_env
    server = gunicorn(env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as response:
                    status, headers = response.status, response.headers
                    break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.2)
        assert status == 200
        assert headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        server.stderr.close()


def test_gunicorn_names_no_server_software_or_version(production_env):
    env, url = production_env
    server = gunicorn(env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as response:
                    healthz = response.headers
                    break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.2)
        with urllib.request.urlopen(url + "static/js/app.js", timeout=5) as response:
            static = response.headers
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url + "no-such-page", timeout=5)
        missing.value.close()
        assert missing.value.code == 404
        for headers in (healthz, static, missing.value.headers):
            assert "Server" not in headers, headers.get("Server")
            assert "gunicorn" not in str(headers).lower() and "werkzeug" not in str(headers).lower()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        server.stderr.close()


def test_gunicorn_refuses_to_start_an_incomplete_production_configuration(production_env):
    env, _ = production_env
    del env["SECRET_KEY"]
    server = gunicorn(env)
    try:
        assert server.wait(timeout=60) != 0
        assert "Production configuration is missing: SECRET_KEY" in server.stderr.read()
    finally:
        server.stderr.close()
