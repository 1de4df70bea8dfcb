"""The landing page, and JSON error pages: API clients get JSON for unknown URLs and server errors, never HTML."""

from __future__ import annotations

import sys
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.http import require_safe
from django.views.defaults import page_not_found

from . import unavailable


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """``/``: what runs here and where to go (the admin's "View site" lands here)."""
    return render(request, "jobops/home.html")


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for ``/favicon.ico`` on pages that name no icon (the admin's): the static SVG."""
    return redirect(static("jobops/favicon.svg"))


def not_found(request: HttpRequest, exception: Exception | None = None, **kwargs: Any) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return page_not_found(request, exception)


def server_failure(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    # Django calls handler500 inside its except block: an unreachable database is a 503, not a 500
    # (jobops.unavailable; this covers what DRF's exception handler does not see: middleware, the admin, /live/).
    exc = sys.exc_info()[1]
    reason = unavailable.unavailable_reason(exc)
    if exc is not None and reason is not None:
        return unavailable.unavailable_response(request, exc, reason)
    # A plain page, not django.views.defaults.server_error: that view runs the CSRF check again
    # (requires_csrf_token), which re-reads the body that may be what failed, and a 500 page needs no token.
    if unavailable.wants_json(request):  # /api/, or a client that asks for JSON (the live page's POST /live/token/)
        return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
    return HttpResponseServerError("<h1>Server Error (500)</h1>", content_type="text/html")
