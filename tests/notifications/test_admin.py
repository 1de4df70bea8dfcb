"""The outbox in the Django admin: read-only for everyone; staff admins may browse it and re-queue failed rows
(through notifications.delivery.notification_retry: audited with source "admin")."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEntry
from notifications.models import Notification
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/admin/notifications/notification/"
Status = Notification.Status


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def make(status, **extra):
    return Notification.objects.create(
        kind=Notification.Kind.JOB_OVERDUE, recipient="someone@example.com", subject="S", status=status, **extra
    )


def test_staff_admin_browses_read_only(admin_user):
    # admin_user has the admin role and is_staff but is not a superuser: the role grants the access.
    row = make(Status.SENT)
    client = client_for(admin_user)
    assert client.get(URL).status_code == 200
    page = client.get(f"{URL}{row.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.get(f"{URL}add/").status_code == 403
    assert client.post(f"{URL}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Notification.objects.filter(pk=row.pk).exists()


def test_non_admin_staff_is_kept_out():
    client = client_for(UserFactory(role="technician", is_staff=True))
    assert client.get(URL).status_code == 403


def test_retry_action_requeues_failed_rows_only(admin_user, mailoutbox, django_capture_on_commit_callbacks):
    failed = make(Status.FAILED, attempts=6, last_error="SMTP: down")
    sent = make(Status.SENT)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(admin_user).post(
            URL, {"action": "retry_failed", "_selected_action": [failed.pk, sent.pk]}, follow=True
        )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        "Re-queued 1 failed notification(s).",
        "Skipped 1 notification(s) that had not failed.",
    ]
    failed.refresh_from_db()
    # Re-queued on commit and delivered in-process (eager Celery in the test settings).
    assert failed.status == Status.SENT and failed.attempts == 1 and len(mailoutbox) == 1
    assert Notification.objects.get(pk=sent.pk).status == Status.SENT
    entry = AuditEntry.objects.get(action="notification.retried")
    assert (entry.actor_id, entry.object_id, entry.source) == (admin_user.pk, failed.pk, "admin")


def test_retry_action_is_not_offered_to_a_flagged_non_admin():
    # A superuser without the admin role may browse (Django permissions) but not re-queue (is_admin decides).
    root = UserFactory(role="technician", is_staff=True, is_superuser=True)
    failed = make(Status.FAILED)
    client = client_for(root)
    assert client.get(URL).status_code == 200
    client.post(URL, {"action": "retry_failed", "_selected_action": [failed.pk]})
    assert Notification.objects.get(pk=failed.pk).status == Status.FAILED
    assert not AuditEntry.objects.exists()


def test_webhook_endpoints_and_their_deliveries_in_the_admin(admin_user, technician):
    from notifications import webhooks

    endpoint = webhooks.webhook_create(
        actor=admin_user, data={"url": "https://hooks.example.com/x", "events": ["*"], "description": "CRM"}
    )
    delivery_row = make(
        Status.FAILED, channel="webhook", endpoint=endpoint, event_id="evt_1", event_type="job.upserted", payload="{}"
    )
    other = make(Status.SENT)
    client = client_for(admin_user)
    page = client.get("/admin/notifications/webhookendpoint/")
    assert page.status_code == 200 and b"hooks.example.com" in page.content and b"delivery log" in page.content
    detail = client.get(f"/admin/notifications/webhookendpoint/{endpoint.pk}/change/")
    assert detail.status_code == 200 and endpoint.secret.encode() not in detail.content
    assert client.get("/admin/notifications/webhookendpoint/add/").status_code == 403
    log = client.get(URL, {"endpoint__id__exact": endpoint.pk})
    assert log.status_code == 200
    assert f"{URL}{delivery_row.pk}/change/".encode() in log.content
    assert f"{URL}{other.pk}/change/".encode() not in log.content
    assert client_for(UserFactory(role="technician", is_staff=True)).get(
        "/admin/notifications/webhookendpoint/"
    ).status_code in (302, 403)
