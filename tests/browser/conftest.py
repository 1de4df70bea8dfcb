"""The browser tests' live server listens on 127.0.0.1 (not pytest-django's default "localhost"), so the
"no request leaves the machine" assertion can demand exactly that address. Overrides ``live_server`` for this
directory only; pytest-django's ``_live_server_helper`` wires it to the test database as usual."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_django.live_server_helper import LiveServer


@pytest.fixture(scope="session")
def live_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    server = LiveServer("127.0.0.1")
    yield server
    server.stop()
