"""Read-only Django admin for the outbox (every channel) and the webhook endpoints, with a "retry" action for
failed rows (through the service).

Staff users with the admin role may browse it (as they may read ``/api/notifications/``) and retry failed rows.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from jobops.admin import StaffAdminPermissions
from jobops.exceptions import ApplicationError
from jobops.roles import is_admin

from . import delivery, webhooks
from .models import Notification, WebhookEndpoint


@admin.register(Notification)
class NotificationAdmin(StaffAdminPermissions, admin.ModelAdmin):
    list_display = ("id", "created_at", "channel", "kind", "recipient", "job_id", "status", "attempts", "sent_at")
    list_filter = ("channel", "status", "kind")
    search_fields = ("=recipient", "=job__id", "subject", "=event_id")
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    list_per_page = 50
    actions = ["retry_failed"]
    readonly_fields = (
        "channel",
        "kind",
        "recipient",
        "recipient_user",
        "job",
        "subject",
        "context",
        "dedupe_key",
        "endpoint",
        "event_id",
        "event_type",
        "payload",
        "last_status_code",
        "status",
        "attempts",
        "last_error",
        "next_attempt_at",
        "created_at",
        "sent_at",
    )

    # Viewing follows StaffAdminPermissions (staff admins, or the Django view permission); only ``retry`` writes.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # Re-queueing is a write: only staff users with the admin role (as for POST .../retry/ in the API).
        return is_admin(request.user) and self.has_view_permission(request)

    @admin.action(description="Retry the selected failed notifications", permissions=["retry"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        retried = skipped = 0
        # The request middleware already marks admin requests as source "admin" for the audit entries.
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                delivery.notification_retry(actor=request.user, notification_id=pk)
            except ApplicationError:
                skipped += 1
            else:
                retried += 1
        if retried:
            self.message_user(request, f"Re-queued {retried} failed notification(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped} notification(s) that had not failed.", messages.WARNING)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(StaffAdminPermissions, admin.ModelAdmin):
    """Webhook endpoints, read-only here: they are written through ``/api/webhooks/`` (the SSRF check, the secret
    shown once, the audit trail). Each row links to its deliveries in the outbox; "send a ping" queues one."""

    list_display = ("id", "url", "is_active", "events", "description", "created_at", "failing_since", "deliveries")
    list_filter = ("is_active",)
    search_fields = ("url", "description")
    ordering = ("id",)
    actions = ["send_ping"]
    fields = (
        "url",
        "events",
        "description",
        "is_active",
        "disabled_reason",
        "failing_since",
        "previous_secret_expires_at",
        "created_by",
        "created_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_ping_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user) and self.has_view_permission(request)

    @admin.display(description="Deliveries")
    def deliveries(self, obj: WebhookEndpoint) -> str:
        url = reverse("admin:notifications_notification_changelist")
        return format_html('<a href="{}?endpoint__id__exact={}">delivery log</a>', url, obj.pk)

    @admin.action(description="Send a webhook.ping to the selected endpoints", permissions=["ping"])
    def send_ping(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = 0
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            webhooks.webhook_ping(actor=request.user, endpoint_id=pk)
            count += 1
        self.message_user(request, f"Queued {count} ping(s).", messages.SUCCESS)
