import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory


@pytest.mark.django_db
def test_admin_login_form_is_throttled_per_username(settings, request):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"login_ip": "100/min", "login_user": "3/min", "login_failures": "1000/hour"},
    }
    UserFactory(username="root", role="admin", is_staff=True, is_superuser=True)
    # The throttles count in fixed windows: the clock stands still so that the test cannot straddle two.
    clock = time_machine.travel(timezone.now(), tick=False)
    clock.start()
    request.addfinalizer(clock.stop)
    client = Client()
    codes = [client.post("/admin/login/", {"username": "root", "password": "wrong"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    # the API's login shares the bucket
    assert (
        client.post(
            "/api/auth/token/", {"username": "root", "password": "wrong"}, content_type="application/json"
        ).status_code
        == 429
    )
    # another username is not affected
    assert client.post("/admin/login/", {"username": "someone", "password": "x"}).status_code == 200
