"""Settings, read from the environment (django-environ).

Every value has an embedded default that needs no server: SQLite, local files and a
filesystem Celery broker. Scale-out is configuration: DATABASE_URL (PostgreSQL),
CELERY_BROKER_URL (Redis or RabbitMQ), PORTAL_S3_BUCKET (S3-compatible storage).
"""

import base64
import hashlib
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # everything the embedded defaults write; git-ignored

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment wins

# --- Core -------------------------------------------------------------------
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-change-me-in-production")
# Off unless asked for: a user meets the portal's own error pages, not Django's technical ones
# (DEBUG=true shows those, for a developer).
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "django_celery_results",
    "portal",
    "integrations",
    "uploads",
]
# The protocols the portal speaks, one package each (integrations/registry.py). Adding a
# protocol is one line here.
PROTOCOL_APPS = [
    "integrations.protocols.data_integration",
    "integrations.protocols.source_import",
    "integrations.protocols.public_api",
    "integrations.protocols.upload_api",
    "integrations.protocols.file_upload",
]
INSTALLED_APPS += PROTOCOL_APPS

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Every request to a protocol's endpoint, accepted or refused, in the history (uploads.request_log).
    "uploads.request_log.RequestLogMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.tenancy.current_tenant",
                "integrations.context.protocol_pages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
}
# On PostgreSQL each web thread keeps its connection (a minute at most), checked before reuse:
# opening one per request cost a third of a small upload's time under load (docs/performance.md).
# At most WEB_WORKERS × WEB_THREADS of them (64 by default), plus the worker's threads.
_postgres = DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60 if _postgres else 0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a worker process started by a test sees the test data;
    # the process id keeps two test runs on one machine apart.
    import os as _os

    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{_os.getpid()}.sqlite3")}
    # The web and worker processes write to one file: WAL lets readers go on while one
    # writes, IMMEDIATE takes the write lock up front instead of failing half-way.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    })
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ------------------------------------------------------------------------
# Shared by every web process (the score APIs' throttling counts in it): a table of the
# database on the embedded defaults (`manage.py createcachetable` makes it), the Redis server
# of the broker when there is one, or CACHE_URL (django-environ: redis://…, dbcache://table …).
_redis_broker = env("CELERY_BROKER_URL", default="").startswith(("redis://", "rediss://"))
CACHES = {
    "default": env.cache("CACHE_URL", default=env("CELERY_BROKER_URL") if _redis_broker else "dbcache://portal_cache"),
}
CACHES["default"].setdefault("KEY_PREFIX", "portal")  # beside Celery's own keys on a shared Redis
if CACHES["default"]["BACKEND"].endswith("DatabaseCache"):
    # Past MAX_ENTRIES the table drops a third of its rows, throttle histories with them.
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 100_000)

# --- Auth -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Files --------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the app folders too, so a fresh clone (or a test's live server)
# has its CSS before any collectstatic.
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"

S3_BUCKET = env("PORTAL_S3_BUCKET", default="")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
if S3_BUCKET:
    # django-storages; credentials and endpoint come from the usual AWS_* variables.
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "file_overwrite": False,
        },
    }

# Request bodies: the data endpoint enforces its own 15 MB limit (seed 000) while
# streaming; Django's in-memory cap stays at its default for forms.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Larger files go to a temporary file whose name does not carry the file's own extension, in a
# folder of MEDIA_ROOT: on the same file system, storing such a file is a rename, not another copy
# (uploads.intake.Spooled). With S3 storage, the system's temporary folder.
FILE_UPLOAD_TEMP_DIR = env("FILE_UPLOAD_TEMP_DIR", default=None if S3_BUCKET else str(MEDIA_ROOT / ".incoming"))
if FILE_UPLOAD_TEMP_DIR:
    Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler",
                        "uploads.intake.TemporaryFileUploadHandler"]
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# Email (reference 003's notice of a file received): printed to the console unless EMAIL_URL names
# a server, e.g. smtp+tls://user:password@mail.example.com:587 (django-environ sets EMAIL_BACKEND,
# EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD and EMAIL_USE_TLS from it).
vars().update({name: value for name, value in env.email_url("EMAIL_URL", default="consolemail://").items()
               if value is not None})

# --- Secrets kept for vendors ---------------------------------------------------
# Fernet key for outbound credentials. Set PORTAL_SECRETS_KEY in production (a urlsafe
# base64 32-byte key, `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`);
# without it the key is derived from SECRET_KEY so the embedded defaults just work.
PORTAL_SECRETS_KEY = env(
    "PORTAL_SECRETS_KEY",
    default=base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode(),
)
# Outbound calls to non-public addresses are refused unless their network is listed here.
PORTAL_OUTBOUND_ALLOWED_NETWORKS = env.list("PORTAL_OUTBOUND_ALLOWED_NETWORKS", default=[])
# Certificate authorities that vendors' certificates are checked against (a PEM file), for a
# vendor whose certificate a private CA signed; empty: the public ones (certifi's bundle).
PORTAL_OUTBOUND_CA_BUNDLE = env("PORTAL_OUTBOUND_CA_BUNDLE", default="")
# Seconds to connect to a vendor, and to wait for each read of its answer; an attempt silent for
# their sum plus 30 s is taken for a dead worker's and made again (uploads/delivery/exchange.py).
PORTAL_OUTBOUND_CONNECT_TIMEOUT = env.float("PORTAL_OUTBOUND_CONNECT_TIMEOUT", default=5.0)
PORTAL_OUTBOUND_READ_TIMEOUT = env.float("PORTAL_OUTBOUND_READ_TIMEOUT", default=30.0)
# Public base URL used to show absolute endpoints when there is no request at hand.
PORTAL_BASE_URL = env("PORTAL_BASE_URL", default="http://127.0.0.1:8000")

