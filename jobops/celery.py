"""The JobOps Celery application. Configuration comes from Django settings (namespace ``CELERY``)."""

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobops.settings.base")

app = Celery("jobops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _use_django_logging(**kwargs: Any) -> None:
    """Worker and beat log through Django's LOGGING (JSON lines), instead of Celery taking over the root logger."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
