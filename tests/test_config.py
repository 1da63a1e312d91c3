"""Configuration: production refuses unsafe settings; database and Redis URLs in every usual spelling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis as redis_lib

from crm import create_app
from crm.config import ConfigError, ProductionConfig, config_from_environment, normalise_database_url
from crm.extensions import redis
from crm.redis_setup import connect_redis, limiter_storage_uri

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "SECRET_KEY": "x" * 40,
    "DATABASE_URL": "postgresql://crm:secret@db.internal:5432/crm",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "MAIL_SERVER": "smtp.internal",
    "MAIL_DEFAULT_SENDER": "Etisk handel Norge <post@etiskhandel.no>",
    "STRIPE_SECRET_KEY": "sk_live_example",
    "STRIPE_WEBHOOK_SECRET": "whsec_example",
}


@pytest.fixture
def production_env(monkeypatch):
    for name in ("FLASK_DEBUG", "CRM_REQUIRE_STAFF_MFA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_production_accepts_a_complete_environment(production_env):
    ProductionConfig.validate()


@pytest.mark.parametrize("name", sorted(PRODUCTION_ENV))
@pytest.mark.parametrize("value", [None, "", "  "])
def test_production_refuses_to_start_without(production_env, name, value):
    if value is None:
        production_env.delenv(name)
    else:
        production_env.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        ProductionConfig.validate()


def test_create_app_refuses_an_incomplete_production_environment(production_env):
    production_env.delenv("SECRET_KEY")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app(ProductionConfig)


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_production_refuses_debug(production_env, value):
    production_env.setenv("FLASK_DEBUG", value)
    with pytest.raises(ConfigError, match="debug"):
        ProductionConfig.validate()


def test_production_refuses_a_short_secret_key(production_env):
    production_env.setenv("SECRET_KEY", "too-short")
    with pytest.raises(ConfigError, match="32 characters"):
        ProductionConfig.validate()


def test_production_refuses_to_turn_off_staff_two_factor(production_env):
    production_env.setenv("CRM_REQUIRE_STAFF_MFA", "0")
    with pytest.raises(ConfigError, match="development only"):
        ProductionConfig.validate()


@pytest.mark.parametrize(
    "url",
    ["redis://redis.internal:6379/0", "rediss://:pw@redis.example:6380/2", "unix:///run/redis/redis.sock?db=3"],
)
def test_production_accepts_any_redis_url(production_env, url):
    production_env.setenv("REDIS_URL", url)
    ProductionConfig.validate()
    redis_lib.Redis.from_url(url)  # redis-py parses every accepted spelling


def test_production_refuses_a_url_that_is_not_redis(production_env):
    production_env.setenv("REDIS_URL", "http://redis.internal:6379")
    with pytest.raises(ConfigError, match="REDIS_URL"):
        ProductionConfig.validate()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://crm:pw@db:5432/crm", "postgresql+psycopg://crm:pw@db:5432/crm"),
        ("postgresql://crm:pw@db:5432/crm", "postgresql+psycopg://crm:pw@db:5432/crm"),
        ("postgresql+psycopg://crm@db/crm", "postgresql+psycopg://crm@db/crm"),
        ("sqlite:////srv/crm/crm.sqlite", "sqlite:////srv/crm/crm.sqlite"),
    ],
)
def test_database_url_accepts_postgres_and_postgresql(given, expected):
    assert normalise_database_url(given) == expected


def test_limiter_spells_unix_sockets_its_own_way():
    assert limiter_storage_uri("unix:///tmp/r.sock") == "redis+unix:///tmp/r.sock"
    assert limiter_storage_uri("rediss://h:6380/1") == "rediss://h:6380/1"


def test_the_suites_redis_url_connects(app):
    # unix:// for the embedded server, redis:// when TEST_REDIS_URL is set.
    connection, url = connect_redis(redis.url, "")
    assert url == redis.url
    assert connection.ping()
    connection.close()


def test_unknown_crm_env_is_refused(monkeypatch):
    monkeypatch.setenv("CRM_ENV", "staging")
    with pytest.raises(ConfigError, match="staging"):
        config_from_environment()


def _config_in_fresh_process(env: dict[str, str]) -> dict:
    """Config classes read the environment when ``crm.config`` is imported: check them in a new process."""
    script = (
        "import json; from crm.config import DevelopmentConfig as D, ProductionConfig as P, TestingConfig as T; "
        "print(json.dumps({'dev_mfa': D.CRM_REQUIRE_STAFF_MFA, 'prod_mfa': P.CRM_REQUIRE_STAFF_MFA, "
        "'test_mfa': T.CRM_REQUIRE_STAFF_MFA, 'db': P.SQLALCHEMY_DATABASE_URI, 'redis': P.REDIS_URL, "
        "'port': D.PORT, 'instance': D.INSTANCE_PATH, 'base_url': D.BASE_URL}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)


def test_environment_is_read_into_the_config_classes(tmp_path):
    values = _config_in_fresh_process(
        {
            "PATH": "/usr/bin:/bin",
            "CRM_REQUIRE_STAFF_MFA": "0",
            "DATABASE_URL": "postgres://crm@db/crm",
            "REDIS_URL": "rediss://redis.example:6380/1",
            "PORT": "5123",
            "CRM_INSTANCE_PATH": str(tmp_path),
        }
    )
    assert values == {
        "dev_mfa": False,  # the demo's staff log in without an authenticator, in development only
        "prod_mfa": True,
        "test_mfa": True,
        "db": "postgresql+psycopg://crm@db/crm",
        "redis": "rediss://redis.example:6380/1",
        "port": 5123,
        "instance": str(tmp_path),
        "base_url": "http://127.0.0.1:5123",  # links in emails follow PORT when BASE_URL is not set
    }


def test_an_explicit_base_url_wins_over_port(tmp_path):
    values = _config_in_fresh_process(
        {
            "PATH": "/usr/bin:/bin",
            "PORT": "5301",
            "BASE_URL": "https://crm.example.no",
            "CRM_INSTANCE_PATH": str(tmp_path),
        }
    )
    assert (values["port"], values["base_url"]) == (5301, "https://crm.example.no")


def test_production_refuses_an_unknown_fee_vat_treatment(production_env):
    production_env.setenv("BILLING_FEE_VAT", "vat_15")
    with pytest.raises(ConfigError, match="BILLING_FEE_VAT"):
        ProductionConfig.validate()


def test_only_crm_config_reads_the_environment():
    """The app reads its settings in one place. ``crm/devserver.py`` (``make run``'s supervisor) only sets
    variables for the processes it starts."""
    import ast

    readers = []
    for path in sorted((ROOT / "crm").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in ("crm/config.py", "crm/devserver.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if name in ("environ", "getenv", "environb"):
                readers.append(f"{relative}:{node.lineno}")
    assert readers == []
