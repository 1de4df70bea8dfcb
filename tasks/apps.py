from django.apps import AppConfig


class TasksConfig(AppConfig):
    """Celery background work: thin adapters around services. No models."""

    name = "tasks"
    verbose_name = "Background tasks"

    def ready(self) -> None:
        # Register the tasks in every process that loads Django (web, worker, beat, manage.py), not only where
        # CELERY_IMPORTS is processed (the worker), so their names resolve everywhere.
        from . import attachments, emails, feed, idempotency, overdue, webhooks  # noqa: F401
