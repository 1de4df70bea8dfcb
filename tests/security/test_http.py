"""Hostile input and HTTP hygiene (OWASP API4 resource consumption, API8 misconfiguration).

Every hostile request must be a 4xx with a JSON body (never a 500, never Django's HTML error page); CORS answers
only configured origins; every response carries the security headers.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.models import User
from tests.conftest import client_for
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(db):
    return UserFactory(username="sec-admin", role=User.Role.ADMIN, is_staff=True)


@pytest.fixture
def client(admin) -> APIClient:
    return client_for(admin)


def _assert_json_4xx(response, *statuses: int) -> dict:
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body, dict) and body, body
    return body


# --- bodies --------------------------------------------------------------------------------------------------------


def test_oversized_body_is_413(client):
    size = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
    body = json.dumps({"title": "x" * size, "client_name": "c", "scheduled_date": "2030-01-01"})
    response = client.post("/api/jobs/", data=body, content_type="application/json")
    assert _assert_json_4xx(response, 413)["code"] == "request_too_large"


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 20_000 + "1" + "}" * 20_000,
        '{"title": ' + "[" * 5_000 + "]" * 5_000 + "}",
    ],
    ids=["arrays", "objects", "in-a-field"],
)
def test_deeply_nested_json_is_400(client, body):
    _assert_json_4xx(client.post("/api/jobs/", data=body, content_type="application/json"), 400)


@pytest.mark.parametrize(
    "raw",
    [b'{"title": "\xff\xfe"}', b"\xc3\x28", b'{"title": "\xed\xa0\x80"}', b"\x00\x00\x00{"],
    ids=["bad-start-byte", "bad-continuation", "encoded-surrogate", "nul-bytes"],
)
def test_invalid_utf8_is_400(client, raw):
    _assert_json_4xx(client.post("/api/jobs/", data=raw, content_type="application/json"), 400)


@pytest.mark.parametrize(
    "body",
    ["", "null", "[]", '"a string"', "123", "{", '{"title": NaN}', '{"title": Infinity}', "{'single': 'quotes'}"],
)
def test_malformed_or_wrongly_shaped_json_is_400(client, body):
    _assert_json_4xx(client.post("/api/jobs/", data=body, content_type="application/json"), 400)


def test_nul_characters_are_400_in_bodies_and_queries(client):
    body = {"title": "a\x00b", "client_name": "c", "scheduled_date": "2030-01-01"}
    assert "title" in _assert_json_4xx(client.post("/api/jobs/", body, format="json"), 400)
    assert "search" in _assert_json_4xx(client.get("/api/jobs/", {"search": "a\x00b"}), 400)


def test_wrong_content_type_is_415(client):
    response = client.post("/api/jobs/", data="title=x", content_type="application/x-www-form-urlencoded")
    _assert_json_4xx(response, 415)
    response = client.post("/api/jobs/", data=b"<job/>", content_type="application/xml")
    _assert_json_4xx(response, 415)


def test_wrong_types_are_400_not_500(client):
    for body in (
        {"title": {"$gt": ""}, "client_name": "c", "scheduled_date": "2030-01-01"},
        {"title": ["x"], "client_name": "c", "scheduled_date": "2030-01-01"},
        {"title": "x", "client_name": "c", "scheduled_date": "9999-99-99"},
        {"title": "x", "client_name": "c", "scheduled_date": "2030-01-01", "assigned_to": 2**70},
        {"title": "x", "client_name": "c", "scheduled_date": "2030-01-01", "assigned_to": "1 OR 1=1"},
        {"title": "x", "client_name": "c", "scheduled_date": "2030-01-01", "priority": "' OR '1'='1"},
    ):
        _assert_json_4xx(client.post("/api/jobs/", body, format="json"), 400)


# --- paths and query parameters ------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["99999999999999999999999999", str(2**63), "1000000"])
def test_huge_page_numbers_are_404(client, page):
    JobFactory()
    _assert_json_4xx(client.get("/api/jobs/", {"page": page}), 404)


@pytest.mark.parametrize("page", ["0", "-1", "1e309", "NaN", "1.5", " ", " 1", "+1", "1_0", "\u0661"])
def test_bad_page_numbers_are_400(client, page):
    _assert_json_4xx(client.get("/api/jobs/", {"page": page}), 400)


def test_huge_page_size_is_clamped(client):
    response = client.get("/api/jobs/", {"page_size": "99999999999999999999999"})
    assert response.status_code == 200
    JobFactory.create_batch(3)
    assert len(client.get("/api/jobs/", {"page_size": str(2**64)}).json()["results"]) == 3


@pytest.mark.parametrize(
    "path",
    [
        "/api/jobs/-1/",
        "/api/jobs/0/",
        "/api/jobs/99999999999999999999999999/",
        f"/api/jobs/{2**63}/",
        "/api/jobs/1.5/",
        "/api/jobs/abc/",
        "/api/jobs/%00/",
        "/api/tasks/-1/",
        "/api/users/-1/",
        "/api/equipment/-1/",
        "/api/notifications/-1/retry/",
        "/api/jobs/-1/tasks/",
    ],
)
def test_negative_zero_huge_and_garbage_ids_are_404(client, path):
    _assert_json_4xx(client.get(path) if not path.endswith("retry/") else client.post(path), 404)


@pytest.mark.parametrize(
    "query",
    [
        {"assigned_to": "-1"},
        {"assigned_to": "\u0661"},
        {"assigned_to": " 1"},
        {"assigned_to": str(2**70)},
        {"created_by": "abc"},
        {"status": "'; DROP TABLE jobs_job; --"},
        {"ordering": "password"},
        {"ordering": "created_by__password"},
        {"scheduled_after": "2030-02-30"},
        {"overdue": "maybe"},
    ],
)
def test_bad_filters_are_400(client, query):
    _assert_json_4xx(client.get("/api/jobs/", query), 400)


def test_unknown_api_path_is_json_404(client):
    _assert_json_4xx(client.get("/api/no-such-thing/"), 404)
    _assert_json_4xx(APIClient().get("/api/../etc/passwd"), 404)


def test_unsupported_method_is_405_with_allow(client):
    response = client.generic("TRACE", "/api/jobs/")
    _assert_json_4xx(response, 405)
    response = client.put("/api/jobs/", {}, format="json")
    _assert_json_4xx(response, 405)
    assert "GET" in response["Allow"] and "POST" in response["Allow"]


def test_request_id_header_is_sanitised(client):
    assert client.get("/api/jobs/", HTTP_X_REQUEST_ID="abc-123.X_y")["X-Request-ID"] == "abc-123.X_y"
    for hostile in ("a" * 65, "x\r\nSet-Cookie: a=b", "<script>", "a b"):
        echoed = client.get("/api/jobs/", HTTP_X_REQUEST_ID=hostile)["X-Request-ID"]
        assert echoed != hostile and len(echoed) == 36  # a fresh UUID


# --- CORS ------------------------------------------------------------------------------------------------------------

ALLOWED = "https://app.jobops.example"


@pytest.fixture
def cors():
    with override_settings(CORS_ALLOWED_ORIGINS=[ALLOWED]):
        yield


def _preflight(origin: str, path: str = "/api/jobs/"):
    return APIClient().options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )


def test_cors_allows_a_configured_origin(cors, client):
    preflight = _preflight(ALLOWED)
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    assert "authorization" in preflight["Access-Control-Allow-Headers"].lower()
    response = client.get("/api/jobs/", HTTP_ORIGIN=ALLOWED)
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert "x-request-id" in response["Access-Control-Expose-Headers"].lower()
    # offline-safe writes: the client sends keys and preconditions, and reads tags and the replay marker
    for header in ("idempotency-key", "if-match", "if-none-match"):
        assert header in preflight["Access-Control-Allow-Headers"].lower()
    for header in ("etag", "idempotent-replayed"):
        assert header in response["Access-Control-Expose-Headers"].lower()
    # Bearer tokens, not cookies: credentials are never allowed cross-origin.
    assert "Access-Control-Allow-Credentials" not in response


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "null", "https://app.jobops.example.evil.example", "http://app.jobops.example", "*"],
)
def test_cors_ignores_other_origins(cors, client, origin):
    preflight = _preflight(origin)
    assert "Access-Control-Allow-Origin" not in preflight
    response = client.get("/api/jobs/", HTTP_ORIGIN=origin)
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


def test_cors_applies_to_the_api_only(cors):
    assert "Access-Control-Allow-Origin" not in _preflight(ALLOWED, "/admin/login/")


def test_default_configuration_allows_no_origin():
    assert not getattr(settings, "CORS_ALLOW_ALL_ORIGINS", False)
    assert "Access-Control-Allow-Origin" not in _preflight(ALLOWED)


# --- headers ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/jobs/", "/api/no-such-thing/", "/admin/login/", "/api/schema/", "/healthz/"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Request-ID"]
    assert "Server" not in response or "django" not in response["Server"].lower()


def test_api_errors_do_not_leak_internals(client):
    body = json.dumps(client.get("/api/jobs/abc/").json()) + json.dumps(client.get("/api/nope/").json())
    for leak in ("Traceback", 'File "', "django.", "SELECT ", "settings."):
        assert leak not in body
