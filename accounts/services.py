"""Every write to users and to their JWT sessions.

User changes run in one transaction each: the user row is locked, the change validated (Django's password
validators included), saved and audited with ``audit_record`` in the same transaction. Only admins manage users
(``jobops.roles.is_admin``: an active user with the admin role; ``createsuperuser`` makes one); anyone may edit their
own profile fields and change their own password (knowing the old one).

Invariants kept here:
- ``is_staff`` and ``is_superuser`` follow the role: set for ``admin``, cleared for other roles, whenever a user is
  created or their role changes, so admins can use ``/admin/`` and nobody else can;
- there is always at least one active admin: demoting, deactivating or deleting the last one is a 409;
- a user referenced by a job (assignee or creator) is never deleted (409: deactivate instead); the jobs' PROTECT
  foreign keys decide it, so this app needs no knowledge of the apps that reference users;
- a user's sessions end together: "sign out everywhere" (``user_sign_out``), a password change and a deactivation
  move ``tokens_valid_after`` to now, so every access and refresh token issued before it is a 401 (authentication
  compares it with the token's ``iat`` on the row it reads anyway), and blacklist the outstanding refresh tokens; a
  later reactivation revives no old session;
- no password or hash ever reaches the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth import authenticate, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from audit.services import audit_diff, audit_record, audit_snapshot
from jobops.exceptions import ApplicationError, InUse
from jobops.roles import Role, is_admin

from .models import User
from .tokens import RefreshToken, token_is_revoked

#: Fields every user may change on their own profile (``PATCH /api/auth/me/``).
PROFILE_FIELDS = ("username", "email", "first_name", "last_name", "phone")
#: Fields an admin may set on any user (the password goes through ``user_change_password``).
ADMIN_FIELDS = (*PROFILE_FIELDS, "role", "is_active")
AUDIT_FIELDS = (*ADMIN_FIELDS, "is_staff", "is_superuser")

#: The same answer for an unknown username, a wrong password and an inactive account: no enumeration.
BAD_CREDENTIALS = "No active account found with the given credentials."


class LastAdmin(ApplicationError):
    default_code = "last_admin"


# --- helpers -----------------------------------------------------------------------------------------------------


def _ensure_admin(actor: Any) -> None:
    if not is_admin(actor):
        raise PermissionDenied("Only an admin may manage users.")


def _lock_user(user_id: int) -> User:
    try:
        return User.objects.select_for_update().get(pk=user_id)
    except User.DoesNotExist:
        raise ValidationError({"user": ["This user no longer exists."]}) from None


def _apply_role_flags(user: User) -> None:
    # Admin site access follows the role (STYLE: the role is the permission model; groups are not used).
    has_admin_role = user.role == Role.ADMIN
    user.is_staff = has_admin_role
    user.is_superuser = has_admin_role


def _ensure_other_active_admin(user: User) -> None:
    """Refuse a change that would leave no active admin (locks the other admins' rows, so two admins demoting
    each other at the same moment cannot both succeed)."""
    others = list(
        User.objects.select_for_update()
        .filter(role=Role.ADMIN, is_active=True)
        .exclude(pk=user.pk)
        .values_list("pk", flat=True)[:1]
    )
    if not others:
        raise LastAdmin("This is the last active admin; make another user an admin first.")


def _validate_password(password: Any, user: User, field: str) -> None:
    if not isinstance(password, str) or not password:
        raise ValidationError({field: ["This field is required."]})
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from None


def _ensure_username_distinct(user: User) -> None:
    """Refuse a username that differs from another user's only by case, after the NFKC normalisation that
    ``full_clean`` applies: ``ADMIN`` or ``ａｄｍｉｎ`` next to ``admin`` would be look-alikes in the audit trail."""
    if User.objects.filter(username__iexact=user.username).exclude(pk=user.pk).exists():
        raise ValidationError({"username": ["A user with that username already exists."]})


def _full_clean(user: User, fields: list[str] | None = None) -> None:
    exclude = None
    if fields is not None:
        exclude = [f.name for f in User._meta.concrete_fields if f.name not in fields]
    user.full_clean(exclude=exclude, validate_constraints=False)


def _revoke_refresh_tokens(user: User) -> int:
    """Blacklist every outstanding, unexpired refresh token of ``user``; returns how many."""
    pending = OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True)
    rows = [BlacklistedToken(token=token) for token in pending.only("pk")]
    BlacklistedToken.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _end_sessions(user: User) -> str:
    """End every session of ``user`` (the caller saves ``tokens_valid_after``, the returned field, with its change)."""
    user.tokens_valid_after = timezone.now()
    _revoke_refresh_tokens(user)
    return "tokens_valid_after"


# --- users -------------------------------------------------------------------------------------------------------


@transaction.atomic
def user_create(*, actor: Any, data: Mapping[str, Any]) -> User:
    """Create a user (admin only) with ``username``, ``password`` and optional profile fields, ``role`` (default
    technician) and ``is_active`` (default true).

    The password must pass Django's password validators (400 with a ``password`` field error). ``is_staff`` and
    ``is_superuser`` are derived from the role. Writes one ``user.created`` entry (without the password).
    """
    _ensure_admin(actor)
    fields = {key: data[key] for key in ADMIN_FIELDS if key in data}
    user = User(**fields)
    _apply_role_flags(user)
    _validate_password(data.get("password"), user, "password")
    user.set_password(data["password"])
    _full_clean(user)
    _ensure_username_distinct(user)
    try:
        with transaction.atomic():
            user.save(force_insert=True)
    except IntegrityError:
        # Lost a race with another create of the same username (full_clean checked it a moment ago).
        raise ValidationError({"username": ["A user with that username already exists."]}) from None
    audit_record(
        actor=actor,
        action="user.created",
        obj=user,
        changes={key: [None, value] for key, value in audit_snapshot(user, AUDIT_FIELDS).items()},
    )
    return user


@transaction.atomic
def user_update(*, actor: Any, user_id: int, data: Mapping[str, Any]) -> User:
    """Change a user's fields. Admins may change any user's profile fields, ``role``, ``is_active`` and (for other
    users) ``password``; any other user may change only their own profile fields (``PROFILE_FIELDS``).

    Audited as separate entries by kind of change: ``user.role_changed`` (with the derived ``is_staff`` and
    ``is_superuser``), ``user.deactivated`` / ``user.activated``, ``user.password_changed`` and ``user.updated`` for
    other fields; a request that changes nothing writes nothing. Demoting or deactivating the last active admin is a
    409 (``last_admin``). Deactivation revokes the user's refresh tokens.
    """
    actor_is_admin = is_admin(actor)
    is_self = getattr(actor, "pk", None) == user_id
    if not actor_is_admin and not is_self:
        raise PermissionDenied("Only an admin may change other users.")
    allowed = ADMIN_FIELDS if actor_is_admin else PROFILE_FIELDS
    forbidden = sorted(key for key in data if key in (*ADMIN_FIELDS, "password") and key not in allowed)
    if "password" in data and actor_is_admin and not is_self:
        forbidden.remove("password")
    if forbidden:
        if forbidden == ["password"] and is_self:
            raise ValidationError(
                {"password": ["Change your own password with your old one (/api/auth/me/password/)."]}
            )
        raise PermissionDenied(f"Only an admin may change: {', '.join(forbidden)}.")

    user = _lock_user(user_id)
    before = audit_snapshot(user, AUDIT_FIELDS)
    for key in allowed:
        if key in data:
            setattr(user, key, data[key])
    if user.role != before["role"]:
        _apply_role_flags(user)
    after = audit_snapshot(user, AUDIT_FIELDS)
    changes = audit_diff(before, after)
    new_password = data.get("password")
    if not changes and new_password is None:
        return user

    losing_admin = before["role"] == Role.ADMIN and before["is_active"]
    if losing_admin and (user.role != Role.ADMIN or not user.is_active):
        _ensure_other_active_admin(user)

    update_fields = list(changes)
    if changes:
        _full_clean(user, update_fields)
    if "username" in changes:
        _ensure_username_distinct(user)
    if new_password is not None:
        _validate_password(new_password, user, "password")
        user.set_password(new_password)
        update_fields.append("password")
    if new_password is not None or ("is_active" in changes and not user.is_active):
        # A new password or a deactivation ends every session, access tokens included (reactivation revives none).
        update_fields.append(_end_sessions(user))
    try:
        with transaction.atomic():
            user.save(update_fields=update_fields)
    except IntegrityError:
        raise ValidationError({"username": ["A user with that username already exists."]}) from None

    role_changes = {key: changes.pop(key) for key in ("role", "is_staff", "is_superuser") if key in changes}
    active_change = changes.pop("is_active", None)
    if role_changes:
        audit_record(actor=actor, action="user.role_changed", obj=user, changes=role_changes)
    if active_change is not None:
        action = "user.activated" if user.is_active else "user.deactivated"
        audit_record(actor=actor, action=action, obj=user, changes={"is_active": active_change})
    if changes:
        audit_record(actor=actor, action="user.updated", obj=user, changes=changes)
    if new_password is not None:
        audit_record(actor=actor, action="user.password_changed", obj=user, changes={})
    return user


@transaction.atomic
def user_delete(*, actor: Any, user_id: int) -> None:
    """Delete a user (admin only). A user referenced by any job, as assignee or creator, cannot be deleted (409
    ``in_use``: deactivate instead), nor can the last active admin (409 ``last_admin``). Writes ``user.deleted``
    with the user's last state; audit rows that name the user stay (they hold plain ids)."""
    _ensure_admin(actor)
    # FOR UPDATE conflicts with the key-share lock a concurrent job insert takes on this row, so the delete below
    # cannot be overtaken by a new job that references the user (that insert waits, then fails on the foreign key).
    user = _lock_user(user_id)
    if user.role == Role.ADMIN and user.is_active:
        _ensure_other_active_admin(user)
    snapshot = audit_snapshot(user, AUDIT_FIELDS)
    audit_record(
        actor=actor, action="user.deleted", obj=user, changes={key: [value, None] for key, value in snapshot.items()}
    )
    try:
        with transaction.atomic():
            user.delete()
    except (ProtectedError, RestrictedError):
        # Jobs reference their assignee and creator with PROTECT: Django's delete collector refuses before any
        # row is deleted. The outer transaction rolls back the audit entry written above.
        raise InUse("This user is referenced by jobs; deactivate the user instead.") from None
    except IntegrityError:
        raise InUse("This user is referenced by other records; deactivate the user instead.") from None


