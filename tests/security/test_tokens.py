"""Broken authentication (OWASP API2): forged, expired, replayed and revoked tokens are all a 401.

Tokens are forged with PyJWT directly (not through simplejwt), the way an attacker would build them, so the
tests fail if the server ever accepts a token it did not sign with its own key and algorithm.
"""

from __future__ import annotations

import base64
import datetime
import json

import jwt
import pytest
import time_machine
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import User
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

PROTECTED = "/api/jobs/"
ME = "/api/auth/me/"
TOKEN = "/api/auth/token/"
REFRESH = "/api/auth/token/refresh/"
LOGOUT = "/api/auth/logout/"


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(user: User) -> dict:
    return dict(AccessToken.for_user(user).payload)


def _get(path: str, token: str | None) -> object:
    client = APIClient()
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get(path)


def _assert_refused(response) -> None:
    assert response.status_code == 401, (response.status_code, getattr(response, "data", None))
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()
    # RFC 6750: a 401 names the scheme the client should use.
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.fixture
def user(db):
    return UserFactory(username="victim", role=User.Role.ADMIN)


def test_a_genuine_token_is_accepted(user):
    """The control: the same request with the server's own token works, so the 401s below mean something."""
    token = jwt.encode(_claims(user), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    assert _get(PROTECTED, token).status_code == 200
    assert _get(ME, token).json()["username"] == "victim"


def test_no_token_and_garbage_tokens_are_401(user):
    _assert_refused(_get(PROTECTED, None))
    # Non-ASCII as it arrives over real WSGI (PEP 3333: header bytes are decoded as latin-1).
    wire_utf8 = "😀.😀.😀".encode().decode("latin-1")
    for garbage in ("", "x", "a.b.c", "Bearer", "e30.e30.", wire_utf8, "a" * 10_000):
        _assert_refused(_get(PROTECTED, garbage))


def test_expired_access_token_is_401(user):
    claims = _claims(user)
    claims["exp"] = int((datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)).timestamp())
    expired = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    _assert_refused(_get(PROTECTED, expired))


def test_access_token_expires_after_its_lifetime(user):
    token = str(AccessToken.for_user(user))
    assert _get(PROTECTED, token).status_code == 200
    lifetime = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]
    with time_machine.travel(datetime.datetime.now(datetime.UTC) + lifetime + datetime.timedelta(seconds=5)):
        _assert_refused(_get(PROTECTED, token))


