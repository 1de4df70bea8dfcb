"""JobOps settings: one module, driven by the environment.

With an empty environment JobOps runs on the *embedded default*: SQLite under ``var/``, Celery tasks run
in-process, a local-memory cache and email to the console. Setting ``DATABASE_URL``, ``CELERY_BROKER_URL``,
``REDIS_URL`` and ``EMAIL_HOST`` switches to the full stack (PostgreSQL, RabbitMQ, Redis, SMTP). Production
behaviour is switched by env only; there is no production-only settings module.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

# --- Core -------------------------------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)

_INSECURE_KEYS = {"", "change-me", "changeme", "dev", "secret", "insecure"}
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY or SECRET_KEY in _INSECURE_KEYS or SECRET_KEY.startswith("django-insecure"):
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set to a real secret when DJANGO_DEBUG is off "
            "(the README's `make run` sets a local one for the embedded default)."
        )
    SECRET_KEY = SECRET_KEY or "django-insecure-local-development-only"

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "jobops.admin_apps.JobOpsAdminConfig",  # django.contrib.admin with the login throttles
    # Before django.contrib.auth: its `changepassword` command replaces Django's (which saved without the service).
    "accounts",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "channels",
    "jobops",
    "equipment",
    "jobs",
    "audit",
    "notifications",
    "tasks",
]

MIDDLEWARE = [
    "jobops.middleware.RequestIDMiddleware",
    "jobops.middleware.NoStoreMiddleware",
    "jobops.middleware.ApiJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "jobops.middleware.FormBodyMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # GET answers under /api/ that no view tagged get an ETag hashed from their body (jobops.conditional).
    "jobops.conditional.BodyETagMiddleware",
    # Last: the transaction it opens for a write with an Idempotency-Key covers the view and nothing else.
    "jobops.idempotency.IdempotencyMiddleware",
]

ROOT_URLCONF = "jobops.urls"
WSGI_APPLICATION = "jobops.wsgi.application"
ASGI_APPLICATION = "jobops.asgi.application"
# The WebSocket routes, by name like ROOT_URLCONF: jobops (the platform) imports no app (import-linter layers).
WEBSOCKET_URLPATTERNS = "jobs.routing.websocket_urlpatterns"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "jobops" / "templates"],
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

# --- Database ---------------------------------------------------------------------------------------------------
VAR_DIR = Path(env.str("JOBOPS_VAR_DIR", default=str(BASE_DIR / "var")))
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Fail fast (and let /readyz/ answer) when the database host is unreachable.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # Server-side parameters, and psycopg prepares a statement once a connection has run it DB_PREPARE_THRESHOLD
    # times: the polled reads stop being parsed and planned on every request (about 0.6 ms of PostgreSQL CPU per
    # job-list request on the benchmark machine). Turn off (DB_SERVER_SIDE_BINDING=0) behind a pooler that cannot
    # keep prepared statements, such as PgBouncer in transaction mode before 1.21.
    if env.bool("DB_SERVER_SIDE_BINDING", default=True):
        DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = env.int("DB_PREPARE_THRESHOLD", default=5)
# A request that finds the database unreachable answers 503 with this Retry-After (seconds; jobops.unavailable).
DB_UNAVAILABLE_RETRY_AFTER = env.int("DB_UNAVAILABLE_RETRY_AFTER", default=5)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if not env.str("DATABASE_URL", default=""):
        VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Wait for a writer instead of failing with "database is locked" under the dev server's threads.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20

# A PostgreSQL streaming replica for the reports (jobops/replica.py: analytics, equipment usage, the audit listing);
# everything else stays on the primary. Optional: without it every read is on "default".
if env.str("DATABASE_REPLICA_URL", default=""):
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_REPLICA_URL needs a PostgreSQL DATABASE_URL (a standby of that primary).")
    DATABASES["replica"] = env.db_url("DATABASE_REPLICA_URL")
    DATABASES["replica"].setdefault("CONN_MAX_AGE", DATABASES["default"]["CONN_MAX_AGE"])
    DATABASES["replica"]["CONN_HEALTH_CHECKS"] = True
    # Short: while the standby is unreachable a report pays this once per retry interval, then reads the primary.
    DATABASES["replica"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_REPLICA_CONNECT_TIMEOUT", default=2)
    )
    for _option in ("server_side_binding", "prepare_threshold"):
        if _option in DATABASES["default"]["OPTIONS"]:
            DATABASES["replica"]["OPTIONS"][_option] = DATABASES["default"]["OPTIONS"][_option]
    # Tests: no second test database; "replica" points at default's.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["jobops.replica.ReplicaRouter"]
# Seconds a process reads the reports from the primary after a replica failure before trying the replica again.
DATABASE_REPLICA_RETRY_SECONDS = env.float("DATABASE_REPLICA_RETRY_SECONDS", default=5.0)
# Reports read the primary while the standby's replay is further behind than this (seconds; 0: never measured). Each
# process measures it at most every DATABASE_REPLICA_RETRY_SECONDS, with one query on the standby.
DATABASE_REPLICA_MAX_LAG_SECONDS = env.float("DATABASE_REPLICA_MAX_LAG_SECONDS", default=30.0)

# --- Cache (throttles, shared across web processes) -------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="jobops"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "jobops"}}
# After Redis could not be reached, seconds each process counts login throttles locally before trying it again.
CACHE_RETRY_SECONDS = env.float("CACHE_RETRY_SECONDS", default=3.0)

# --- Channel layer (wakes the WebSocket consumers of every ASGI process when the change feed grows) -------------
# Redis when REDIS_URL is set, so any web node can serve any client; in-memory (this process only) in the
# embedded default, where one process serves both HTTP and WebSockets.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # The layer blocks up to 5 s on BZPOPMIN: redis-py's default socket timeout (5 s) would cut that
                # read; connecting stays quick, so a write's wake never hangs on a Redis outage for long.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 2}],
                # Each process renews its membership of the wake group every minute; a dead one drops out soon.
                "group_expiry": 300,
                # The one channel of each process's live-stream hub (jobs.stream): room for a burst of wakes (a
                # full channel drops new messages; the hub's poll would then find the change within a second).
                "channel_capacity": {"jobops-live.*": 10_000},
                "prefix": env.str(
                    "CHANNEL_LAYER_PREFIX", default=f"{env.str('CACHE_KEY_PREFIX', default='jobops')}:asgi"
                ),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# The live stream (/ws/changes/, API.md v2 "Live stream"). Seconds.
LIVE_AUTH_TIMEOUT = env.float("LIVE_AUTH_TIMEOUT", default=10.0)
LIVE_IDLE_TIMEOUT = env.float("LIVE_IDLE_TIMEOUT", default=60.0)
# How often each ASGI process re-reads the user rows of its connections (deactivation closes with 4403 within this).
LIVE_USER_CHECK_SECONDS = env.float("LIVE_USER_CHECK_SECONDS", default=2.0)
# How often each ASGI process checks (one indexed query) for feed rows that no wake-triggered read covered: a
# change whose wake was lost (Redis blip) or that the feed's watermark held back behind an older transaction
# still running when the wake came is delivered within this.
LIVE_POLL_SECONDS = env.float("LIVE_POLL_SECONDS", default=1.0)
# Messages queued for one client that does not read them; past this it is closed (1013, try again later).
LIVE_OUTBOX_LIMIT = env.int("LIVE_OUTBOX_LIMIT", default=10_000)
# Where the /live/ page opens its WebSocket ('' = the page's own origin + /ws/changes/).
LIVE_WS_URL = env.str("LIVE_WS_URL", default="")

# --- Auth -------------------------------------------------------------------------------------------------------
# Argon2id first (jobops/hashers.py: OWASP's minimum parameters); the others only verify hashes made before it, and
# Django re-hashes such a password with the first hasher at the user's next successful login.
PASSWORD_HASHERS = [
    "jobops.hashers.Argon2idPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# A client that logged in as a user within this many days is not held back by that user's spent budget of failed
# logins (jobops/throttles.py): a distributed guess at an account cannot lock its owner out.
LOGIN_KNOWN_CLIENT_DAYS = env.int("LOGIN_KNOWN_CLIENT_DAYS", default=30)

# --- i18n / time ------------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files (whitenoise serves them under gunicorn, so Swagger UI/ReDoc work offline) -----------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES: dict[str, dict[str, object]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or env.bool("JOBOPS_PLAIN_STATIC", default=False)
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Attachments (jobs.attachments): S3 (or MinIO) when S3_BUCKET is set, the file system under var/ otherwise -------
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))
S3_BUCKET = env.str("S3_BUCKET", default="")
if S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,  # MinIO, moto, other S3-compatible stores
            "region_name": env.str("S3_REGION", default="") or None,
            # Empty: boto3's own chain (AWS_* env vars, an instance role).
            "access_key": env.str("S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default="") or None,
            "addressing_style": env.str("S3_ADDRESSING_STYLE", default="") or None,  # "path" for MinIO
            "default_acl": None,  # never public-read: objects take the bucket's (private) policy
            "querystring_auth": True,
            # The presigned URL behind a JobOps link (a 302) lives this long: JobOps' own link decides access.
            "querystring_expire": env.int("S3_PRESIGNED_SECONDS", default=60),
            "file_overwrite": False,
        },
    }
ATTACHMENT_MAX_BYTES = env.int("ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024)
# Images above this many pixels are refused before they are decoded (decompression bombs): 40 MP ~ 120 MB as RGB.
ATTACHMENT_MAX_PIXELS = env.int("ATTACHMENT_MAX_PIXELS", default=40_000_000)
# How long the JobOps-signed links in `url` and `thumbnail_url` stay valid.
ATTACHMENT_URL_SECONDS = env.int("ATTACHMENT_URL_SECONDS", default=300)
# Images decoded at once per process (memory: each decode holds up to ATTACHMENT_MAX_PIXELS x 4 bytes).
ATTACHMENT_DECODE_SLOTS = env.int("ATTACHMENT_DECODE_SLOTS", default=2)
# The daily sweep removes objects without a row once they are this old (an upload still in flight is younger).
ATTACHMENT_ORPHAN_GRACE_HOURS = env.int("ATTACHMENT_ORPHAN_GRACE_HOURS", default=24)

# --- Request limits ---------------------------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# --- REST framework ---------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["jobops.renderers.ORJSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"]
    if DEBUG
    else ["jobops.renderers.ORJSONRenderer"],
    # DRF's JSON parser, plus a 400 (not a 500) for absurdly nested JSON (see jobops/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["jobops.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["jobops.filters.FilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "jobops.pagination.StrictPageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "jobops.schema.JobOpsAutoSchema",
    "EXCEPTION_HANDLER": "jobops.exceptions.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "login_ip": env.str("LOGIN_RATE_PER_IP", default="30/min"),
        "login_user": env.str("LOGIN_RATE_PER_USER", default="10/min"),
        "login_failures": env.str("LOGIN_FAILURES_PER_USER", default="100/hour"),
    },
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_REFRESH_MINUTES", default=1440)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    # An empty JWT_SIGNING_KEY must not mean "sign with an empty key".
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default="") or SECRET_KEY,
    "ALGORITHM": "HS256",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "CHECK_USER_IS_ACTIVE": True,
    "CHECK_REVOKE_TOKEN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "JobOps API",
    "DESCRIPTION": (
        "Field-operations backend: jobs made of ordered tasks, equipment, technicians, audit trail. "
        "Authenticate with `POST /api/auth/token/` and send `Authorization: Bearer <access>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/",
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.Job.Status",
        "TaskStatusEnum": "jobs.models.JobTask.Status",
        "PriorityEnum": "jobs.models.Job.Priority",
        "RoleEnum": "accounts.models.User.Role",
        "EquipmentTypeEnum": "equipment.models.Equipment.Type",
        "AuditSourceEnum": "audit.models.AuditEntry.Source",
        "NotificationKindPreferenceEnum": "notifications.preferences.KINDS",
        "AttachmentKindEnum": "jobs.models.Attachment.Kind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobops.schema.add_error_responses",
        "jobops.schema.add_links",
    ],
}

# --- CORS (API only) --------------------------------------------------------------------------------------------
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
# Offline-safe writes (API.md v2): browsers must be allowed to send the conditional and idempotency headers, and
# to read the tags and the replay marker.
CORS_EXPOSE_HEADERS = ["X-Request-ID", "ETag", "Idempotent-Replayed"]
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "user-agent",
    "x-request-id",
    "idempotency-key",
    "if-match",
    "if-none-match",
)

# --- Security (production values switched on by env; see .env.example) ------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DJANGO_BEHIND_TLS_PROXY", False) else None
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz/$", r"^readyz/$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Email ------------------------------------------------------------------------------------------------------
EMAIL_HOST = env.str("EMAIL_HOST", default="")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="JobOps <jobops@localhost>")
# Embedded default: no SMTP host -> every email is written to a file under var/mail/ (a local sink).
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.filebased.EmailBackend",
)
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))

# --- Celery -----------------------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL or "") or None
# Embedded default: no broker -> tasks run in-process, at once.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = False
if not CELERY_BROKER_URL:
    # With a host named, kombu does not warn "No hostname was supplied" when something opens the (unused) broker.
    CELERY_BROKER_URL = "memory://localhost/"
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_IGNORE_RESULT = True
# Reliability (see ARCHITECTURE.md / RELIABILITY-NOTES.md A1-A2): ack after the task ran, requeue if the worker
# dies mid-task, reserve one task at a time, durable quorum queues with publisher confirms.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="jobops")
CELERY_TASK_DEFAULT_QUEUE_TYPE = env.str("CELERY_TASK_DEFAULT_QUEUE_TYPE", default="quorum")
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True} if CELERY_BROKER_URL.startswith("amqp") else {}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = 30
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300  # well below RabbitMQ's 30 min consumer_timeout
# Publishing while the broker is down fails fast (the outbox sweep retries later) instead of hanging a request.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_IMPORTS = [
    "tasks.overdue",
    "tasks.emails",
    "tasks.feed",
    "tasks.webhooks",
    "tasks.idempotency",
    "tasks.attachments",
]

# Offline-safe writes (jobops.idempotency): how long a stored response answers a retried Idempotency-Key, and the
# paths where the header is ignored (the token endpoints: a token pair must never be handed out twice).
IDEMPOTENCY_TTL_HOURS = env.int("IDEMPOTENCY_TTL_HOURS", default=24)
IDEMPOTENCY_EXEMPT_PATHS = ("/api/auth/token/",)

OVERDUE_SWEEP_HOUR = env.int("OVERDUE_SWEEP_HOUR", default=0)
OVERDUE_SWEEP_MINUTE = env.int("OVERDUE_SWEEP_MINUTE", default=5)
DAILY_REMINDER_HOUR = env.int("DAILY_REMINDER_HOUR", default=7)
# The change feed (jobs.feed) keeps its rows this long; an older cursor is a 410 and the client reloads.
CHANGE_FEED_RETENTION_DAYS = env.int("CHANGE_FEED_RETENTION_DAYS", default=30)
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=6)
NOTIFICATION_GRACE_SECONDS = env.int("NOTIFICATION_GRACE_SECONDS", default=120)
# How often beat runs the outbox sweep (seconds): rows whose publish failed while the broker was down go out at the
# first sweep after it returns.
NOTIFICATION_SWEEP_SECONDS = env.float("NOTIFICATION_SWEEP_SECONDS", default=15.0)
# Outbound webhooks (notifications.webhooks): hosts exempt from the SSRF address check (e.g. an internal receiver),
# the retry delays in seconds after each failed attempt (about 3 days in all, +-25 % jitter each), the days of
# straight failures after which an endpoint is disabled, and how often the relay turns feed rows into deliveries.
# Users' phone numbers are stored in E.164; with a region (e.g. "GB") a national number is read as one of it.
PHONE_DEFAULT_REGION = env.str("PHONE_DEFAULT_REGION", default="")
# Web Push (pywebpush): the VAPID key pair's private half (base64url raw key or PEM) and the "sub" claim
# (mailto: or https: URL). Unset: no push messages are queued.
VAPID_PRIVATE_KEY = env.str("VAPID_PRIVATE_KEY", default="")
VAPID_SUBJECT = env.str("VAPID_SUBJECT", default="")
# SMS through Twilio's REST API when all three are set (TWILIO_API_BASE_URL: another API origin, for a stand-in).
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM = env.str("TWILIO_FROM", default="")
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="")
WEBHOOK_ALLOWED_HOSTS = env.list("WEBHOOK_ALLOWED_HOSTS", default=[])
WEBHOOK_RETRY_SCHEDULE = [
    int(x)
    for x in env.list(
        "WEBHOOK_RETRY_SCHEDULE", default=["5", "60", "300", "1800", "7200", "18000", "36000"] + ["43200"] * 5
    )
]
WEBHOOK_DISABLE_AFTER_DAYS = env.int("WEBHOOK_DISABLE_AFTER_DAYS", default=5)
WEBHOOK_RELAY_SECONDS = env.float("WEBHOOK_RELAY_SECONDS", default=2.0)
CELERY_BEAT_SCHEDULE = {
    # https://crontab.guru/#5_0_*_*_* : daily, shortly after midnight in TIME_ZONE
    "flag-overdue-jobs": {
        "task": "jobs.flag_overdue_jobs",
        "schedule": crontab(hour=OVERDUE_SWEEP_HOUR, minute=OVERDUE_SWEEP_MINUTE),
        "options": {"expires": 3600},
    },
    # https://crontab.guru/#0_7_*_*_* : the technicians' daily reminder at 07:00 in TIME_ZONE
    "daily-reminders": {
        "task": "notifications.send_daily_reminders",
        "schedule": crontab(hour=DAILY_REMINDER_HOUR, minute=0),
        "options": {"expires": 3600},
    },
    # https://crontab.guru/#30_3_*_*_* : daily at 03:30, prune change-feed rows past CHANGE_FEED_RETENTION_DAYS
    "prune-change-feed": {
        "task": "jobs.prune_change_feed",
        "schedule": crontab(hour=3, minute=30),
        "options": {"expires": 3600},
    },
    # https://crontab.guru/#17_*_*_*_* : hourly, forget Idempotency-Keys older than IDEMPOTENCY_TTL_HOURS
    "purge-idempotency-keys": {
        "task": "jobops.purge_idempotency_keys",
        "schedule": crontab(minute=17),
        "options": {"expires": 3000},
    },
    # https://crontab.guru/#*/10_*_*_*_* : every 10 minutes, queue again the thumbnails never made (broker down)
    "requeue-attachment-thumbnails": {
        "task": "jobs.requeue_attachment_thumbnails",
        "schedule": crontab(minute="*/10"),
        "options": {"expires": 540},
    },
    # https://crontab.guru/#45_3_*_*_* : daily at 03:45, find objects without a row (removed) and rows without one
    "sweep-attachment-objects": {
        "task": "jobs.sweep_attachment_objects",
        "schedule": crontab(hour=3, minute=45),
        "options": {"expires": 3600},
    },
    # every NOTIFICATION_SWEEP_SECONDS: re-enqueue outbox rows the broker never got (one indexed query)
    "requeue-unsent-notifications": {
        "task": "notifications.requeue_unsent",
        "schedule": NOTIFICATION_SWEEP_SECONDS,
        "options": {"expires": max(1.0, NOTIFICATION_SWEEP_SECONDS - 1)},
    },
    # every WEBHOOK_RELAY_SECONDS: turn new change-feed rows into webhook deliveries (jobs.webhooks)
    "relay-webhooks": {
        "task": "jobs.relay_webhooks",
        "schedule": WEBHOOK_RELAY_SECONDS,
        "options": {"expires": max(1.0, WEBHOOK_RELAY_SECONDS)},
    },
}

# --- Logging (JSON lines with the request id) -------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "jobops.logging.RequestIDFilter"}},
    "formatters": {
        "json": {"()": "jobops.logging.JSONFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": env.str("LOG_FORMAT", default="json"),
        },
        "null": {"class": "logging.NullHandler"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per request: jobops.middleware.RequestIDMiddleware's (with the request id, the user and the
        # duration). runserver's own access line would repeat it, and Django's default "django" console handler
        # (DEBUG on) would print every warning a second time, unformatted; no ADMINS, so no mail_admins either.
        "django": {"handlers": [], "propagate": True},
        # A 4xx is already that line (with its status); 5xx errors still log here, with their traceback.
        "django.request": {"level": "ERROR"},
        "django.server": {"handlers": ["null"], "propagate": False},
    },
}

# Tests that need a real service (PostgreSQL, RabbitMQ, Redis, SMTP) skip without it, unless this is set (CI).
JOBOPS_REQUIRE_SERVICES = env.bool("JOBOPS_REQUIRE_SERVICES", default=False)
