"""Shapes of users, the own profile and the auth endpoints. Read serializers render; write serializers validate
input and never save (``accounts.services`` does).

Read-only fields (``role`` and ``is_active`` on the own profile, ids, timestamps) are absent from the write
serializers, so a client that sends them has them ignored, never applied.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from django.conf import settings
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from jobops.fields import ReadModelSerializer, StrictBooleanField, StrictCharField, StrictEmailField, Text

from .models import User, UsernameValidator

#: Long enough for any passphrase, short enough that hashing a request body cannot be used to burn CPU.
PASSWORD_MAX_LENGTH = 1024


def _password_field(**kwargs: Any) -> StrictCharField:
    # A secret is compared as sent: any character but NUL, nothing trimmed.
    return StrictCharField(
        write_only=True,
        text=Text.ANY,
        trim_whitespace=False,
        max_length=PASSWORD_MAX_LENGTH,
        style={"input_type": "password"},
        **kwargs,
    )


# --- users -------------------------------------------------------------------------------------------------------


#: Rendered as a plain string: the address may be empty, which a strict ``format: email`` would reject.
_EMAIL_OUT: dict[str, Any] = {"read_only": True, "help_text": "E-mail address (may be empty)."}


class UserReadSerializer(ReadModelSerializer):
    """A user as admins see it."""

    email = serializers.CharField(**_EMAIL_OUT)

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "phone",
            "role",
            "is_active",
            "date_joined",
            "last_login",
        ]
        read_only_fields = fields


class UserPublicSerializer(ReadModelSerializer):
    """A technician as sales agents see them when assigning jobs: public fields only."""

    class Meta:
        model = User
        fields = ["id", "username", "first_name", "last_name"]
        read_only_fields = fields


class UserListItemSerializer(serializers.Serializer):
    """A user as listed or retrieved. Admins get every field; sales agents get only the public ones (`id`,
    `username`, `first_name`, `last_name`) of active technicians."""

    # Used for the OpenAPI description only (the views render UserReadSerializer or UserPublicSerializer).

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    first_name = serializers.CharField(read_only=True)
    last_name = serializers.CharField(read_only=True)
    email = serializers.CharField(required=False, help_text="Admins only. E-mail address (may be empty).")
    phone = serializers.CharField(required=False, help_text="Admins only.")
    role = serializers.ChoiceField(choices=User.Role.choices, required=False, help_text="Admins only.")
    is_active = serializers.BooleanField(required=False, help_text="Admins only.")
    date_joined = serializers.DateTimeField(required=False, help_text="Admins only.")
    last_login = serializers.DateTimeField(required=False, allow_null=True, help_text="Admins only.")


class PhoneField(StrictCharField):
    """A phone number for SMS: parsed with ``phonenumbers`` (Google's libphonenumber metadata), stored in E.164
    (``+14155550123``). International form (``+`` and country code) unless ``PHONE_DEFAULT_REGION`` is set; blank
    clears it."""

    default_error_messages = {
        "phone": "Enter a valid phone number in international form, e.g. +14155550123.",
    }

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        if not text.strip():
            return ""
        try:
            number = phonenumbers.parse(text, settings.PHONE_DEFAULT_REGION or None)
        except phonenumbers.NumberParseException:
            self.fail("phone")
        if not phonenumbers.is_valid_number(number):
            self.fail("phone")
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


class _NewUsernameValidator(UsernameValidator):
    """The model's username rule (published as the field's ``pattern``) for a name being set. A user's current name
    passes unchanged: one chosen before the rule was ASCII-only (Django's default allowed any Unicode letter) still
    round-trips in a whole-profile PATCH, and is checked once it changes (``accounts.services`` validates only
    changed fields)."""

    requires_context = True

    def __call__(self, value: Any, field: serializers.Field | None = None) -> None:
        instance = getattr(getattr(field, "parent", None), "instance", None)
        if isinstance(instance, User) and value == instance.username:
            return
        super().__call__(value)


class _UserWriteBase(serializers.ModelSerializer):
    username = StrictCharField(
        max_length=150,
        validators=[
            _NewUsernameValidator(),
            UniqueValidator(queryset=User.objects.all(), message="A user with that username already exists."),
        ],
    )
    email = StrictEmailField(required=False, allow_blank=True, max_length=254)
    first_name = StrictCharField(required=False, allow_blank=True, max_length=150)
    last_name = StrictCharField(required=False, allow_blank=True, max_length=150)
    phone = PhoneField(required=False, allow_blank=True, max_length=32)
    role = serializers.ChoiceField(choices=User.Role.choices, required=False)
    is_active = StrictBooleanField(required=False)


class UserCreateSerializer(_UserWriteBase):
    """Admin creates a user. ``password`` is checked against Django's password validators by the service."""

    password = _password_field()

    class Meta:
        model = User
        fields = ["username", "password", "email", "first_name", "last_name", "phone", "role", "is_active"]


class UserUpdateSerializer(_UserWriteBase):
    """Admin changes a user. A ``password`` here sets a new one (for the admin's own account, use
    ``/api/auth/me/password/``, which asks for the old one)."""

    password = _password_field(required=False)

    class Meta:
        model = User
        fields = ["username", "password", "email", "first_name", "last_name", "phone", "role", "is_active"]


# --- own profile -------------------------------------------------------------------------------------------------


class MeSerializer(ReadModelSerializer):
    email = serializers.CharField(**_EMAIL_OUT)

    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name", "phone", "role"]
        read_only_fields = fields


class MeUpdateSerializer(_UserWriteBase):
    """The own profile's editable fields; ``role`` and ``is_active`` are not among them (ignored if sent)."""

    role = None  # type: ignore[assignment]
    is_active = None  # type: ignore[assignment]

    class Meta:
        model = User
        fields = ["username", "email", "first_name", "last_name", "phone"]


class PasswordChangeSerializer(serializers.Serializer):
    old_password = _password_field()
    new_password = _password_field()


# --- tokens ------------------------------------------------------------------------------------------------------


class TokenObtainSerializer(serializers.Serializer):
    username = StrictCharField(write_only=True, max_length=150, trim_whitespace=False)
    password = _password_field()


class TokenRefreshSerializer(serializers.Serializer):
    refresh = StrictCharField(write_only=True, max_length=4096, text=Text.ANY)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(read_only=True, help_text="Access JWT: send as `Authorization: Bearer <access>`.")
    refresh = serializers.CharField(read_only=True, help_text="Refresh JWT: single use, rotated on refresh.")
