"""Django admin for the equipment catalogue. Every save and delete goes through ``equipment.services``, so admin
edits are validated and audited (source ``admin``) exactly like API calls; refused changes (equipment used by tasks)
are shown as messages instead of being written."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from jobops.admin import SERVICE_ERRORS, ServiceErrorsAsMessages, StaffAdminPermissions, error_message

from . import services
from .models import Equipment


class EquipmentForm(ModelForm):
    class Meta:
        model = Equipment
        fields = services.FIELDS


@admin.register(Equipment)
class EquipmentAdmin(ServiceErrorsAsMessages, StaffAdminPermissions, admin.ModelAdmin):
    form = EquipmentForm
    fields = (*services.FIELDS, "created_at", "updated_at")
    readonly_fields = ("created_at", "updated_at")
    list_display = ("name", "type", "serial_number", "is_active", "updated_at")
    list_filter = ("type", "is_active")
    search_fields = ("name", "serial_number", "description")
    ordering = ("name", "id")
    actions = ["deactivate"]

    def _data(self, form: ModelForm) -> dict[str, Any]:
        return {key: form.cleaned_data[key] for key in services.FIELDS if key in form.cleaned_data}

    def save_model(self, request: HttpRequest, obj: Equipment, form: ModelForm, change: bool) -> None:
        if change:
            services.equipment_update(actor=request.user, equipment_id=obj.pk, data=self._data(form))
        else:
            obj.pk = services.equipment_create(actor=request.user, data=self._data(form)).pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Equipment) -> None:
        services.equipment_delete(actor=request.user, equipment_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Equipment]) -> None:
        refused = []
        for pk, name in queryset.values_list("pk", "name"):
            try:
                services.equipment_delete(actor=request.user, equipment_id=pk)
            except SERVICE_ERRORS as exc:
                refused.append(f"{name} ({error_message(exc)})")
        if refused:
            self.message_user(request, f"Not deleted: {'; '.join(refused)}", level=messages.WARNING)

    @admin.action(description="Deactivate selected equipment")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Equipment]) -> None:
        changed = 0
        for pk in queryset.filter(is_active=True).values_list("pk", flat=True):
            services.equipment_update(actor=request.user, equipment_id=pk, data={"is_active": False})
            changed += 1
        self.message_user(request, f"Deactivated {changed} item(s).")
