"""Settings for CRS Risk, read from the environment (SPEC 8.5).

One settings module serves development, tests and production. Production is
simply ``DEBUG`` off: then ``SECRET_KEY`` and ``TIME_ZONE`` must be given, and
the secure defaults below apply. A bad value fails loudly with
``ImproperlyConfigured``.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / "data"

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off.")
    # Development only: a fixed, obviously insecure key.
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production-0123456789abcdef"  # noqa: S105

TIME_ZONE = env.str("TIME_ZONE", default="")
if not TIME_ZONE:
    if not DEBUG:
        # SPEC 1: the site time zone decides calendar days, so production must name it.
        raise ImproperlyConfigured(
            "TIME_ZONE is required when DEBUG is off (e.g. TIME_ZONE=Asia/Shanghai): "
            "it decides which calendar day a sample belongs to."
        )
    TIME_ZONE = "UTC"
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError) as exc:
    raise ImproperlyConfigured(f"TIME_ZONE={TIME_ZONE!r} is not a known IANA time zone.") from exc
USE_TZ = True

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"] if DEBUG else []
)
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required when DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "simple_history",
    "axes",
    "csp",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "crsrisk.accounts",
    "crsrisk.jobs",
    "patients",
    "scoring",
]

MIDDLEWARE = [
    # Outermost: a request the database breaks answers 503 with Retry-After, never a 500.
    "crsrisk.jobs.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "crsrisk.accounts.middleware.SessionLifetimeMiddleware",
    "crsrisk.accounts.middleware.PasswordChangeRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Axes must come last (django-axes docs).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "crsrisk.urls"
WSGI_APPLICATION = "crsrisk.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "crsrisk.accounts.context_processors.roles",
            ],
        },
    },
]

# --- Database (SPEC 8.5) -------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'crsrisk.sqlite3'}"),
}
_engine = DATABASES["default"]["ENGINE"]
if _engine == "django.db.backends.sqlite3":
    # Concurrent writers wait for the lock instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    # WAL: readers never wait for the writer, and a background job's short commits leave the
    # write lock free for a bedside entry in between (docs/deploy.md: SQLite is for one machine).
    DATABASES["default"]["OPTIONS"].setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
    if DATABASES["default"]["NAME"] != ":memory:":
        DATA_DIR.mkdir(exist_ok=True)
elif _engine == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    raise ImproperlyConfigured(f"DATABASE_URL must name SQLite or PostgreSQL, not {_engine}.")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Background jobs: django-q2 on the project's own database (docs/deploy.md) --------------
# A job longer than JOB_TIMEOUT_SECONDS is stopped; a job whose worker died without
# acknowledging it is delivered again after ``retry`` seconds (it must exceed the timeout).
JOB_TIMEOUT_SECONDS = env.int("JOB_TIMEOUT_SECONDS", default=30 * 60)
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=3)
Q_CLUSTER = {
    "name": "crsrisk",
    "orm": "default",
    # The ORM broker, whose pusher waits out a database outage and reads the queue again
    # within a poll of the database's return, instead of django-q2's fixed 10 s pause.
    "broker_class": "crsrisk.jobs.broker.DatabaseTolerantORM",
    "workers": env.int("JOB_WORKERS", default=2),
    "timeout": JOB_TIMEOUT_SECONDS,
    "retry": JOB_TIMEOUT_SECONDS + env.int("JOB_RETRY_MARGIN_SECONDS", default=60),
    # Redelivery is counted by the Job row (JOB_MAX_ATTEMPTS), not by django-q.
    "max_attempts": 0,
    # A task that failed was stopped before job_run could record the outcome (the job's
    # timeout; the database away for longer than the job waits): leave it unacknowledged, so
    # it is delivered again after ``retry`` and job_run finishes it or marks it failed, rather
    # than leaving the Job row RUNNING for ever. job_run itself returns normally otherwise.
    "ack_failures": False,
    "catch_up": False,
    "save_limit": 200,
    "poll": env.float("JOB_POLL_SECONDS", default=1.0),
    "label": "Queue",
}

# --- Authentication and sessions (SPEC 7) --------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Length and a blocklist, no composition rules (NIST SP 800-63B 3.1.1.2; docs/security.md).
# NumericPasswordValidator is left out: "not all digits" is a composition rule.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

SESSION_IDLE_SECONDS = env.int("SESSION_IDLE_SECONDS", default=30 * 60)
SESSION_ABSOLUTE_SECONDS = env.int("SESSION_ABSOLUTE_SECONDS", default=12 * 60 * 60)
SESSION_COOKIE_AGE = SESSION_IDLE_SECONDS
SESSION_SAVE_EVERY_REQUEST = True  # sliding idle timeout
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# django-axes: 5 failures in 15 minutes lock the account until an admin unlocks it.
# The lock has no cool-off (AXES_COOLOFF_TIME None); the 15-minute counting window is
# applied by crsrisk.accounts.lockout.WindowedLockoutHandler over axes' failure log.
# Locked by username only: behind a reverse proxy every client shares one address, and an
# address lock would shut the whole ward out (docs/security.md).
AXES_HANDLER = "crsrisk.accounts.lockout.WindowedLockoutHandler"
AXES_FAILURE_LIMIT = 5
AXES_FAILURE_WINDOW_SECONDS = env.int("AXES_FAILURE_WINDOW_SECONDS", default=15 * 60)
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_COOLOFF_TIME = None
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked.html"
AXES_VERBOSE = False
# Unlocking goes through the audited account pages, not axes' admin (it would delete attempts silently).
AXES_ENABLE_ADMIN = False
# axes.W006 warns that a lock without the address can be dodged by rotating User-Agents;
# a username lock counts every failure of the account whatever the client, so it cannot.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_SENSITIVE_PARAMETERS = ["old_password", "new_password1", "new_password2", "password1", "password2"]

# --- Internationalisation ------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True

# --- Static files: served by the app itself, no CDN (SPEC 8.1) -----------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # Plotly's JavaScript comes from the installed plotly package, never a copy or a CDN.
    "crsrisk.staticfinders.PlotlyFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- REST API (SPEC 8.4) -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "crsrisk.accounts.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "crsrisk.api_errors.exception_handler",
    # JSON with a nesting limit (API_MAX_JSON_DEPTH); the form parsers are DRF's own.
    "DEFAULT_PARSER_CLASSES": [
        "crsrisk.api_parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
# Bad bodies get a JSON 4xx (issue 9): nested deeper than this is 400; a body over
# DATA_UPLOAD_MAX_MEMORY_SIZE (Django's 2.5 MB by default) is 413; a FHIR bundle of more
# entries than this is refused (manage.py import_fhir takes larger feeds).
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=32)
FHIR_MAX_BUNDLE_ENTRIES = env.int("FHIR_MAX_BUNDLE_ENTRIES", default=1000)
for _name, _value in (
    ("API_MAX_JSON_DEPTH", API_MAX_JSON_DEPTH),
    ("FHIR_MAX_BUNDLE_ENTRIES", FHIR_MAX_BUNDLE_ENTRIES),
):
    if _value < 1:
        raise ImproperlyConfigured(f"{_name} must be a positive whole number, not {_value}.")
SPECTACULAR_SETTINGS = {
    "TITLE": "CRS Risk API",
    "DESCRIPTION": "Patients, labs, observations, events and assessments by MRN.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The schema and the docs describe clinical endpoints: signed-in users only.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# --- Security headers ----------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        # Plotly injects <style> elements at run time; see docs/security.md.
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # A load balancer probes the health check over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Trust X-Forwarded-Proto only behind a TLS proxy that sets (and strips) it: otherwise a
    # client could claim https. BEHIND_TLS_PROXY=1 says the deployment has such a proxy.
    if env.bool("BEHIND_TLS_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Logging: one JSON object per line, UTC time (a logged value cannot forge a line) -------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "crsrisk.logging.JSONFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {
        "crsrisk.security": {"handlers": ["console"], "level": "INFO"},
        # Not propagated: Django's own console handler would repeat it as plain text under DEBUG.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

# Web imports (issue 11): a CSV file up to IMPORT_UPLOAD_MAX_BYTES is stored in the database in
# chunks and checked and imported by background jobs; an upload nobody confirmed is purged after
# IMPORT_UPLOAD_MAX_AGE_HOURS (manage.py purge_import_uploads, and at every new upload).
IMPORT_UPLOAD_MAX_BYTES = env.int("IMPORT_UPLOAD_MAX_BYTES", default=100 * 1024 * 1024)
IMPORT_UPLOAD_CHUNK_BYTES = 1024 * 1024
IMPORT_UPLOAD_MAX_AGE_HOURS = env.int("IMPORT_UPLOAD_MAX_AGE_HOURS", default=24)
# An uploaded file larger than this streams to a temporary file instead of memory (Django's
# default); form fields other than files stay under DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
