"""The OpenAPI description documents the offline-safe headers and answers on every operation they apply to."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

UNSAFE = ("post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def paths():
    return SchemaGenerator().get_schema(request=None, public=True)["paths"]


def _headers(operation):
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}


def test_every_unsafe_operation_but_the_token_endpoints_documents_idempotency_keys(paths):
    seen = 0
    for path, methods in paths.items():
        for method in UNSAFE:
            if method not in methods:
                continue
            operation = methods[method]
            if path.startswith("/api/auth/token/"):
                assert "Idempotency-Key" not in _headers(operation), path
                continue
            seen += 1
            assert "Idempotency-Key" in _headers(operation), (method, path)
            assert {"409", "422"} <= set(operation["responses"]), (method, path)
    assert seen > 20


def test_every_get_documents_if_none_match_and_304(paths):
    for path, methods in paths.items():
        if "get" in methods:
            operation = methods["get"]
            assert "If-None-Match" in _headers(operation), path
            assert "304" in operation["responses"], path
            assert "ETag" in operation["responses"]["200"].get("headers", {}), path


PRECONDITIONED = {
    ("put", "/api/jobs/{id}/"),
    ("patch", "/api/jobs/{id}/"),
    ("delete", "/api/jobs/{id}/"),
    ("post", "/api/jobs/{id}/cancel/"),
    ("post", "/api/jobs/{id}/complete/"),
    ("post", "/api/jobs/{id}/reopen/"),
    ("post", "/api/jobs/{id}/tasks/"),
    ("post", "/api/jobs/{id}/tasks/reorder/"),
    ("put", "/api/tasks/{id}/"),
    ("patch", "/api/tasks/{id}/"),
    ("delete", "/api/tasks/{id}/"),
    ("post", "/api/tasks/{id}/start/"),
    ("post", "/api/tasks/{id}/complete/"),
    ("post", "/api/tasks/{id}/reopen/"),
}


def test_if_match_and_412_exactly_on_the_precondition_bearing_writes(paths):
    documented = {
        (method, path)
        for path, methods in paths.items()
        for method, operation in methods.items()
        if method in UNSAFE and "If-Match" in _headers(operation)
    }
    assert documented == PRECONDITIONED
    for method, path in PRECONDITIONED:
        assert "412" in paths[path][method]["responses"]
