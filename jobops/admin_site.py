"""The Django admin site, with the API's login throttles on its login form.

Admins are exactly the users who can log in to ``/admin/``, and a password guessed there also works on the API,
so the form shares the per-IP and per-username buckets of ``POST /api/auth/token/``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request

from jobops.throttles import LoginIPThrottle, LoginUserThrottle


class JobOpsAdminSite(admin.AdminSite):
    site_header = "JobOps administration"
    site_title = "JobOps admin"

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST":
            drf_request = Request(request, parsers=[FormParser(), MultiPartParser()])
            for throttle in (LoginIPThrottle(), LoginUserThrottle()):
                # No DRF view here (the stubs want one): these throttles' cache keys never read it.
                if not throttle.allow_request(drf_request, None):  # type: ignore[arg-type]
                    wait = throttle.wait()
                    response = HttpResponse(
                        "Too many login attempts. Try again later.", status=429, content_type="text/plain"
                    )
                    if wait:
                        response["Retry-After"] = str(int(wait) + 1)
                    return response
        return super().login(request, extra_context)
