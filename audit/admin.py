"""Read-only Django admin for the audit trail: no add, change or delete, for anyone (superusers included).

Staff users with the ``admin`` role may browse it (as they may read ``/api/audit/``), as may anyone holding the
``audit.view_auditentry`` permission. The changelist skips the full-table count, which would be slow on a large
trail, and only offers filters that need no query over the table.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from jobops.admin import StaffAdminPermissions

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(StaffAdminPermissions, admin.ModelAdmin):
    list_display = ("at", "actor_label", "action", "object_type", "object_id", "object_repr", "job_id", "source")
    list_filter = ("source",)
    search_fields = ("=action", "=object_type", "=request_id", "actor_label", "object_repr")
    ordering = ("-at", "-id")
    show_full_result_count = False
    list_per_page = 50
    fields = (
        "at",
        "actor_id",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "job_id",
        "changes",
        "request_id",
        "source",
    )
    readonly_fields = fields
    actions = None

    # Viewing follows StaffAdminPermissions (staff admins, or the Django view permission); writing is nobody's.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
