"""Real-browser tests in headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright).

* Swagger UI at ``/api/docs/`` lists every tag of the schema, authorizes with a JWT and executes
  ``GET /api/jobs/`` with a 200.
* ReDoc at ``/api/redoc/`` renders the API.
* No request the pages make leaves the machine: every one is recorded and must go to 127.0.0.1 (no CDN, no web fonts).
* The Django admin logs in and shows a job with its tasks inline, in task order.

Screenshots go to ``test-artifacts/browser/`` (git-ignored). Without Chromium the tests skip locally and fail in CI
(``JOBOPS_REQUIRE_SERVICES=1``); ``pip install playwright`` ships the driver, the browser is the system one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Request
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from tests.conftest import require_service
from tests.factories import DEFAULT_PASSWORD, JobFactory, JobTaskFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags measured to work on this kind of machine (ENVIRONMENT-NOTES.md); nothing phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 30_000


@pytest.fixture
def browser_page(live_server, monkeypatch):
    """A fresh Chromium page that records every request it makes; yields (page, requested_urls)."""
    require_service("Chromium", os.path.exists(CHROMIUM), "apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM work is done before it starts, and Django's
    # async-safety check would otherwise refuse the test database's teardown queries from this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert urlsplit(live_server.url).hostname == "127.0.0.1", live_server.url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            requested: list[Request] = []
            page.on("request", lambda request: requested.append(request))
            yield page, requested
        finally:
            browser.close()


def assert_all_local(requested: list[Request]) -> None:
    """Every request the page made went to 127.0.0.1 (or was in-page data). A request the page's own
    Content-Security-Policy blocked (Playwright reports it, failed with "csp") never left the browser."""
    assert requested, "the page made no request at all"
    outside = [
        request.url
        for request in requested
        if urlsplit(request.url).scheme not in ("data", "blob", "about")
        and urlsplit(request.url).hostname != "127.0.0.1"
        and request.failure != "csp"
    ]
    assert not outside, f"requests left the machine: {outside}"


def schema_tags(live_server) -> list[str]:
    from django.test import Client

    schema = Client().get("/api/schema/?format=json").json()
    tags = {tag for path in schema["paths"].values() for op in path.values() for tag in op.get("tags", [])}
    assert tags
    return sorted(tags)


@pytest.fixture
def admin_user_with_job(db):
    admin = UserFactory(username="browser-admin", role=User.Role.ADMIN, is_staff=True, is_superuser=True)
    job = JobFactory(title="Boiler service at Initech", created_by=admin)
    # Created out of order on purpose: the inline must list them by `order`.
    for order, title in ((3, "Test and sign off"), (1, "Isolate supply"), (2, "Replace seals")):
        JobTaskFactory(job=job, order=order, title=title)
    return admin, job


def test_swagger_ui_lists_every_tag_authorizes_and_executes_get_jobs(live_server, admin_user_with_job, browser_page):
    admin, job = admin_user_with_job
    tags = schema_tags(live_server)
    token = str(AccessToken.for_user(admin))
    page, requested = browser_page

    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock-tag-section")
    shown = sorted(page.locator(".opblock-tag").evaluate_all("els => els.map(e => e.dataset.tag)"))
    assert shown == tags, (shown, tags)

    # Authorize with the JWT (the jwtAuth bearer scheme).
    page.click("button.authorize")
    page.fill(".auth-container input", token)
    page.click(".auth-btn-wrapper button.authorize")
    page.click(".auth-btn-wrapper button.btn-done")

    # Open GET /api/jobs/, "Try it out", "Execute": the call must carry the token and come back 200.
    operation = page.locator("#operations-jobs-jobs_list")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    with page.expect_response(lambda r: urlsplit(r.url).path == "/api/jobs/" and r.request.method == "GET") as info:
        operation.locator("button.execute").click()
    response = info.value
    assert response.status == 200
    assert response.request.headers.get("authorization") == f"Bearer {token}"
    assert response.json()["results"][0]["id"] == job.pk
    live_status = operation.locator(".live-responses-table tr.response .response-col_status").first
    assert live_status.inner_text().strip().startswith("200")
    page.screenshot(path=str(ARTIFACTS / "swagger-ui.png"), full_page=True)
    assert_all_local(requested)


def test_redoc_renders_from_local_files(live_server, browser_page):
    page, requested = browser_page
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.goto(f"{live_server.url}/api/redoc/")
    page.wait_for_selector("h1:has-text('JobOps API')")
    page.wait_for_selector("[data-section-id^='tag/jobs']", state="attached")
    menu = page.locator("li[data-item-id^='tag/']").evaluate_all("els => els.map(e => e.dataset.itemId)")
    for tag in schema_tags(live_server):
        assert f"tag/{tag}" in menu, (tag, menu)
    page.screenshot(path=str(ARTIFACTS / "redoc.png"))
    assert_all_local(requested)
    # ReDoc's footer logo comes from this server (jobops/redoc.html), not from its CDN: no blocked request.
    assert not [request.url for request in requested if request.failure == "csp"]
    assert page.locator("img[alt='redocly logo']").get_attribute("src").endswith("/jobops/favicon.svg")
    assert not [line for line in console if line.startswith("error")], console


def test_admin_logs_in_and_shows_a_job_with_its_ordered_tasks(live_server, admin_user_with_job, browser_page):
    admin, job = admin_user_with_job
    page, requested = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", admin.username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    # Django greets the admin by first name (or username) on every admin page once logged in.
    assert (admin.first_name or admin.username).lower() in page.locator("#user-tools").inner_text().lower()
    assert "/admin/login/" not in page.url

    page.goto(f"{live_server.url}/admin/jobs/job/{job.pk}/change/")
    page.wait_for_selector("#tasks-group")
    assert page.locator("input#id_title").input_value() == "Boiler service at Initech"
    titles = page.locator("#tasks-group input[name^='tasks-'][name$='-title']").evaluate_all(
        "els => els.filter(e => !e.name.includes('__prefix__')).map(e => e.value).filter(v => v)"
    )
    assert titles == ["Isolate supply", "Replace seals", "Test and sign off"]
    page.screenshot(path=str(ARTIFACTS / "admin-job.png"), full_page=True)
    assert_all_local(requested)


def test_admin_refuses_a_wrong_password(live_server, admin_user_with_job, browser_page):
    admin, _job = admin_user_with_job
    page, requested = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", admin.username)
    page.fill("#id_password", "not-the-password")
    page.click("input[type=submit]")
    page.wait_for_selector(".errornote")
    assert "/admin/login/" in page.url
    assert_all_local(requested)


@pytest.fixture
def more_jobs(admin_user_with_job):
    """Three more jobs for the change list. A fixture, so it runs before ``browser_page``: ORM work inside
    Playwright's context runs in another context of this thread and opens a second connection that nothing closes
    (the teardown warning named this test)."""
    admin, _job = admin_user_with_job
    JobFactory.create_batch(3, created_by=admin, assigned_to=UserFactory(role=User.Role.TECHNICIAN))


def test_admin_job_pages_fit_a_1366_px_screen(live_server, admin_user_with_job, more_jobs, browser_page):
    admin, job = admin_user_with_job
    page, _requested = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", admin.username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    width = "() => document.documentElement.scrollWidth"

    page.goto(f"{live_server.url}/admin/jobs/job/")
    assert page.evaluate(width) <= 1366
    # The table scrolls inside its box when it is too wide: every column (the last is "Assigned to") fits it.
    fits = "() => (box => box.scrollWidth <= box.clientWidth)(document.querySelector('#changelist .results'))"
    assert page.locator("th.column-assigned_to").is_visible()
    assert page.evaluate(fits)

    page.goto(f"{live_server.url}/admin/jobs/job/{job.pk}/change/")
    page.wait_for_selector("#tasks-group")
    assert page.evaluate(width) <= 1366
    delete = page.locator("#tasks-group th").last.bounding_box()
    assert delete is not None and delete["x"] + delete["width"] <= 1366, delete
    page.screenshot(path=str(ARTIFACTS / "admin-job-1366.png"), full_page=True)
