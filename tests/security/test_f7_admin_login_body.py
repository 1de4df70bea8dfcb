"""Finding 7: a POST to /admin/login/ with a body that is not a form (JSON, text) or a form that cannot be decoded
(declared in UTF-16) is a 400, never a 500, with CSRF enforced as in production; a multipart body that parses to
nothing gets the login form again."""

import pytest
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def csrf_client():
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.get("/admin/login/")
    return client, client.cookies["csrftoken"].value


@pytest.mark.parametrize(
    "body, content_type, expected",
    [
        ('{"username": "admin", "password": "x"}', "application/json", 400),
        ("username=admin&password=x", "text/plain", 400),
        ("username=admin&password=x".encode("utf-16"), "application/x-www-form-urlencoded; charset=utf-16", 400),
        (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded; charset=utf-16", 400),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x", 200),
        (b"--x\r\nbroken", "multipart/form-data", 400),
    ],
)
def test_admin_login_with_a_non_form_body_is_4xx(csrf_client, body, content_type, expected):
    UserFactory(username="admin", role="admin", is_staff=True)
    client, token = csrf_client
    # generic() sends the bytes as they are (post() would re-encode them to the declared charset).
    raw = body if isinstance(body, bytes) else body.encode()
    response = client.generic("POST", "/admin/login/", raw, content_type=content_type, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == expected, (response.status_code, response.content[:300])
