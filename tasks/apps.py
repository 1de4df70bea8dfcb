from django.apps import AppConfig


class TasksConfig(AppConfig):
    """Celery background work: thin adapters around services. No models."""

    name = "tasks"
    verbose_name = "Background tasks"
