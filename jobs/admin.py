"""Django admin for jobs, with their ordered tasks inline. Every save goes through ``jobs.services``, so admin edits
are validated, locked and audited (source ``admin``) exactly like API calls; business-rule conflicts are shown as
messages (``jobops.admin.ServiceErrorsAsMessages``: the whole admin request rolls back) instead of being written."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest

from accounts.authentication import request_user
from jobops.admin import SERVICE_ERRORS, ServiceErrorsAsMessages, StaffAdminPermissions, error_message
from jobops.exceptions import ApplicationError

from . import services
from .attachments.admin import AttachmentInline, save_attachment_formset
from .models import Attachment, Job, JobTask


class JobTaskInline(admin.TabularInline):
    model = JobTask
    extra = 0
    ordering = ("order",)
    fields = ("order", "title", "description", "status", "required_equipment", "started_at", "completed_at")
    # Tasks move only through the reorder endpoint (it keeps started tasks first); new ones are appended.
    readonly_fields = ("order", "status", "started_at", "completed_at")


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
