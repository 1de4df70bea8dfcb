import pytest
from django.test import Client, override_settings


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_unknown_api_url_is_json_404():
    response = Client().get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


@pytest.mark.django_db
def test_unknown_page_is_html_404():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_server_error_handler_is_json_for_api(rf):
    from jobops.views import server_failure

    response = server_failure(rf.get("/api/jobs/"))
    assert response.status_code == 500 and b"server_error" in response.content
    assert server_failure(rf.get("/admin/")).status_code == 500
