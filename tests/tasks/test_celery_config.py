"""The Celery settings that lose nothing (RELIABILITY-NOTES A1/A8.12), checked on the real app as a process
with a production-like environment loads it, plus the beat schedule and task names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery.schedules import crontab

from jobops.celery import app

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
django.setup()
from jobops.celery import app
c = app.conf
print(json.dumps({
    "acks_late": c.task_acks_late,
    "reject_on_worker_lost": c.task_reject_on_worker_lost,
    "prefetch": c.worker_prefetch_multiplier,
    "queue_type": c.task_default_queue_type,
    "queue": c.task_default_queue,
    "transport": c.broker_transport_options,
    "retry_on_startup": c.broker_connection_retry_on_startup,
    "soft": c.task_soft_time_limit,
    "hard": c.task_time_limit,
    "serializer": c.task_serializer,
    "accept": list(c.accept_content),
    "eager": c.task_always_eager,
    "broker": c.broker_url,
    "timezone": c.timezone,
    "cancel_on_loss": c.worker_cancel_long_running_tasks_on_connection_loss,
    "imports": list(c.imports),
    "tasks": sorted(t for t in app.tasks if not t.startswith("celery.")),
}))
"""


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_", "DATABASE_URL"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "jobops.settings.base", "DJANGO_SECRET_KEY": "probe-" + "x" * 40, **env})
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=clean, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_full_stack_settings_contract(tmp_path):
    conf = probe(
        CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//", TIME_ZONE="Europe/Paris", JOBOPS_VAR_DIR=str(tmp_path)
    )
    assert conf["acks_late"] is True
    assert conf["reject_on_worker_lost"] is True
    assert conf["prefetch"] == 1
    assert conf["queue_type"] == "quorum" and conf["queue"] == "jobops"
    assert conf["transport"].get("confirm_publish") is True
    assert conf["retry_on_startup"] is True
    assert conf["cancel_on_loss"] is True
    # Hard limit well below RabbitMQ's 30 min consumer timeout; soft limit first.
    assert 0 < conf["soft"] < conf["hard"] < 30 * 60
    assert conf["serializer"] == "json" and conf["accept"] == ["json"]
    assert conf["eager"] is False and conf["broker"].startswith("amqp://")
    assert conf["timezone"] == "Europe/Paris"
    assert set(conf["imports"]) >= {"tasks.overdue", "tasks.emails", "tasks.feed", "tasks.attachments"}
    assert {
        "jobs.flag_overdue_jobs",
        "jobs.prune_change_feed",
        "notifications.deliver",
        "notifications.requeue_unsent",
        "notifications.send_daily_reminders",
        "jobs.relay_webhooks",
    } <= set(conf["tasks"])


def test_embedded_default_runs_tasks_in_process(tmp_path):
    conf = probe(DJANGO_DEBUG="1", JOBOPS_VAR_DIR=str(tmp_path))
    assert conf["eager"] is True and conf["broker"] == "memory://localhost/"


def test_beat_schedule_names_registered_tasks(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE
    for entry in schedule.values():
        assert entry["task"] in app.tasks, entry["task"]
        # A crontab, or (the webhook relay, which runs every few seconds) a positive interval in seconds.
        assert isinstance(entry["schedule"], crontab) or entry["schedule"] > 0
        assert entry["options"]["expires"] > 0  # a backlog never replays stale sweeps
    assert {entry["task"] for entry in schedule.values()} == {
        "jobs.flag_overdue_jobs",
        "jobs.prune_change_feed",
        "notifications.send_daily_reminders",
        "notifications.requeue_unsent",
        "jobs.relay_webhooks",
        "jobops.purge_idempotency_keys",
        "jobs.sweep_attachment_objects",
        "jobs.requeue_attachment_thumbnails",
    }


def test_delivery_task_retry_policy(settings):
    task = app.tasks["notifications.deliver"]
    assert task.acks_late is True
    assert task.retry_backoff is True and task.retry_jitter is True and task.retry_backoff_max == 600
    assert task.max_retries == settings.NOTIFICATION_MAX_ATTEMPTS - 1
    import smtplib

    assert set(task.autoretry_for) == {smtplib.SMTPException, OSError}


@pytest.mark.parametrize("name", ["jobs.flag_overdue_jobs", "notifications.requeue_unsent"])
def test_periodic_tasks_ack_late(name):
    assert app.tasks[name].acks_late is True
