"""Django admin for users. Every save, delete and password change goes through ``accounts.services``, so admin
edits are validated and audited (source ``admin``) exactly like API calls; refused changes (the last admin, a user
referenced by jobs) are shown as messages instead of being written.

``is_staff`` and ``is_superuser`` are not editable here: they follow the role (see ``accounts.services``). Groups and
per-user permissions are not used (the role is the permission model), so they are not shown either.

simplejwt's outstanding and blacklisted token admins are unregistered (``jobops.admin_apps``); sessions are ended with
the "Sign out everywhere" action here (``accounts.services.user_sign_out``) instead.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import (
    AdminPasswordChangeForm,
    PasswordChangeForm,
    UserChangeForm,
    UserCreationForm,
    UsernameField,
)
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse

from jobops.admin import SERVICE_ERRORS, ServiceErrorsAsMessages, StaffAdminPermissions, error_message

from . import services
from .models import User

# The acting admin for the password form's save() (the form has no request); a context variable is per request.
_password_actor: ContextVar[Any] = ContextVar("admin_password_actor", default=None)

PROFILE = ("first_name", "last_name", "email", "phone")


class UserAddForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("username", "role", *PROFILE)
        field_classes = {"username": UsernameField}


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = ("username", "role", "is_active", *PROFILE)
        field_classes = {"username": UsernameField}


class PasswordForm(AdminPasswordChangeForm):
    """Sets a password through ``user_update`` (validated and audited); "unusable password" is not offered."""

    def __init__(self, user: User, *args: Any, **kwargs: Any) -> None:
        super().__init__(user, *args, **kwargs)
        self.fields.pop("usable_password", None)
        self.fields["password1"].required = True
        self.fields["password2"].required = True

    def save(self, commit: bool = True) -> User:
        services.user_update(
            actor=_password_actor.get(), user_id=self.user.pk, data={"password": self.cleaned_data["password1"]}
        )
        self.user.refresh_from_db()
        return self.user


class OwnPasswordForm(PasswordChangeForm):
    """The admin site's "change password" page (``/admin/password_change/``): the old password is checked by the form
    and again by ``user_change_password``, which validates, audits and ends the user's other sessions."""

    def save(self, commit: bool = True) -> Any:
        services.user_change_password(
            actor=self.user,
            user_id=self.user.pk,
            old_password=self.cleaned_data["old_password"],
            new_password=self.cleaned_data["new_password1"],
            field="new_password1",
        )
        # The new hash, so the view keeps this browser's session (update_session_auth_hash) and ends the others.
        self.user.refresh_from_db()
        return self.user


admin.site.password_change_form = OwnPasswordForm  # JobOpsAdminSite's hook


@admin.register(User)
class UserAdmin(ServiceErrorsAsMessages, StaffAdminPermissions, DjangoUserAdmin):
    form = UserEditForm
    add_form = UserAddForm
    change_password_form = PasswordForm
    fieldsets = (
        (None, {"fields": ("username", "password", "role", "is_active")}),
        ("Personal info", {"fields": PROFILE}),
        ("Derived from the role", {"fields": ("is_staff", "is_superuser")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "password1", "password2", "role", *PROFILE)}),
    )
    readonly_fields = ("is_staff", "is_superuser", "last_login", "date_joined")
    list_display = ("username", "email", "first_name", "last_name", "role", "is_active")
    list_filter = ("role", "is_active")
    search_fields = ("username", "first_name", "last_name", "email")
    ordering = ("username",)
    filter_horizontal = ()
    actions = ["sign_out_everywhere"]

    def save_model(self, request: HttpRequest, obj: User, form: ModelForm, change: bool) -> None:
        fields: tuple[str, ...]
        if change:
            fields = UserEditForm.Meta.fields
            data = {key: form.cleaned_data[key] for key in fields if key in form.cleaned_data}
            services.user_update(actor=request.user, user_id=obj.pk, data=data)
        else:
            fields = UserAddForm.Meta.fields
            data = {key: form.cleaned_data[key] for key in fields if key in form.cleaned_data}
            data["password"] = form.cleaned_data["password1"]
            created = services.user_create(actor=request.user, data=data)
            obj.pk = created.pk
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool) -> None:
        # No many-to-many fields are editable here (groups and permissions are not used): nothing to save.
        return None

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        services.user_delete(actor=request.user, user_id=obj.pk)

    @admin.action(description="Sign out everywhere (end every session of the selected users)")
    def sign_out_everywhere(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(queryset.values_list("pk", flat=True))
        for pk in users:
            services.user_sign_out(actor=request.user, user_id=pk)
        self.message_user(request, f"Signed out everywhere: {len(users)} user(s).", level=messages.SUCCESS)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        refused = []
        for pk, username in queryset.values_list("pk", "username"):
            try:
                services.user_delete(actor=request.user, user_id=pk)
            except SERVICE_ERRORS as exc:
                refused.append(f"{username} ({error_message(exc)})")
        if refused:
            self.message_user(request, f"Not deleted: {'; '.join(refused)}", level=messages.WARNING)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        token = _password_actor.set(request.user)
        try:
            return self._guarded(request, super().user_change_password, id, form_url)
        finally:
            _password_actor.reset(token)
