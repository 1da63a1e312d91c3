"""gunicorn settings for production: ``gunicorn -c gunicorn.conf.py wsgi:app``.

The app's own settings come from ``crm/config.py``; these only shape the web server.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", str(multiprocessing.cpu_count() * 2 + 1)))
# Threads let a worker serve other requests while one waits on PostgreSQL or Redis.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so that slow leaks never matter.
max_requests = 2000
max_requests_jitter = 200
# Each worker process creates the app (and its database and Redis connections) itself.
preload_app = False
accesslog = "-"
errorlog = "-"
# The TLS-terminating proxy; with CRM_TRUSTED_PROXIES the app reads the client address it forwards.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def _without_server_banner(default_headers):
    def headers(response):
        return [line for line in default_headers(response) if not line.lower().startswith("server:")]

    headers.without_banner = True
    return headers


def post_fork(server, worker):
    """gunicorn names itself in a ``Server:`` header on every response and has no setting to stop it;
    the software in front of the app is nobody's business (security issue 8.6), so each worker
    leaves the header out. (HTTP/2, which adds it separately, needs gunicorn's TLS, which is not used.)"""
    from gunicorn.http import wsgi

    if not getattr(wsgi.Response.default_headers, "without_banner", False):
        wsgi.Response.default_headers = _without_server_banner(wsgi.Response.default_headers)
