"""The Django admin site, with the API's login throttles on its login form.

Admins are exactly the users who can log in to ``/admin/``, and a password guessed there also works on the API,
so the form shares the buckets of ``POST /api/auth/token/`` (``jobops.throttles``): per client, per (username,
client) and the username's budget of failures. A POST that is not a form (JSON, text, a body that cannot be decoded)
is a 400 before anything reads it.

Password changes: the site's own "change password" page saves through the form that the accounts app registers as
``password_change_form`` (which calls the one password service: validated, audited, sessions ended); with none
registered the page is not served at all, so no form can set a password behind the service's back.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request

from jobops.throttles import LOGIN_THROTTLES, login_failed, login_succeeded, username_from

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class JobOpsAdminSite(admin.AdminSite):
    site_header = "JobOps administration"
    site_title = "JobOps admin"
    #: Set by ``accounts.admin``: the own-password form that saves through the accounts services.
    password_change_form: type | None = None

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method != "POST":
            return super().login(request, extra_context)
        if request.content_type not in _FORM_TYPES:
            return HttpResponseBadRequest("Send the login form.", content_type="text/plain")
        # jobops.middleware.FormBodyMiddleware has parsed the form already (a 400 if it could not).
        drf_request = Request(request, parsers=[FormParser(), MultiPartParser()])
        username = username_from(drf_request)
        for throttle_class in LOGIN_THROTTLES:
            throttle = throttle_class()
            # No DRF view here (the stubs want one): these throttles never read it.
            if not throttle.allow_request(drf_request, None):  # type: ignore[arg-type]
                wait = throttle.wait()
                response = HttpResponse(
                    "Too many login attempts. Try again later.", status=429, content_type="text/plain"
                )
                if wait:
                    response["Retry-After"] = str(int(wait) + 1)
                return response
        response = super().login(request, extra_context)
        if username is not None:
            if request.user.is_authenticated:
                login_succeeded(request, username)
            else:
                login_failed(request, username)
        return response

    def password_change(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from django.contrib.auth.views import PasswordChangeView
        from django.urls import reverse

        if self.password_change_form is None:
            raise Http404("Password changes are not available here.")
        defaults: dict[str, Any] = {
            "form_class": self.password_change_form,
            "success_url": reverse("admin:password_change_done", current_app=self.name),
            "extra_context": {**self.each_context(request), **(extra_context or {})},
        }
        if self.password_change_template is not None:
            defaults["template_name"] = self.password_change_template
        request.current_app = self.name
        # A page or, once saved, a redirect: Django's own method returns the same (its stubs say TemplateResponse).
        return cast(TemplateResponse, PasswordChangeView.as_view(**defaults)(request))