@transaction.atomic
def user_change_password(
    *,
    actor: Any,
    user_id: int,
    new_password: Any,
    old_password: Any | None = None,
    field: str = "new_password",
    operator: bool = False,
) -> User:
    """Set a user's password. Users changing their own password must give the right ``old_password`` (400
    ``old_password`` otherwise), so a stolen access token cannot take over the account; an admin may set another
    user's password without it, and so may an ``operator`` (``manage.py changepassword``: someone with a shell on the
    server, ``actor=None``). The new password must pass Django's validators (400 on ``field``).

    Every password change in JobOps ends here (the API, the admin's pages, the command) or in ``user_update`` for an
    admin setting another user's password. Writes ``user.password_changed`` with no values at all (never a hash).
    """
    is_self = actor is not None and getattr(actor, "pk", None) == user_id
    if not is_self and not (operator and actor is None):
        _ensure_admin(actor)
    user = _lock_user(user_id)
    if is_self and not (isinstance(old_password, str) and user.check_password(old_password)):
        raise ValidationError({"old_password": ["Your old password was entered incorrectly."]})
    _validate_password(new_password, user, field)
    user.set_password(new_password)
    # A new password ends every existing session: a leaked token must not outlive the change.
    user.save(update_fields=["password", _end_sessions(user)])
    audit_record(actor=actor, action="user.password_changed", obj=user, changes={})
    return user


