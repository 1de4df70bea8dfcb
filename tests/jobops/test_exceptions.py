import json

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


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("path", ["/api/no-such-thing/", "/api/jobs/x/y/z/", "/api/"])
def test_unknown_api_url_is_json_404_in_every_mode(debug, path):
    with override_settings(DEBUG=debug):
        response = Client().get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}
    assert response["X-Request-ID"]


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_unknown_page_outside_the_api_keeps_the_debug_page():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_an_html_500_of_the_api_becomes_json(rf):
    from django.http import HttpResponseServerError

    from jobops.middleware import ApiJsonErrorsMiddleware

    middleware = ApiJsonErrorsMiddleware(lambda request: HttpResponseServerError("<h1>Traceback</h1>"))
    response = middleware(rf.get("/api/jobs/"))
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"detail": "Internal server error.", "code": "server_error"}
    assert middleware(rf.get("/admin/")).content == b"<h1>Traceback</h1>"


def test_a_json_404_of_the_api_is_left_alone(rf):
    from django.http import JsonResponse

    from jobops.middleware import ApiJsonErrorsMiddleware

    body = JsonResponse({"detail": "No Job matches the given query.", "code": "not_found"}, status=404)
    assert ApiJsonErrorsMiddleware(lambda request: body)(rf.get("/api/jobs/7/")) is body


@pytest.mark.django_db
def test_landing_page_links_docs_admin_and_health():
    response = Client().get("/")
    assert response.status_code == 200
    page = response.content.decode()
    for link in ("/api/docs/", "/api/redoc/", "/api/schema/", "/admin/", "/healthz/", "/readyz/", "docs/API.md"):
        assert link in page, link
    assert Client().post("/").status_code == 405


def test_favicon_redirects_to_the_static_icon():
    response = Client().get("/favicon.ico")
    assert response.status_code == 302 and response["Location"].endswith(".svg")
