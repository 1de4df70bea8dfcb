"""Send a Celery task by name, so that a service never imports the task module that calls it back.

The task adapters (``tasks.*``) import the services; a service that must enqueue one of them would close an import
cycle (and break the layer contract) if it imported the task. It publishes by name instead. ``send_task`` ignores
``task_always_eager`` (Celery warns ``AlwaysEagerIgnored`` and publishes anyway), so in eager mode (the embedded
default without a broker, and the test settings) the registered task is looked up and applied in-process, exactly as
``task.apply_async`` would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery.result import AsyncResult

from jobops.celery import app


def send_task_by_name(name: str, args: Sequence[Any] = ()) -> AsyncResult[Any]:
    """Publish the task ``name`` with positional ``args`` (JSON-serialisable ids, never model instances), or run it
    in-process at once when ``task_always_eager`` is set. Raises ``KeyError`` in eager mode for a name no module
    registered, rather than publishing to a broker that nothing consumes. Always with the JobOps app, never
    ``current_app``: another Celery app created in the same process (a test's, a script's) would become current."""
    if app.conf.task_always_eager:
        task = app.tasks.get(name)
        if task is None:
            # Tasks register when their module is imported: ``tasks.apps.TasksConfig.ready`` does it in every Django
            # process; a process that skipped it (Celery loaded without Django's app registry) imports them now.
            app.loader.import_default_modules()
            task = app.tasks[name]
        return task.apply_async(args=tuple(args))
    # ignore_result as the task itself would have it (CELERY_TASK_IGNORE_RESULT): without it send_task subscribes to
    # the result backend (Redis) before publishing, so a Redis outage would fail every publish (issue 19).
    return app.send_task(name, args=list(args), ignore_result=app.conf.task_ignore_result)
