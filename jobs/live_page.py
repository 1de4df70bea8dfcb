"""``/live/``: today's jobs and tasks of every technician, updating in place from the live stream.

For people (dispatchers), not for API clients: a Django template and a few lines of plain JavaScript, no build
step. Staff only: the Django admin's session login (``staff_member_required``), and the admin role (the same
``is_admin`` every API check uses). The page loads the day as the job detail endpoint renders it, having taken
the feed's cursor *first*, then subscribes to ``/ws/changes/`` from that cursor: nothing changed in between is
missed, and every update arrives in the same shape as the first load.

The WebSocket authenticates with an access JWT, like any client. The page gets one from ``POST /live/token/``:
the session (and its CSRF token) proves who asks, so a page of another site can neither mint nor read one (the
endpoint needs the CSRF token and answers without CORS headers). The token lives in the page's memory only; the
script fetches a fresh one before it expires and sends it as a new ``auth`` message.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from rest_framework_simplejwt.tokens import AccessToken

from accounts.selectors import user_list_for
from jobops.jsonshape import render_each
from jobops.roles import TECHNICIAN, is_admin

from . import feed
from .selectors import job_scope
from .serializers import JobDetailSerializer


def _admin(request: HttpRequest) -> Any:
    if not is_admin(request.user):
        raise PermissionDenied("The live page is for admins.")
    return request.user


@never_cache
@require_GET
@staff_member_required
def live_page(request: HttpRequest) -> HttpResponse:
    user = _admin(request)
    cursor = feed.current_cursor()  # before the lists: whatever changes after this is pushed from this cursor on
    today = timezone.localdate()
    jobs = render_each(job_scope(user=user).filter(scheduled_date=today), JobDetailSerializer)
    technicians = {
        str(pk): (f"{first} {last}".strip() or username)
        for pk, username, first, last in user_list_for(user=user)
        .filter(role=TECHNICIAN)
        .values_list("id", "username", "first_name", "last_name")
    }
    state = {
        "cursor": cursor,
        "today": today.isoformat(),
        "jobs": list(jobs.values()),
        "technicians": technicians,
        "ws_url": settings.LIVE_WS_URL,
        "csrf": get_token(request),  # for POST /live/token/
    }
    # The feed's rows are pre-rendered JSON (orjson fragments): parse them back so that Django's json_script
    # filter escapes the whole state for the <script> element.
    return render(request, "jobs/live.html", {"state": orjson.loads(orjson.dumps(state))})


@never_cache
@require_POST
@staff_member_required
def live_token(request: HttpRequest) -> JsonResponse:
    """An access JWT for the page's WebSocket (session + CSRF checked)."""
    user = _admin(request)
    token = AccessToken.for_user(user)
    return JsonResponse({"access": str(token), "expires_at": int(token["exp"])})
