"""Shared helpers of the outbox tests: a job created through the service (so its emails are queued as in
production), the outbox rows in id order, and one pending row."""

from __future__ import annotations

import datetime

from jobs import services as job_services
from notifications.models import Notification

FUTURE = datetime.date(2031, 5, 1)


def create_job(actor, technician=None, **data):
    payload = {"title": "Boiler <service>", "client_name": "ACME & Sons", "scheduled_date": FUTURE, **data}
    if technician is not None:
        payload["assigned_to"] = technician
    return job_services.job_create(actor=actor, data=payload)


def rows(**filters):
    return list(Notification.objects.filter(**filters).order_by("id"))


def pending_row(sales_agent, technician):
    create_job(sales_agent, technician)
    [row] = rows()
    return row


def deliveries(callbacks: list) -> list:
    """The after-commit callbacks other than the live stream's wake (which every write to the change feed adds)."""
    from jobops.live import wake_listeners

    return [callback for callback in callbacks if callback is not wake_listeners]
