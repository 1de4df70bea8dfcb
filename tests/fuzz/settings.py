"""Settings for the gunicorn server the fuzz run starts: the production settings module plus three changes.

Everything else (DEBUG off, the real exception handler, middleware, security headers, the strict paginator, the
throttle classes) is exactly what production runs. The changes:

* MD5 password hashing. Django's PBKDF2 (1,000,000 iterations) costs ~0.5 s per login on two cores; the fuzzer
  logs in as five users and fuzzes the token endpoint itself, which would dominate the run.
* Celery in-process and email to memory, so fuzzing never publishes to a broker that other test runs consume
  from, and never sends mail.
* Throttle rates are *not* changed here: the runner relaxes them through the documented environment variables
  (``LOGIN_RATE_PER_IP``/``LOGIN_RATE_PER_USER``), in this environment only.
"""

import os

os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

from jobops.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
