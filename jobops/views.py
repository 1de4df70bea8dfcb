"""JSON error pages: API clients get JSON for unknown URLs and server errors, never an HTML page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.views.defaults import page_not_found


def not_found(request: HttpRequest, exception: Exception | None = None, **kwargs: Any) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return page_not_found(request, exception)


def server_failure(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    # A plain page, not django.views.defaults.server_error: that view runs the CSRF check again
    # (requires_csrf_token), which re-reads the body that may be what failed, and a 500 page needs no token.
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
    return HttpResponseServerError("<h1>Server Error (500)</h1>", content_type="text/html")
