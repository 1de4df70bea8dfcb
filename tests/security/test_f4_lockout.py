"""Finding 4: brute-force protection without lockout. A stranger's wrong guesses, from anywhere, never make the right
password answer 429 for the account's owner; guessing is still slowed per (username, client), per client, and
across clients per username (a budget of failures that a correct password does not consume); and the checks are
atomic under concurrency."""

import threading

import pytest
from django.core.cache import caches
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from jobops.throttles import LoginUserThrottle
from tests.factories import DEFAULT_PASSWORD

from .conftest import TOKEN, login, post

pytestmark = pytest.mark.django_db


def test_a_stranger_cannot_lock_the_owner_out(technician, rates):
    rates(user="10/min")
    for n in range(25):
        response = post(TOKEN, {"username": "tech1", "password": "wrong"}, REMOTE_ADDR=f"203.0.113.{n % 3}")
        assert response.status_code in (401, 429)
    # The owner, from their own address, still gets in.
    login("tech1", REMOTE_ADDR="198.51.100.7")


def test_one_client_guessing_one_username_is_slowed(technician, rates):
    rates(user="5/min")
    codes = [
        post(TOKEN, {"username": "tech1", "password": "wrong"}, REMOTE_ADDR="203.0.113.1").status_code for _ in range(6)
    ]
    assert codes == [401] * 5 + [429]
    # Even the right password from that client waits: the bucket counts attempts, not only failures.
    assert (
        post(TOKEN, {"username": "tech1", "password": DEFAULT_PASSWORD}, REMOTE_ADDR="203.0.113.1").status_code == 429
    )


def test_distributed_guessing_is_capped_per_username_but_known_clients_still_get_in(technician, rates):
    rates(user="100/min", failures="5/hour")
    login("tech1", REMOTE_ADDR="198.51.100.7")  # the owner's usual client
    for n in range(5):
        assert post(TOKEN, {"username": "tech1", "password": "wrong"}, REMOTE_ADDR=f"203.0.113.{n}").status_code == 401
    # The budget of failures for tech1 is spent: a new client is refused before its password is even checked...
    blocked = post(TOKEN, {"username": "tech1", "password": DEFAULT_PASSWORD}, REMOTE_ADDR="203.0.113.50")
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    # ...while a client that logged in as tech1 before is not locked out.
    login("tech1", REMOTE_ADDR="198.51.100.7")


def test_a_correct_password_does_not_consume_the_failure_budget(technician, rates):
    rates(user="100/min", failures="3/hour")
    for _ in range(10):
        login("tech1", REMOTE_ADDR="203.0.113.9")
    for n in range(3):
        assert post(TOKEN, {"username": "tech1", "password": "wrong"}, REMOTE_ADDR=f"203.0.113.{n}").status_code == 401


def test_the_per_username_check_is_atomic(rates, monkeypatch):
    """Three concurrent clients (the same address: one bucket) get no more than the limit's 10 attempts through."""
    rates(user="10/min")
    backend = type(caches["default"])
    real_get = backend.get

    def slow_get(self, *args, **kwargs):
        value = real_get(self, *args, **kwargs)
        threading.Event().wait(0.02)  # widen the read-then-write window a non-atomic throttle has
        return value

    monkeypatch.setattr(backend, "get", slow_get)
    factory = APIRequestFactory()
    allowed = []
    lock = threading.Lock()

    def attempt():
        for _ in range(6):
            request = Request(
                factory.post(TOKEN, {"username": "tech1", "password": "x"}, format="json"), parsers=[JSONParser()]
            )
            ok = LoginUserThrottle().allow_request(request, None)
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=attempt) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 18
    assert allowed.count(True) == 10
