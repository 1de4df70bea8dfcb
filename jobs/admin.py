"""Django admin for jobs, with their ordered tasks inline. Every save goes through ``jobs.services``, so admin edits
are validated, locked and audited (source ``admin``) exactly like API calls; business-rule conflicts are shown as
messages (``jobops.admin.ServiceErrorsAsMessages``: the whole admin request rolls back) instead of being written."""

from __future__ import annotations

from typing import Any, TypeGuard

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest

from accounts.authentication import request_user
from jobops.admin import SERVICE_ERRORS, ServiceErrorsAsMessages, StaffAdminPermissions, error_message
from jobops.exceptions import ApplicationError

from . import rules, services
from .attachments.admin import AttachmentInline, save_attachment_formset
from .models import Attachment, Job, JobTask

#: The reason a completed or cancelled job is shown read-only (the services would refuse the save with a 409).
FROZEN_REASON = (
    "This job is {status}, so it and its tasks are read-only (a completed or cancelled job is frozen). "
    "An admin can reopen it with POST /api/jobs/{pk}/reopen/; then it can be edited again."
)


def _frozen(obj: Any) -> TypeGuard[Job]:
    return isinstance(obj, Job) and rules.is_frozen(obj)


class JobTaskInline(admin.TabularInline):
    model = JobTask
    extra = 0
    ordering = ("order",)
    fields = ("order", "title", "description", "status", "required_equipment", "started_at", "completed_at")
    # Tasks move only through the reorder endpoint (it keeps started tasks first); new ones are appended.
    readonly_fields = ("order", "status", "started_at", "completed_at")
    # Compact cells, so the table fits a 1366 px screen: Django's defaults are a 40x10 textarea and a tall list.
    formfield_overrides = {
        models.CharField: {"widget": forms.TextInput(attrs={"size": 22})},
        models.TextField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 28})},
        models.ManyToManyField: {"widget": forms.SelectMultiple(attrs={"size": 3, "style": "max-width: 15em"})},
    }

    # A frozen job's tasks cannot be added, changed or deleted: show them as text, not as a form that fails.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _frozen(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _frozen(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _frozen(obj) and super().has_delete_permission(request, obj)


class JobAdminForm(ModelForm):
    class Meta:
        model = Job
        fields = (
            "title",
            "description",
            "client_name",
            "priority",
            "scheduled_date",
            "assigned_to",
            "requires_signature",
        )
        widgets = {"description": forms.Textarea(attrs={"rows": 4, "cols": 60})}


@admin.register(Job)
class JobAdmin(ServiceErrorsAsMessages, StaffAdminPermissions, admin.ModelAdmin):
    form = JobAdminForm
    inlines = [JobTaskInline, AttachmentInline]
    list_display = ("id", "title", "client_name", "status", "priority", "scheduled_date", "overdue", "assigned_to")
    list_filter = ("status", "priority", "overdue", "scheduled_date")
    search_fields = ("title", "client_name")
    list_select_related = ("assigned_to", "created_by")
    readonly_fields = ("status", "overdue", "created_by", "created_at", "updated_at", "completed_at")
    date_hierarchy = "scheduled_date"
    actions = ["cancel_jobs"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*JobAdminForm.Meta.fields, *self.readonly_fields]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A completed or cancelled job is frozen (jobs.rules): Django shows it read-only instead of a form whose
        # save the services refuse (and whose typing would be lost); the reason is a message on the page.
        return not _frozen(obj) and super().has_change_permission(request, obj)

    # The jobs pages need the width (the task table, the list's columns): no app sidebar on them.
    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        return super().changelist_view(request, {"is_nav_sidebar_enabled": False, **(extra_context or {})})

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        if object_id is not None and request.method == "GET":
            job = self.get_object(request, object_id)
            if _frozen(job):
                self.message_user(
                    request, FROZEN_REASON.format(status=job.get_status_display().lower(), pk=job.pk), messages.INFO
                )
        context = {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changeform_view(request, object_id, form_url, context)

    def _data(self, form: ModelForm) -> dict[str, Any]:
        return {key: form.cleaned_data[key] for key in JobAdminForm.Meta.fields if key in form.cleaned_data}

    def save_model(self, request: HttpRequest, obj: Job, form: ModelForm, change: bool) -> None:
        if change:
            services.job_update(actor=request_user(request), job_id=obj.pk, data=self._data(form))
        else:
            created = services.job_create(actor=request_user(request), data=self._data(form))
            obj.pk = created.pk
            obj.created_by = created.created_by
        obj.refresh_from_db()

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: BaseInlineFormSet, change: bool) -> None:
        if formset.model is Attachment:
            save_attachment_formset(request, formset)
            return
        job = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.deleted_forms:
            if inline_form.instance.pk:
                services.task_delete(actor=request_user(request), task_id=inline_form.instance.pk)
                formset.deleted_objects.append(inline_form.instance)
        for inline_form in formset.forms:
            if not inline_form.has_changed() or inline_form in formset.deleted_forms:
                continue
            data = {key: inline_form.cleaned_data.get(key) for key in ("title", "description")}
            data["required_equipment"] = list(inline_form.cleaned_data.get("required_equipment") or [])
            if inline_form.instance.pk:
                task = services.task_update(actor=request_user(request), task_id=inline_form.instance.pk, data=data)
                formset.changed_objects.append((task, inline_form.changed_data))
            else:
                formset.new_objects.append(services.task_add(actor=request_user(request), job_id=job.pk, data=data))

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        services.job_delete(actor=request_user(request), job_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        refused = []
        for pk in queryset.values_list("pk", flat=True):
            try:
                services.job_delete(actor=request_user(request), job_id=pk)
            except SERVICE_ERRORS as exc:
                refused.append(f"#{pk} ({error_message(exc)})")
        if refused:
            self.message_user(request, f"Not deleted: {'; '.join(refused)}", level=messages.WARNING)

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done, refused = 0, 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                services.job_cancel(actor=request_user(request), job_id=pk)
                done += 1
            except ApplicationError:
                refused += 1
        self.message_user(request, f"Cancelled {done} job(s); {refused} could not be cancelled.")
