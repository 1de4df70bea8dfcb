"""/live/ in headless Chromium against a real ASGI process (the ws role): a staff session opens the page, the
page gets its token from POST /live/token/, subscribes over /ws/changes/, and a task started over the REST API
(by this process, a plain Django process like a gunicorn worker) shows up on the page without a reload."""

from __future__ import annotations

import datetime
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.test import Client as DjangoClient
from django.utils import timezone

from accounts.models import User
from jobs.services import job_create, task_add
from tests.conftest import client_for, require_service
from tests.factories import UserFactory
from tests.jobs.live_support import require_live_services, start_server

from .test_docs_and_admin import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def in_thread(call):
    from django.db import connection

    def run():
        try:
            return call()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result(timeout=60)


@pytest.fixture(autouse=True)
def _clear_cache():
    """tests/conftest.py's would flush the Redis database, and with it the ASGI process's wake-group membership."""
    yield


@pytest.fixture
def live_ws(django_db_setup, tmp_path):
    require_live_services()
    server = start_server("live-page", tmp_path)
    yield server
    server.stop()


def test_the_live_page_updates_in_place_when_a_task_changes_over_the_api(live_ws, monkeypatch):
    require_service("Chromium", os.path.exists(CHROMIUM), "apt-get install -y chromium")
    from playwright.sync_api import expect, sync_playwright

    admin = UserFactory(username="dispatcher", role=User.Role.ADMIN, is_staff=True)
    technician = UserFactory(username="tina", first_name="Tina", last_name="Tech", role=User.Role.TECHNICIAN)
    today = timezone.localdate()
    job = job_create(
        actor=admin,
        data={"title": "Boiler service", "client_name": "ACME", "scheduled_date": today, "assigned_to": technician},
    )
    task = task_add(actor=admin, job_id=job.pk, data={"title": "Check pressure"})
    job_create(
        actor=admin,
        data={"title": "Tomorrow", "client_name": "X", "scheduled_date": today + datetime.timedelta(days=1)},
    )
    # Not on today's page until it is moved there below. Made here, before Playwright starts: ORM work inside its
    # context runs in another context of this thread and opens a second connection that nothing closes.
    moved = job_create(
        actor=admin,
        data={"title": "Emergency", "client_name": "Y", "scheduled_date": today + datetime.timedelta(days=2)},
    )
    session = DjangoClient()
    session.force_login(admin)
    cookie = session.cookies[settings.SESSION_COOKIE_NAME].value

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{live_ws.port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": base}])
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{base}/live/")
            expect(page.locator("#status")).to_have_attribute("data-state", "live")
            line = page.locator(f'li[data-task-id="{task.pk}"]')
            expect(line).to_have_attribute("data-status", "pending")
            expect(page.locator(f'section[data-technician="{technician.pk}"] h2')).to_have_text("Tina Tech")
            expect(page.get_by_text("Tomorrow")).to_have_count(0)
            expect(page.locator(f'article[data-job-id="{moved.pk}"]')).to_have_count(0)
            page.evaluate("window.__marker = 'same page'")

            # Over the API from another thread, as another process would: Playwright's sync API runs an event loop
            # in this one, where the after-commit wake (async_to_sync) cannot run.
            response = in_thread(lambda: client_for(technician).post(f"/api/tasks/{task.pk}/start/"))
            assert response.status_code == 200, response.content
            expect(line).to_have_attribute("data-status", "in_progress", timeout=20_000)
            expect(page.locator(f'article[data-job-id="{job.pk}"]')).to_have_attribute("data-status", "in_progress")

            # A job moved into today appears; one moved out of it disappears: still the same page, no reload.
            patch = {"scheduled_date": today.isoformat()}
            response = in_thread(lambda: client_for(admin).patch(f"/api/jobs/{moved.pk}/", patch, format="json"))
            assert response.status_code == 200, response.content
            expect(page.locator(f'article[data-job-id="{moved.pk}"]')).to_have_count(1, timeout=20_000)
            assert page.evaluate("window.__marker") == "same page"
            page.screenshot(path=str(ARTIFACTS / "live-page.png"), full_page=True)
        finally:
            browser.close()


def test_the_live_page_and_its_token_are_for_staff_admins_only(db):
    technician = UserFactory(role=User.Role.TECHNICIAN)
    anonymous = DjangoClient()
    assert anonymous.get("/live/").status_code == 302  # to the admin login
    assert anonymous.post("/live/token/").status_code == 302
    staff_technician = DjangoClient()
    User.objects.filter(pk=technician.pk).update(is_staff=True)
    staff_technician.force_login(technician)
    assert staff_technician.get("/live/").status_code == 403
    admin = UserFactory(role=User.Role.ADMIN, is_staff=True)
    browser = DjangoClient(enforce_csrf_checks=True)
    browser.force_login(admin)
    page = browser.get("/live/")
    assert page.status_code == 200 and b'id="live-state"' in page.content
    assert browser.post("/live/token/").status_code == 403  # no CSRF token
    token = browser.post("/live/token/", HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)
    assert token.status_code == 200 and token.json()["access"].count(".") == 2
