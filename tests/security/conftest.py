"""Shared helpers of the pen-test regression tests (issue 17): one module per finding."""

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD

TOKEN = "/api/auth/token/"
REFRESH = "/api/auth/token/refresh/"
ME = "/api/auth/me/"


def post(url, data, client=None, **extra):
    return (client or APIClient()).post(url, data, format="json", **extra)


def login(username, password=DEFAULT_PASSWORD, **extra):
    response = post(TOKEN, {"username": username, "password": password}, **extra)
    assert response.status_code == 200, response.content
    return response.json()


def bearer(access):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


@pytest.fixture
def rates(settings):
    """``rates(ip=..., user=..., failures=...)`` sets the login throttle rates for one test. The clock stands still
    meanwhile: the throttles count in fixed windows, and a test must not straddle two."""

    def set_rates(ip="1000/min", user="1000/min", failures="1000/hour"):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"login_ip": ip, "login_user": user, "login_failures": failures},
        }

    with time_machine.travel(timezone.now(), tick=False):
        yield set_rates
