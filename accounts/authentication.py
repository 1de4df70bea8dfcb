"""JWT authentication whose per-request user lookup skips the ORM's query compiler.

Every API request loads its user row: the contract wants a deactivated user's tokens to stop working at once, and
roles are read from the row, never from token claims. simplejwt does that with ``User.objects.get(pk=...)``, which
builds and compiles the same SELECT on every request. Here the SELECT is compiled once per database and the row
is turned into a ``User`` with ``Model.from_db``, as the ORM itself does: the same query and the same answers
(401 ``user_not_found`` / ``user_inactive``), in about half the Python time. The same row answers whether the token
was issued before the user's ``tokens_valid_after`` (401 ``token_revoked``).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

from .tokens import token_is_revoked

if TYPE_CHECKING:
    from .models import User

#: A user id as simplejwt writes it: ASCII digits, within a bigint.
_USER_ID = re.compile(r"[0-9]{1,18}")


@functools.cache
def _user_by_id_sql(alias: str) -> tuple[str, tuple[str, ...]]:
    """The ORM's own ``SELECT`` of one user by primary key on ``alias`` (one ``%s`` parameter) and its columns."""
    model = get_user_model()
    sql, params = model._default_manager.using(alias).filter(pk=0).order_by().query.get_compiler(alias).as_sql()
    if params != (0,):  # pragma: no cover - the pk lookup is the query's one parameter
        raise AssertionError(f"unexpected parameters in the user lookup: {params!r}")
    return sql, tuple(field.attname for field in model._meta.concrete_fields)


def load_user(user_id: int) -> Any | None:
    """The user with primary key ``user_id``, or ``None``."""
    model = get_user_model()
    alias = router.db_for_read(model)
    sql, attnames = _user_by_id_sql(alias)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, [user_id])
        row = cursor.fetchone()
    return None if row is None else model.from_db(alias, attnames, row)


#: Where a request keeps its authentication once done (on Django's ``HttpRequest``, which every DRF ``Request``
#: wrapping it shares): the ``Idempotency-Key`` middleware authenticates before the view, and the view then reuses
#: the answer instead of validating the token and reading the user row a second time.
_DONE = "_jobops_jwt_authentication"


class JWTAuthentication(SimpleJWTAuthentication):
    """simplejwt's ``JWTAuthentication`` with the lean user lookup above (JobOps keys users by ``id``), done once per
    request: a second ``authenticate`` of the same request returns the first one's user and token."""

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        http_request = getattr(request, "_request", request)
        done = getattr(http_request, _DONE, None)
        if done is not None:
            return cast("tuple[Any, Token]", done)
        result = super().authenticate(request)
        if result is not None:
            setattr(http_request, _DONE, result)
        return result

    def get_user(self, validated_token: Token) -> Any:
        user = self._get_user(validated_token)
        # "Sign out everywhere", a password change or a deactivation since the token was issued: checked on the row
        # just read, so it costs no query.
        if token_is_revoked(user, validated_token.get("iat")):
            raise AuthenticationFailed(_("Token has been revoked"), code="token_revoked")  # type: ignore[arg-type]
        return user

    def _get_user(self, validated_token: Token) -> Any:
        if api_settings.CHECK_REVOKE_TOKEN or api_settings.USER_ID_FIELD != "id":
            return super().get_user(validated_token)  # settings this lookup does not cover: simplejwt's own
        # simplejwt writes the id as a string. Tokens are signed by us, so a malformed id means a leaked or shared key:
        # still a 401, never a 500.
        user_id = str(validated_token.get(api_settings.USER_ID_CLAIM, ""))
        if not _USER_ID.fullmatch(user_id):
            # simplejwt annotates ``detail`` as ``str``, yet passes lazy translations itself, as here.
            raise InvalidToken(_("Token contained no recognizable user identification"))  # type: ignore[arg-type]
        user = load_user(int(user_id))
        if user is None:
            raise AuthenticationFailed(_("User not found"), code="user_not_found")  # type: ignore[arg-type]  # as above
        if not user.is_active:
            raise AuthenticationFailed(_("User is inactive"), code="user_inactive")  # type: ignore[arg-type]  # as above
        return user


def request_user(request: HttpRequest | Request) -> User:
    """The ``User`` behind a request that only an authenticated user reaches: an API handler whose permission classes
    refuse anonymous callers (``IsAuthenticated``, ``HasActionRole``, ``IsAdminRole``) or a Django admin view (the
    admin site lets only active staff in). The type checker sees ``User | AnonymousUser`` on ``request.user``; it
    cannot know that the permission layer already ruled the anonymous user out, so this is a cast, not a check."""
    return cast("User", request.user)
