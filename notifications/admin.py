"""Read-only Django admin for the email outbox, with a "retry" action for failed rows (through the service).

Staff users with the admin role may browse it (as they may read ``/api/notifications/``) and retry failed rows.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobops.admin import StaffAdminPermissions
from jobops.exceptions import ApplicationError
from jobops.roles import is_admin

from . import delivery
from .models import Notification


@admin.register(Notification)
class NotificationAdmin(StaffAdminPermissions, admin.ModelAdmin):
    list_display = ("id", "created_at", "kind", "recipient", "job_id", "status", "attempts", "sent_at")
    list_filter = ("status", "kind")
    search_fields = ("=recipient", "=job__id", "subject")
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    list_per_page = 50
    actions = ["retry_failed"]
    readonly_fields = (
        "kind",
        "recipient",
        "recipient_user",
        "job",
        "subject",
        "context",
        "dedupe_key",
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