# --- Celery -----------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "portal.broker:Transport"  # atomic message files (portal/broker.py)
    _broker_dir = Path(env("CELERY_BROKER_FOLDER", default=str(BROKER_DIR)))
    _broker_dir.mkdir(parents=True, exist_ok=True)  # kombu's filesystem transport expects it
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),  # else kombu writes ./control
        # How often an idle worker looks for a new message (kombu's default is every second,
        # which an upload spent waiting; a look lists one folder: well under 1 % of a core).
        "polling_interval": env.float("PORTAL_BROKER_POLLING_SECONDS", default=0.02),
    }
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-task leaves the task for another
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery closes a task's database connection before and after every task unless told to reuse
# it: a new connection (and PostgreSQL backend) per task cost ~10 ms, more than a small task's
# own queries. Reused for this many tasks, then opened anew (a connection a database restart
# broke is replaced by then).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=50)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Work whose task was lost (a worker killed mid-task: the filesystem broker forgets a message
# once read, Redis hands it back only after an hour) is sent again once it has waited
# PORTAL_REQUEUE_AFTER_SECONDS; `celery beat` (embedded in `make run`'s worker) looks every
# PORTAL_REQUEUE_CHECK_SECONDS. Sending again is harmless (every task claims its work first),
# so both are short: a dead worker's upload is processed again within about a minute and a
# half (docs/operations.md, Reliability).
PORTAL_REQUEUE_AFTER_SECONDS = env.int("PORTAL_REQUEUE_AFTER_SECONDS", default=60)
PORTAL_REQUEUE_CHECK_SECONDS = env.float("PORTAL_REQUEUE_CHECK_SECONDS", default=15.0)
# How long the request log keeps a row (uploads/request_log.py prune, daily).
PORTAL_REQUEST_LOG_DAYS = env.int("PORTAL_REQUEST_LOG_DAYS", default=30)
# How many reverse proxies in front of the web processes append the address they saw to
# X-Forwarded-For: the request log then takes the client's address from there (0: REMOTE_ADDR).
PORTAL_PROXY_COUNT = env.int("PORTAL_PROXY_COUNT", default=0)
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-uploads": {"task": "uploads.tasks.requeue_stalled_uploads",
                                "schedule": PORTAL_REQUEUE_CHECK_SECONDS},
    "requeue-stalled-dispatches": {"task": "uploads.tasks.requeue_stalled_dispatches",
                                   "schedule": PORTAL_REQUEUE_CHECK_SECONDS},
    "prune-request-log": {"task": "uploads.tasks.prune_request_log", "schedule": 24 * 3600.0},
    # Reference 001 outbound: start the pulls that are due, and resume those whose task was lost.
    "public-api-pulls": {"task": "integrations.protocols.public_api.tasks.pull_due", "schedule": 60.0},
    # Reference 002: expired Upload API access tokens (stored as hashes) are deleted hourly.
    "clear-expired-upload-api-tokens": {"task": "integrations.protocols.upload_api.tasks.clear_expired_tokens",
                                        "schedule": 3600.0},
    # Reference 003: files arrived in S3, URLs expired unused, partial files of killed PUTs.
    "file-upload-checks": {"task": "integrations.protocols.file_upload.tasks.check_files", "schedule": 60.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- REST API ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "integrations.schema.ApiSchema",  # documents the error answers too
    "DEFAULT_AUTHENTICATION_CLASSES": ["integrations.auth.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["integrations.auth.ApiTokenScope"],
    # limit/offset checked against the schema's bounds; JSON nested too deeply is a 400, not a 500.
    "DEFAULT_PAGINATION_CLASS": "integrations.rest.Pagination",
    "DEFAULT_PARSER_CLASSES": ["integrations.rest.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "PAGE_SIZE": 100,
    # Reference 001: each Scores API allows 30 calls a minute and 1000 a day per tenant
    # (integrations.protocols.public_api.throttling).
    "DEFAULT_THROTTLE_RATES": {
        "activity_score": "30/minute", "activity_score_day": "1000/day",
        "objective_score": "30/minute", "objective_score_day": "1000/day",
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Integration portal API",
    "DESCRIPTION": "Public API v3: integrations, uploads, metric values. "
    "Authenticate with `Authorization: Token <API token>` from Standard API Token Management.",
    "VERSION": "3.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request and response components, so write-only credentials and uploaded
    # files are described where they belong.
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from our own static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

OAUTH2_PROVIDER = {
    "SCOPES": {"platform_upload_api": "Upload data through the Upload API"},
    "DEFAULT_SCOPES": ["platform_upload_api"],
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    # Reference 002: client secrets are hashed (DOT's default, hash_client_secret); access tokens
    # are stored only as their SHA-256 (RFC 9700) and accepted from the Authorization header,
    # never from a URL's query string.
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
}
# DOT's own Application model, named so that the Upload API's migrations can depend on it.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"


# --- Logging -----------------------------------------------------------------------
def _refusals_without_traceback(record):
    """A 403 is an answer (a viewer refused an edit), not a fault: one line in the log, no traceback."""
    if getattr(record, "status_code", None) == 403:
        record.exc_info, record.exc_text = None, None
    return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"refusals_without_traceback": {"()": lambda: _refusals_without_traceback}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # Django's own loggers write once, to the console above (its default handler would repeat
    # each line when DEBUG is on).
    "loggers": {
        "django": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO"), "propagate": False},
        "django.request": {"filters": ["refusals_without_traceback"]},
    },
}
