"""Flask extension singletons. Imports nothing from ``crm`` so every feature can import it."""

from __future__ import annotations

import time

from flask import request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
mail = Mail()
csrf = CSRFProtect()
babel = Babel()


def _client_ip() -> str:
    return get_remote_address() or request.remote_addr or "unknown"


# Storage is configured in create_app once the Redis URL is known (the embedded server's
# socket path is only known at run time).
limiter = Limiter(key_func=_client_ip, default_limits=[], strategy="fixed-window")


def minutes_until_retry() -> int:
    """Whole minutes, rounded up (at least 1), until the limit this request hit lets the next attempt through."""
    limit = limiter.current_limit
    seconds = limit.reset_at - time.time() if limit is not None else 60
    return max(1, -(-int(seconds) // 60))


class RedisHolder:
    """Holds the process's Redis connection; set by ``create_app``."""

    def __init__(self) -> None:
        self.connection = None
        self.url: str = ""

    def __call__(self):
        if self.connection is None:
            raise RuntimeError("Redis is not initialised; call create_app() first")
        return self.connection


redis = RedisHolder()
