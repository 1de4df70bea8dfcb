"""Request correlation: every response carries ``X-Request-ID``; audit entries and log lines carry it too."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .context import request_id_var, source_var

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIDMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else str(uuid.uuid4())
        request.request_id = request_id  # type: ignore[attr-defined]
        source = "admin" if request.path.startswith("/admin/") else "api"
        rid_token = request_id_var.set(request_id)
        src_token = source_var.set(source)
        try:
            response = self.get_response(request)
        finally:
            source_var.reset(src_token)
            request_id_var.reset(rid_token)
        response["X-Request-ID"] = request_id
        return response