@transaction.atomic
def user_sign_out(*, actor: Any, user_id: int) -> User:
    """Sign a user out everywhere: every access and refresh token issued until now is refused from now on. Users may
    sign themselves out (``POST /api/auth/logout/all/``); admins may sign out anyone
    (``POST /api/users/{id}/sign-out/``). Writes ``user.signed_out``."""
    if getattr(actor, "pk", None) != user_id:
        _ensure_admin(actor)
    user = _lock_user(user_id)
    user.save(update_fields=[_end_sessions(user)])
    audit_record(actor=actor, action="user.signed_out", obj=user, changes={})
    return user


# --- tokens ------------------------------------------------------------------------------------------------------


def token_obtain_pair(*, username: str, password: str, request: HttpRequest | None = None) -> dict[str, str]:
    """Log in: a new ``{access, refresh}`` pair for an active user with these credentials.

    An unknown username, a wrong password and an inactive account all give the same 401 (Django's ModelBackend
    also runs the hasher for unknown usernames, so the timing does not tell them apart either).
    """
    # The identity the admin login form authenticates too (its UsernameField strips and applies NFKC): one account,
    # one spelling, whichever door is used (and ``jobops.throttles.login_identity`` keys the buckets on it).
    username = User.normalize_username(username.strip())
    user = authenticate(request, username=username, password=password)
    if user is None or not jwt_settings.USER_AUTHENTICATION_RULE(user):
        raise AuthenticationFailed(BAD_CREDENTIALS, code="no_active_account")
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _parse_refresh(raw: str) -> RefreshToken:
    try:
        # Verifies signature, expiry, token type and the blacklist.
        # simplejwt annotates the argument as ``Token``; it takes the encoded token string (as its own views pass).
        return RefreshToken(raw)  # type: ignore[arg-type]
    except TokenError as exc:
        raise InvalidToken(exc.args[0]) from exc


