"""What a generated client reads from the OpenAPI schema (issue 18): security, id types, enum names, one Error."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import client_for


@pytest.fixture(scope="module")
def schema() -> dict:
    return Client().get("/api/schema/?format=json").json()


def _operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/auth/token/refresh/", "/api/auth/logout/"])
def test_token_endpoints_declare_no_security_requirement(schema, path):
    assert schema["paths"][path]["post"].get("security", []) == []


def test_every_other_operation_names_the_bearer_scheme(schema):
    for path, method, operation in _operations(schema):
        if path in ("/api/auth/token/", "/api/auth/token/refresh/", "/api/auth/logout/"):
            continue
        if path in ("/api/attachments/{id}/content/", "/api/attachments/{id}/thumbnail/"):  # signed links, no JWT
            assert operation.get("security") in ([{}], [], None), operation.get("security")
            continue
        assert {"jwtAuth": []} in operation.get("security", []), (method, path)


def test_every_id_path_parameter_is_an_integer(schema):
    seen = 0
    for path, method, operation in _operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] == "id":
                seen += 1
                assert parameter["schema"] == {"type": "integer", "minimum": 1}, (method, path, parameter)
    assert seen > 20


def test_ordering_is_a_repeated_array_with_named_descending_keys(schema):
    (ordering,) = [p for p in schema["paths"]["/api/jobs/"]["get"]["parameters"] if p["name"] == "ordering"]
    assert ordering["style"] == "form" and ordering["explode"] is True
    items = ordering["schema"]["items"]
    names = dict(zip(items["enum"], items["x-enum-varnames"], strict=True))
    assert names["-priority"] == "PRIORITY_DESC" and names["scheduled_date"] == "SCHEDULED_DATE"
    assert len(set(names.values())) == len(names)


def test_audit_instants_are_date_times(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/api/audit/"]["get"]["parameters"]}
    for name in ("at_after", "at_before"):
        assert parameters[name]["schema"] == {"type": "string", "format": "date-time"}


def test_one_error_schema_on_every_error_response(schema):
    components = schema["components"]["schemas"]
    assert "ErrorDetail" not in components and "Conflict" not in components
    assert components["Error"]["required"] == ["detail", "code"]
    assert set(components["Error"]["properties"]) == {"detail", "code"}
    for path, method, operation in _operations(schema):
        for status, response in operation["responses"].items():
            if status == "414":  # gunicorn's page for an over-long request line, not an answer of JobOps
                assert "content" not in response, (method, path)
            elif status.startswith("4") and status != "400":
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (
                    method,
                    path,
                    status,
                )


# --- the error bodies are exactly the documented Error -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "request_",
    [
        lambda admin, tech: APIClient().get("/api/jobs/"),
        lambda admin, tech: APIClient().get("/api/jobs/", HTTP_AUTHORIZATION="Bearer not-a-token"),
        lambda admin, tech: APIClient().post("/api/auth/token/refresh/", {"refresh": "not-a-token"}, format="json"),
        lambda admin, tech: APIClient().post("/api/auth/token/", {"username": "x", "password": "y"}, format="json"),
        lambda admin, tech: client_for(tech).get("/api/users/"),
        lambda admin, tech: client_for(admin).get("/api/jobs/999999/"),
        lambda admin, tech: client_for(admin).get("/api/jobs/?page=99"),
        lambda admin, tech: client_for(admin).delete("/api/audit/1/"),
        lambda admin, tech: client_for(admin).post("/api/jobs/", "x", content_type="text/plain"),
        lambda admin, tech: client_for(admin).get("/api/no-such-thing/"),
    ],
    ids=["no-token", "bad-token", "bad-refresh", "bad-login", "role", "not-found", "page", "method", "media", "url"],
)
def test_error_bodies_are_exactly_detail_and_code(admin_user, technician, request_):
    response = request_(admin_user, technician)
    assert 401 <= response.status_code < 500, response.content
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["code"], str) and body["code"]


def test_an_error_documented_without_a_body_gets_the_error_schema():
    from jobops.schema import add_error_responses

    operation = {"responses": {"200": {"description": "ok"}, "410": {"description": "`cursor_expired`"}}}
    result = add_error_responses({"paths": {"/api/x/": {"get": operation}}}, None, None, True)
    gone = result["paths"]["/api/x/"]["get"]["responses"]["410"]
    assert gone["description"] == "`cursor_expired`"
    assert gone["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "content" not in result["paths"]["/api/x/"]["get"]["responses"]["200"]


def test_every_operation_with_a_query_string_documents_gunicorns_414(schema):
    """Fuzz finding (seed 229461755): an over-long, schema-violating query string passed gunicorn's request-line
    limit and got its 414 page, undocumented (ST103) and not counted as a rejection (ST201)."""
    seen = 0
    for path, method, operation in _operations(schema):
        if any(parameter["in"] == "query" for parameter in operation.get("parameters", [])):
            seen += 1
            assert "414" in operation["responses"], (method, path)
    assert seen > 10


def test_every_operation_documents_the_503_of_an_unreachable_database(schema):
    """Issue 19: any operation answers 503 ``service_unavailable`` with Retry-After while PostgreSQL is unreachable
    (jobops.unavailable); documented with the one Error body."""
    seen = 0
    for path, method, operation in _operations(schema):
        seen += 1
        response = operation["responses"]["503"]
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (
            method,
            path,
        )
        assert response["headers"]["Retry-After"]["schema"]["type"] == "integer", (method, path)
    assert seen > 10


def _patterns(node, where=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield where, value
            else:
                yield from _patterns(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _patterns(value, f"{where}/{index}")


def test_every_published_pattern_means_the_same_in_every_regex_dialect(schema):
    """Fuzz finding (seed 2127067611): the username's pattern was Django's ``^[\\w.@+-]+$``. ``\\w`` is ASCII in the
    ECMA-262 dialect JSON Schema specifies and any Unicode letter in Python's, so the server took ``"ï"`` while the
    schema refused it (ST201). A class shorthand (``\\w \\d \\s \\b`` and their negations) means different things in
    different dialects; a published pattern spells its characters out."""
    patterns = list(_patterns(schema))
    assert len(patterns) > 20
    for where, pattern in patterns:
        assert not re.search(r"(?<!\\)(?:\\\\)*\\[wWdDsSbB]", pattern), (where, pattern)
