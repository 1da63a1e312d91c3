"""The Etisk handel Norge CRM: ``create_app`` wires configuration, extensions and features."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from flask import Flask

from crm.config import Config, config_from_environment

# Features in dependency order; each may offer views.bp, views.init_app(app) and jobs.py.
FEATURES = ("home", "audit", "auth", "mail", "members", "billing", "advisory")


def create_app(config: type[Config] | None = None) -> Flask:
    config = config or config_from_environment()
    config.validate()
    app = Flask(
        __name__,
        instance_path=config.INSTANCE_PATH,
        template_folder="../templates",
        static_folder="../static",
    )
    app.config.from_object(config)
    if app.config["TRUSTED_PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic announces each of its plugins at INFO whenever a command loads them (every `flask ...` run).
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from crm.request_args import BoundedIntegerConverter

    app.url_map.converters["int"] = BoundedIntegerConverter  # before any route is added
    register_extensions(app)
    register_features(app)
    from crm.errors import register_error_handlers
    from crm.security import register_security

    register_error_handlers(app)
    register_security(app)
    from crm.cli import register_cli

    register_cli(app)
    return app


def register_extensions(app: Flask) -> None:
    from crm.extensions import babel, csrf, db, limiter, login_manager, mail, migrate, redis
    from crm.i18n import compile_catalogs, select_locale, select_timezone
    from crm.redis_setup import connect_redis, limiter_storage_uri, redis_options

    try:
        compile_catalogs(Path(app.root_path) / "translations")
    except OSError:
        app.logger.warning("Could not compile translation catalogs; run `make translations`")
    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"), render_as_batch=True)
    login_manager.init_app(app)
    mail.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    with app.app_context():
        _configure_engine(db.engine)
    redis.connection, redis.url = connect_redis(app.config["REDIS_URL"], app.config["EMBEDDED_REDIS_PATH"])
    app.config["RATELIMIT_STORAGE_URI"] = limiter_storage_uri(redis.url)
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", redis_options())
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "crm-limiter")
    # Redis down must not take login and the public application with it: the same limits are then counted in
    # this process's memory (Flask-Limiter checks Redis again with a growing pause and switches back), and a
    # storage error in the middle of a request is logged rather than turned into a 500.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter.init_app(app)
    from crm import storage

    storage.init_app(app)


def register_features(app: Flask) -> None:
    importlib.import_module("crm.submissions")  # the kernel's own table (create forms' one-time tokens)
    for name in FEATURES:
        importlib.import_module(f"crm.{name}.models") if _has(name, "models") else None
        if _has(name, "views"):
            views = importlib.import_module(f"crm.{name}.views")
            if hasattr(views, "bp"):
                app.register_blueprint(views.bp)
            if hasattr(views, "init_app"):
                views.init_app(app)
        if _has(name, "jobs"):
            importlib.import_module(f"crm.{name}.jobs")


def _has(feature: str, module: str) -> bool:
    return importlib.util.find_spec(f"crm.{feature}.{module}") is not None


# How long a SQLite connection waits for another process's write to finish before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _configure_engine(engine) -> None:
    """SQLite: enforce foreign keys, and let SQLAlchemy (not pysqlite) issue BEGIN so that
    savepoints and transactional DDL behave as on PostgreSQL.

    A file database (development: the web server and the worker write to one file at once) also gets
    write-ahead logging, so that readers never wait for a writer, a busy timeout, so that a writer waits
    for the other one instead of failing, and ``BEGIN IMMEDIATE``: a transaction that reads first and
    writes later (a login, a billing job) would otherwise be refused at once with "database is locked"
    when another process wrote in between, because SQLite cannot upgrade its read snapshot.
    """
    from sqlalchemy import event

    if engine.dialect.name != "sqlite" or getattr(engine, "_crm_configured", False):
        return
    engine._crm_configured = True
    file_database = engine.url.database not in (None, "", ":memory:") and "mode=memory" not in str(engine.url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if file_database:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if file_database else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql(begin)
