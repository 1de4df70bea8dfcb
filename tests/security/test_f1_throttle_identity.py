"""Finding 1: the per-username login bucket keys on the identity authentication uses (Unicode NFKC), so look-alike
spellings that log in as the same user share its bucket, on the admin login form and on the API alike."""

import pytest
from django.test import Client

from tests.factories import DEFAULT_PASSWORD, UserFactory

from .conftest import TOKEN, post

pytestmark = pytest.mark.django_db

FULLWIDTH = "ａｄｍｉｎ"  # noqa: RUF001 - the point of the test
BOLD = "𝐚𝐝𝐦𝐢𝐧"


@pytest.fixture
def root():
    return UserFactory(username="admin", role="admin", is_staff=True, is_superuser=True)


def test_lookalikes_authenticate_as_the_same_user_on_the_admin_form(root):
    # The premise of the finding: the admin form normalises (NFKC) before authenticating.
    response = Client().post("/admin/login/?next=/admin/", {"username": FULLWIDTH, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302


def test_admin_form_lookalikes_share_the_username_bucket(root, rates):
    rates(user="3/min")
    client = Client()
    codes = [
        client.post("/admin/login/", {"username": name, "password": "wrong"}).status_code
        for name in ("admin", FULLWIDTH, BOLD, " Admin ", "ADMIN")
    ]
    assert codes == [200, 200, 200, 429, 429]


def test_api_lookalikes_share_the_username_bucket(root, rates):
    rates(user="2/min")
    assert post(TOKEN, {"username": FULLWIDTH, "password": "wrong"}).status_code == 401
    assert post(TOKEN, {"username": BOLD, "password": "wrong"}).status_code == 401
    assert post(TOKEN, {"username": "admin", "password": "wrong"}).status_code == 429


def test_api_login_authenticates_the_same_identity_as_the_admin_form(root):
    # One identity everywhere: what the admin form accepts, the API accepts, and both count it in one bucket.
    assert post(TOKEN, {"username": FULLWIDTH, "password": DEFAULT_PASSWORD}).status_code == 200
