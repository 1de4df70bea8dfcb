"""A job's attachments in the Django admin: read-only, with thumbnails, deletable by admins only (through
``services.attachment_delete``, so an admin delete is locked, audited, in the feed and removes the objects)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.html import format_html

from accounts.authentication import request_user
from jobops.admin import is_staff_admin
from jobs.models import Attachment

from . import content, services, signing

FIELDS = ("preview", "task", "kind", "caption", "content_type", "size", "width", "height", "uploaded_by", "uploaded_at")


class AttachmentInline(admin.TabularInline):
    model = Attachment
    fk_name = "job"
    extra = 0
    fields = FIELDS
    readonly_fields = FIELDS
    ordering = ("uploaded_at", "id")
    verbose_name_plural = "attachments (read-only; admins may delete)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # uploads come from the API (the bytes are checked and cleaned there)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_staff_admin(request)

    @admin.display(description="preview")
    def preview(self, obj: Attachment) -> str:
        if obj.pk is None:
            return ""
        link = signing.signed_path(obj.pk, signing.CONTENT)
        if obj.content_type in content.IMAGE_TYPES and obj.thumbnail_key:
            thumb = signing.signed_path(obj.pk, signing.THUMBNAIL)
            return format_html(
                '<a href="{}" target="_blank"><img src="{}" alt="" style="max-height:80px"></a>', link, thumb
            )
        return format_html('<a href="{}" target="_blank">open</a>', link)


def save_attachment_formset(request: HttpRequest, formset: BaseInlineFormSet) -> None:
    """The inline's only write: the rows an admin ticked for deletion, each through the service."""
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    for inline_form in formset.deleted_forms:
        if inline_form.instance.pk:
            services.attachment_delete(actor=request_user(request), attachment_id=inline_form.instance.pk)
            formset.deleted_objects.append(inline_form.instance)