def _blacklist_once(token: RefreshToken) -> None:
    """Blacklist ``token``; a token that is already blacklisted (by a concurrent refresh or logout that got there
    first) is a 401. The one-to-one constraint on the blacklist decides the race, so a refresh token is used at
    most once even when two requests present it at the same time."""
    jti = token[jwt_settings.JTI_CLAIM]
    outstanding, _created = OutstandingToken.objects.get_or_create(
        jti=jti,
        defaults={
            "user_id": _token_user_id(token),
            "created_at": timezone.now(),
            "token": str(token),
            "expires_at": datetime_from_epoch(token["exp"]),
        },
    )
    try:
        with transaction.atomic():
            BlacklistedToken.objects.create(token=outstanding)
    except IntegrityError:
        raise InvalidToken("Token is blacklisted") from None


def _token_user_id(token: RefreshToken) -> int | None:
    raw = token.payload.get(jwt_settings.USER_ID_CLAIM)
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


@transaction.atomic
def token_refresh(*, refresh: str) -> dict[str, str]:
    """Rotate a refresh token: the presented one is blacklisted and a new ``{access, refresh}`` pair returned.

    A used, logged-out, expired or forged refresh token is a 401, as is one whose user was deleted or deactivated.
    """
    token = _parse_refresh(refresh)
    user_id = _token_user_id(token)
    user = User.objects.filter(pk=user_id).first() if user_id is not None else None
    if user is None or not jwt_settings.USER_AUTHENTICATION_RULE(user):
        raise AuthenticationFailed("No active account found for the given token.", code="no_active_account")
    if token_is_revoked(user, token.payload.get("iat")):
        raise InvalidToken("Token has been revoked.")
    _blacklist_once(token)
    token.set_jti()
    token.set_exp()
    token.set_iat()
    token.outstand()
    return {"access": str(token.access_token), "refresh": str(token)}


@transaction.atomic
def token_revoke(*, refresh: str) -> None:
    """Log out: blacklist a refresh token so it can never be used again (401 if it is already unusable). The
    refresh token is the credential here; no access token is needed."""
    _blacklist_once(_parse_refresh(refresh))
