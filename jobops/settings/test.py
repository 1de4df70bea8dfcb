"""Test settings: the base settings plus a fast password hasher, in-process Celery and an in-memory mailbox.

The database, cache and broker still come from the environment, so CI runs the same suite on PostgreSQL,
Redis and RabbitMQ that a newcomer runs on the embedded SQLite default.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")

from .base import *  # noqa: E402,F403
from .base import CACHES, REST_FRAMEWORK, env  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = False
# Unit tests never publish to the real broker (integration tests start their own worker with their own settings).
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
# Tests must not share throttle state with a running server on the same Redis.
CACHES["default"]["KEY_PREFIX"] = env.str("CACHE_KEY_PREFIX", default="jobops-test")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_RENDERER_CLASSES": ["jobops.renderers.ORJSONRenderer"]}
LOGGING = {"version": 1, "disable_existing_loggers": False}