def test_tampered_payload_is_401(user):
    """Swap the user id in the payload and keep the original signature."""
    other = UserFactory(username="other-admin", role=User.Role.ADMIN)
    header, payload, signature = str(AccessToken.for_user(user)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims[settings.SIMPLE_JWT.get("USER_ID_CLAIM", "user_id")] = other.pk
    _assert_refused(_get(ME, f"{header}.{_b64(claims)}.{signature}"))
    # Flipping one character of the signature is enough too.
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    _assert_refused(_get(ME, f"{header}.{payload}.{flipped}"))


def test_alg_none_token_is_401(user):
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(user))}."
    _assert_refused(_get(PROTECTED, unsigned))
    for alg in ("None", "NONE", "nOnE"):
        _assert_refused(_get(PROTECTED, f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(_claims(user))}."))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_wrong_key_and_wrong_algorithm_are_401(user):
    claims = _claims(user)
    _assert_refused(_get(PROTECTED, jwt.encode(claims, "not-the-servers-key-" * 3, algorithm="HS256")))
    # Right key, another HMAC algorithm: the server accepts only the algorithm it is configured with.
    _assert_refused(_get(PROTECTED, jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS512")))


def test_refresh_token_is_not_an_access_token(user):
    refresh = RefreshToken.for_user(user)
    _assert_refused(_get(PROTECTED, str(refresh)))


def test_token_for_a_deleted_user_is_401(db):
    ghost = UserFactory(username="ghost", role=User.Role.ADMIN)
    token = str(AccessToken.for_user(ghost))
    User.objects.filter(pk=ghost.pk).delete()
    _assert_refused(_get(PROTECTED, token))


@pytest.mark.parametrize("user_id", ["abc", "", " 1", "1.0", "٣", "99999999999999999999", None, 1.5, [1], {"id": 1}])
def test_a_signed_token_with_a_malformed_user_id_is_401(user, user_id):
    """Only a leaked or shared signing key produces these: still a 401 with the usual shape, never a 500."""
    claims = _claims(user)
    if user_id is None:
        del claims["user_id"]
    else:
        claims["user_id"] = user_id
    _assert_refused(_get(PROTECTED, jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")))


def test_a_signed_token_with_an_integer_user_id_is_accepted(user):
    """simplejwt writes the id as a string; an integer id (another issuer's habit) names the same user."""
    claims = {**_claims(user), "user_id": user.pk}
    token = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    assert _get(ME, token).json()["username"] == "victim"


def _login(username: str, password: str, *, ip: str = "10.0.0.1"):
    return APIClient().post(TOKEN, {"username": username, "password": password}, format="json", REMOTE_ADDR=ip)


def test_rotated_refresh_token_is_401():
    UserFactory(username="rotor", role=User.Role.TECHNICIAN)
    pair = _login("rotor", DEFAULT_PASSWORD).json()
    rotated = APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json")
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh"] != pair["refresh"]
    assert _get(ME, new["access"]).status_code == 200
    # Replaying the old refresh token (a stolen copy) fails; the new one still works.
    _assert_refused(APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json"))
    assert APIClient().post(REFRESH, {"refresh": new["refresh"]}, format="json").status_code == 200


def test_logged_out_refresh_token_is_401():
    UserFactory(username="leaver", role=User.Role.SALES_AGENT)
    pair = _login("leaver", DEFAULT_PASSWORD).json()
    assert APIClient().post(LOGOUT, {"refresh": pair["refresh"]}, format="json").status_code == 204
    _assert_refused(APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json"))
    # Logging out twice with the same token is refused too (it is no longer a credential).
    _assert_refused(APIClient().post(LOGOUT, {"refresh": pair["refresh"]}, format="json"))


def test_forged_refresh_tokens_are_401(user):
    refresh = RefreshToken.for_user(user)
    claims = dict(refresh.payload)
    for forged in (
        jwt.encode(claims, "not-the-servers-key-" * 3, algorithm="HS256"),
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        str(AccessToken.for_user(user)),  # an access token is not a refresh token
    ):
        _assert_refused(APIClient().post(REFRESH, {"refresh": forged}, format="json"))


def test_deactivated_user_is_locked_out_at_once():
    user = UserFactory(username="quitter", role=User.Role.TECHNICIAN)
    pair = _login("quitter", DEFAULT_PASSWORD).json()
    assert _get(ME, pair["access"]).status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=False)
    _assert_refused(_get(ME, pair["access"]))
    _assert_refused(APIClient().post(REFRESH, {"refresh": pair["refresh"]}, format="json"))
    _assert_refused(_login("quitter", DEFAULT_PASSWORD))


def test_login_errors_do_not_reveal_whether_the_username_exists():
    UserFactory(username="known", role=User.Role.TECHNICIAN)
    UserFactory(username="dormant", role=User.Role.TECHNICIAN, is_active=False)
    unknown = _login("nobody-by-this-name", "whatever-password", ip="10.0.0.2")
    wrong_password = _login("known", "whatever-password", ip="10.0.0.3")
    inactive = _login("dormant", DEFAULT_PASSWORD, ip="10.0.0.4")
    assert unknown.status_code == wrong_password.status_code == inactive.status_code == 401
    assert unknown.json() == wrong_password.json() == inactive.json()
    assert unknown["WWW-Authenticate"] == wrong_password["WWW-Authenticate"]
    body = json.dumps(unknown.json()).lower()
    for leak in ("exist", "not found", "unknown user", "inactive", "no such"):
        assert leak not in body, body
