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
DEBUG = env.bool("DEBUG", default=True)
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
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
}
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
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

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
# Public base URL used to show absolute endpoints when there is no request at hand.
PORTAL_BASE_URL = env("PORTAL_BASE_URL", default="http://127.0.0.1:8000")

# --- Celery -----------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = Path(env("CELERY_BROKER_FOLDER", default=str(BROKER_DIR)))
    _broker_dir.mkdir(parents=True, exist_ok=True)  # kombu's filesystem transport expects it
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),  # else kombu writes ./control
    }
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-task leaves the task for another
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Work whose task was lost (a worker killed mid-task: the filesystem broker forgets a message
# once read) is sent again after PORTAL_REQUEUE_AFTER_SECONDS; `celery beat` (embedded in
# `make run`'s worker) looks every 5 minutes.
PORTAL_REQUEUE_AFTER_SECONDS = env.int("PORTAL_REQUEUE_AFTER_SECONDS", default=600)
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-uploads": {"task": "uploads.tasks.requeue_stalled_uploads", "schedule": 300.0},
    "requeue-stalled-dispatches": {"task": "uploads.tasks.requeue_stalled_dispatches", "schedule": 300.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- REST API ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["integrations.auth.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["integrations.auth.ApiTokenScope"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
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
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
