"""jobops.tasking.send_task_by_name: a service publishes a task by name (no import of the task module); in eager
mode (embedded default, test settings) the registered task runs in-process, since Celery's send_task would ignore
task_always_eager and publish to a broker nobody consumes."""

from __future__ import annotations

import pytest
from celery import Celery, current_app
from celery.result import EagerResult

from jobops.celery import app
from jobops.tasking import send_task_by_name
from notifications import services


def test_the_outbox_task_names_are_registered():
    assert {services.DELIVER_TASK, services.ENQUEUE_TASK} <= set(app.tasks)


def test_the_jobops_app_publishes_even_when_another_app_is_current(monkeypatch):
    other = Celery("another-app", set_as_current=True)  # what a script or a test's own app does
    try:
        assert current_app._get_current_object() is other
        monkeypatch.setitem(app.conf, "task_always_eager", False)
        sent = []
        monkeypatch.setattr(app, "send_task", lambda name, **kw: sent.append(name) or "published")
        assert send_task_by_name("notifications.deliver", args=(1,)) == "published"
        assert sent == ["notifications.deliver"]
    finally:
        app.set_current()


def test_eager_runs_the_registered_task_in_process(monkeypatch):
    assert app.conf.task_always_eager is True
    sent = []
    monkeypatch.setattr(app, "send_task", lambda *a, **kw: sent.append((a, kw)))
    result = send_task_by_name("notifications.enqueue", args=[[]])
    assert isinstance(result, EagerResult) and result.get() == 0
    assert sent == []  # nothing went to a broker


def test_eager_unknown_name_fails_instead_of_publishing(monkeypatch):
    sent, imported = [], []
    monkeypatch.setattr(app, "send_task", lambda *a, **kw: sent.append((a, kw)))
    monkeypatch.setattr(app.loader, "import_default_modules", lambda: imported.append(True))
    with pytest.raises(KeyError):
        send_task_by_name("notifications.no_such_task", args=[1])
    assert imported == [True]  # the task modules were (re)imported before giving up
    assert sent == []


def test_with_a_broker_it_publishes_by_name(monkeypatch):
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: sent.append((name, kw)) or "async-result")
    assert send_task_by_name("notifications.deliver", args=(7,)) == "async-result"
    assert sent == [("notifications.deliver", {"args": [7], "ignore_result": True})]


def test_publishing_never_touches_the_result_backend(monkeypatch):
    """Issue 19: nothing reads task results (CELERY_TASK_IGNORE_RESULT), so a publish must not subscribe to the
    result backend first. It did (send_task's default): with the Redis result backend down each publish from the web
    spent 19 s in the backend's reconnect loop and then failed."""
    assert app.conf.task_ignore_result is True
    monkeypatch.setitem(app.conf, "task_always_eager", False)

    def result_store_down(*args, **kwargs):
        raise ConnectionError("result backend unreachable")

    monkeypatch.setattr(app.backend, "on_task_call", result_store_down)
    published = []
    monkeypatch.setattr(app.amqp, "send_task_message", lambda producer, name, message, **kw: published.append(name))
    send_task_by_name("notifications.deliver", args=(1,))
    assert published == ["notifications.deliver"]
