"""Application errors and the DRF exception handler.

Services raise Django's ``ValidationError`` for bad input (-> 400 with field errors), DRF's ``PermissionDenied``
for role rules (-> 403) and an ``ApplicationError`` subclass for business-rule conflicts (-> 409 with
``{"detail": ..., "code": ...}``). An unreachable database is a 503 with ``Retry-After`` (``jobops.unavailable``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, HttpResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from . import unavailable


class ApplicationError(Exception):
    """A business-rule conflict. Rendered as 409 ``{"detail": message, "code": code}``."""

    status_code: int = status.HTTP_409_CONFLICT
    default_code = "conflict"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra or {}
        self.headers = headers or {}


class InvalidTransition(ApplicationError):
    default_code = "invalid_transition"


class OutOfOrder(ApplicationError):
    default_code = "out_of_order"


class JobFrozen(ApplicationError):
    default_code = "job_frozen"


class OpenTasks(ApplicationError):
    default_code = "open_tasks"


class SignatureRequired(ApplicationError):
    default_code = "signature_required"


class InUse(ApplicationError):
    default_code = "in_use"


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    reason = unavailable.unavailable_reason(exc)
    if reason is not None:
        # The database is unreachable (jobops.unavailable): its one 503 + Retry-After, logged once.
        return unavailable.unavailable_response(context["request"], exc, reason)
    if isinstance(exc, ApplicationError):
        return Response(
            {"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status_code, headers=exc.headers
        )
    if isinstance(exc, RequestDataTooBig):
        # Raised while DRF reads the body (DATA_UPLOAD_MAX_MEMORY_SIZE); left alone it becomes Django's HTML 400.
        return Response(
            {"detail": "Request body too large.", "code": "request_too_large"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=as_serializer_error(exc))
    elif isinstance(exc, ProtectedError | RestrictedError):
        return Response(
            {"detail": "This object is referenced by other records; deactivate it instead.", "code": "in_use"},
            status=status.HTTP_409_CONFLICT,
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        if not isinstance(exc, exceptions.ValidationError):
            response.data = error_body(exc)
    return response


def error_body(exc: exceptions.APIException) -> dict[str, str]:
    """The one error shape (``Error`` in the OpenAPI schema) of every error but a 400's field errors:
    ``{"detail", "code"}``, exactly. simplejwt's 401 carries a dict (with ``messages`` describing the token); its
    ``detail`` and ``code`` are kept and the rest dropped."""
    detail: Any = exc.detail
    code: Any = getattr(detail, "code", None)
    if isinstance(detail, dict):
        code = detail.get("code")
        detail = detail.get("detail", "")
    elif isinstance(detail, list):  # pragma: no cover - APIException subclasses other than ValidationError
        detail = " ".join(str(item) for item in detail)
    return {"detail": str(detail), "code": str(code or exc.default_code)}
