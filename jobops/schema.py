"""OpenAPI generation: read/write serializer pairs, documented error responses and links on every operation.

Two postprocessing hooks run after drf-spectacular built the schema:

* ``add_error_responses`` documents the contract's error statuses (API.md "Status codes") on every operation, so a
  client (and the schemathesis run in ``tests/fuzz``) knows every status an operation can answer with.
* ``add_links`` adds OpenAPI links from every response that carries an object id to the operations on that object
  (``POST /api/jobs/`` -> ``/api/jobs/{id}/``, ``/cancel/``, ``/tasks/`` ...; a job's ``tasks`` ->
  ``/api/tasks/{id}/``), which is what lets a stateful fuzzer (and a generated client) walk from a created or
  listed object to its actions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.openapi import AutoSchema

#: The one error body (``jobops.exceptions.error_body``): every 401, 403, 404, 405, 409, 413, 415 and 429 is exactly
#: ``{"detail", "code"}``. Views that document an error response themselves use this reference too.
ERROR_REF: dict[str, Any] = {"$ref": "#/components/schemas/Error"}
_ERROR = ERROR_REF
_CONFLICT = ERROR_REF  # a 409 is an Error whose `code` names the rule (API.md "Status codes")
_VALIDATION = {"$ref": "#/components/schemas/ValidationError"}

_ERROR_SCHEMAS = {
    "Error": {
        "type": "object",
        "description": "Every error but a 400: a human-readable `detail` and a stable machine-readable `code`.",
        "properties": {
            "detail": {"type": "string", "description": "For people; may change."},
            "code": {"type": "string", "description": "For programs, e.g. `not_authenticated`, `job_frozen`."},
        },
        "required": ["detail", "code"],
    },
    "ValidationError": {
        "type": "object",
        "description": "Field errors: each key is a field (or `non_field_errors`/`detail`), each value its messages.",
        "additionalProperties": {},
    },
}

_METHODS = ("get", "post", "put", "patch", "delete")
# What drf-spectacular makes of `lookup_value_regex = r"[0-9]+"` (with and without its anchors).
_DIGITS_PATTERNS = frozenset({"^[0-9]+$", "[0-9]+"})


class JobOpsJWTScheme(SimpleJWTScheme):
    """The bearer scheme for ``accounts.authentication.JWTAuthentication`` (simplejwt's, with a leaner lookup)."""

    target_class = "accounts.authentication.JWTAuthentication"
    name = "jwtAuth"


class JobOpsAutoSchema(AutoSchema):
    """Requests are documented with the action's write serializer, responses with the read serializer."""

    def get_response_serializers(self) -> Any:
        read = getattr(self.view, "read_serializer_class", None)
        if (
            read is not None
            and self.method in ("POST", "PUT", "PATCH")
            and hasattr(self.view, "write_serializer_classes")
        ):
            if getattr(self.view, "action", None) in self.view.write_serializer_classes:
                return read
        return super().get_response_serializers()

    def get_auth(self) -> list[dict[str, Any]]:
        # drf-spectacular writes `security: [{}]` for an AllowAny view without authentication (the token endpoints):
        # generators read any `security` entry as "needs a token". No scheme at all means no requirement: say none.
        auths: list[dict[str, Any]] = super().get_auth()
        return [] if all(not requirement for requirement in auths) else auths

    def _resolve_path_parameters(self, variables: Any) -> Any:
        # A `lookup_value_regex` of digits (users, equipment) comes out as a string with a pattern; every other id
        # is an integer. The URL accepts digits only, so the id is an integer (>= 1) for clients too.
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if schema.get("type") == "string" and schema.get("pattern") in _DIGITS_PATTERNS:
                parameter["schema"] = {"type": "integer"}
        return parameters

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "query" and parameter.get("name") == "ordering":
                _document_ordering(parameter)
        filterset = getattr(self.view, "filterset_class", None)
        if filterset is not None:
            # django-filter treats `?status=` like an absent `status` (no filtering); say so, so that clients and
            # fuzzers know an empty value is accepted rather than a 400.
            names = set(filterset.base_filters)
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and parameter.get("name") in names:
                    parameter["allowEmptyValue"] = True
        if getattr(self.view, "throttle_classes", None):
            # A throttled view answers 429 with Retry-After once the caller's budget is spent.
            operation.setdefault("responses", {}).setdefault(
                "429",
                {
                    **_response("Too many requests: retry after the number of seconds in Retry-After.", _ERROR),
                    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
                },
            )
        _document_conditional_requests(self, operation)
        return operation


def _document_ordering(parameter: dict[str, Any]) -> None:
    """``?ordering=``: the repeated form (what generated clients send for an array) and the comma-separated form
    are the same list of keys (``jobs.filters.JobOrderingFilter``); descending keys get names in clients."""
    parameter["style"] = "form"
    parameter["explode"] = True
    items = parameter.get("schema", {}).get("items", {})
    values = items.get("enum")
    if values:
        items["x-enum-varnames"] = [
            f"{value[1:]}_desc".upper() if value.startswith("-") else value.upper() for value in values
        ]
    parameter["description"] = (
        "Sort keys, in order of precedence; `-` before a key sorts descending; `id` always breaks ties. Send "
        "them repeated (`?ordering=priority&ordering=-scheduled_date`) or comma-separated "
        "(`?ordering=priority,-scheduled_date`): both mean the same. An unknown key is a 400."
    )


# --- Offline-safe writes (API.md v2): Idempotency-Key, ETag, If-None-Match, If-Match ------------------------------
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ETAG_HEADER = {"schema": {"type": "string"}, "description": "Strong entity tag of this representation."}


def _header_parameter(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"in": "header", "name": name, "required": False, "description": description, "schema": schema}


def _document_conditional_requests(auto: AutoSchema, operation: dict[str, Any]) -> None:
    """Headers and responses of ``jobops.idempotency`` and ``jobops.conditional`` on the operations they apply to:
    ``Idempotency-Key`` (422, 409) on every unsafe method under ``/api/`` but the token endpoints; ``If-None-Match``
    (304, and the ``ETag`` of the 200) on every GET (the views' own tags, or ``BodyETagMiddleware``'s); ``If-Match``
    (412) on the actions a view lists in ``precondition_actions``."""
    from django.conf import settings

    method, path = auto.method, auto.path
    parameters = operation.setdefault("parameters", [])
    responses = operation.setdefault("responses", {})
    if method in _UNSAFE and not any(path.startswith(p) for p in settings.IDEMPOTENCY_EXEMPT_PATHS):
        parameters.append(
            _header_parameter(
                "Idempotency-Key",
                "Makes a retry safe: the first request with a key runs; a repeat by the same user within "
                "IDEMPOTENCY_TTL_HOURS gets the stored status and body again (header `Idempotent-Replayed: true`) "
                "and runs nothing. 1-255 visible ASCII characters.",
                {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
            )
        )
        responses.setdefault(
            "409",
            _response(
                "Business-rule conflict, or `idempotency_key_in_use`: a request with this key is still running.",
                _CONFLICT,
            ),
        )
        responses["422"] = _response(
            "`idempotency_key_reused`: this Idempotency-Key was used for another method, path or body.", _CONFLICT
        )
        for status, response in responses.items():
            if str(status).startswith("2"):
                response.setdefault("headers", {})["Idempotent-Replayed"] = {
                    "schema": {"type": "string", "enum": ["true"]},
                    "description": "Present on a replay of a stored response.",
                }
    if method == "GET":
        parameters.append(
            _header_parameter(
                "If-None-Match",
                "ETags the client holds: when one is current the answer is 304 with no body (empty: no condition).",
                {"type": "string"},
            )
        )
        if "200" in responses:
            responses["200"].setdefault("headers", {})["ETag"] = _ETAG_HEADER
        responses["304"] = {
            "description": "Not modified: the client's copy (If-None-Match) is current.",
            "headers": {"ETag": _ETAG_HEADER},
        }
    action = getattr(auto.view, "action", None)
    if method in _UNSAFE and action in getattr(auto.view, "precondition_actions", ()):
        parameters.append(
            _header_parameter(
                "If-Match",
                "The ETag the client last read (of the job, or of the task for task writes): the write runs only "
                "if it is still current (or `*`). Without it (or empty) the write runs as usual.",
                {"type": "string"},
            )
        )
        responses["412"] = {
            **_response(
                "`precondition_failed`: the object changed since the ETag in If-Match; read it again.", _CONFLICT
            ),
            "headers": {"ETag": {**_ETAG_HEADER, "description": "The current ETag."}},
        }
        for status, response in responses.items():
            if str(status).startswith("2") and status != "204":
                response.setdefault("headers", {})["ETag"] = {**_ETAG_HEADER, "description": "The new ETag."}


def _response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Document the contract's error responses on every operation (see API.md "Status codes")."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(_ERROR_SCHEMAS)
    for path, methods in result.get("paths", {}).items():
        for method, operation in methods.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            secured = any("jwtAuth" in requirement for requirement in operation.get("security", []))
            responses.setdefault("400", _response("Bad input: field errors.", _VALIDATION))
            if secured:
                responses.setdefault("401", _response("Missing, invalid or expired token.", _ERROR))
                responses.setdefault("403", _response("The caller's role may not do this.", _ERROR))
            if "{" in path or operation.get("parameters"):
                responses.setdefault("404", _response("Not found, or outside the caller's scope.", _ERROR))
            if method != "get":
                responses.setdefault("409", _response("Business-rule conflict.", _CONFLICT))
            if "requestBody" in operation:
                responses.setdefault("413", _response("Request body larger than the server accepts.", _ERROR))
                responses.setdefault("415", _response("The body is not `application/json`.", _ERROR))
            if any(parameter.get("in") == "query" for parameter in operation.get("parameters", [])):
                # Not JobOps' answer: gunicorn's own (an HTML page) when the request line is over its
                # limit_request_line, which an over-long query string can reach before Django sees it.
                responses.setdefault(
                    "414", {"description": "URI too long: the query string is over the server's limit."}
                )
            # Any operation, when PostgreSQL cannot be reached for a moment (jobops.unavailable).
            responses.setdefault(
                "503",
                {
                    **_response(
                        "`service_unavailable`: the database cannot be reached for a moment. The change may or "
                        "may not have been applied; retry with the same Idempotency-Key (a keyed write is safe to "
                        "retry) after `Retry-After` seconds.",
                        _ERROR,
                    ),
                    "headers": {
                        "Retry-After": {
                            "schema": {"type": "integer", "minimum": 1},
                            "description": "Seconds to wait before retrying.",
                        }
                    },
                },
            )
            for code, response in responses.items():
                # An error a view documents with a description only (a 410, say) still has the one Error body.
                if str(code).startswith("4") and str(code) not in ("400", "414") and "content" not in response:
                    response["content"] = {"application/json": {"schema": _ERROR}}
            for parameter in operation.get("parameters", []):
                # Object ids are positive: documenting it keeps generated clients and fuzzers from sending 0 or -1.
                schema = parameter.get("schema", {})
                if parameter.get("in") == "path" and parameter.get("name") == "id" and schema.get("type") == "integer":
                    schema.setdefault("minimum", 1)
    return result


# --- Links ------------------------------------------------------------------------------------------------------
_MEMBER = re.compile(r"^(?P<collection>.*/)\{id\}/")
_REF_PREFIX = "#/components/schemas/"
# Object shapes that no GET of their own collection returns, so the schema cannot tell what they are.
_EXTRA_RESOURCES = {"DashboardTask": "/api/tasks/", "DashboardJob": "/api/jobs/"}


def _component(ref: str, components: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = ref.removeprefix(_REF_PREFIX)
    return name, components.get(name, {})


def _body_schema(response: dict[str, Any]) -> dict[str, Any] | None:
    content = response.get("content", {}).get("application/json")
    return content.get("schema") if content else None


def _resource_by_component(paths: dict[str, Any], components: dict[str, Any]) -> dict[str, str]:
    """Component name -> the collection path (``/api/jobs/``) whose member operations take that object's id.

    Learnt from the schema itself: what ``GET <collection>{id}/`` returns, and what the items of ``GET
    <collection>`` (paginated or a plain array) are.
    """
    mapping = {name: path for name, path in _EXTRA_RESOURCES.items() if path in paths}
    for path, methods in paths.items():
        get = methods.get("get")
        if get is None:
            continue
        schema = _body_schema(get.get("responses", {}).get("200", {})) or {}
        member = re.fullmatch(r"(?P<collection>.*/)\{id\}/", path)
        if member and "$ref" in schema:
            mapping.setdefault(schema["$ref"].removeprefix(_REF_PREFIX), member["collection"])
            continue
        if "{" in path:
            continue
        items = schema.get("items")
        if "$ref" in schema:
            items = _component(schema["$ref"], components)[1].get("properties", {}).get("results", {}).get("items")
        if isinstance(items, dict) and "$ref" in items:
            mapping.setdefault(items["$ref"].removeprefix(_REF_PREFIX), path)
    return mapping


def _id_pointers(
    schema: dict[str, Any], components: dict[str, Any], resources: dict[str, str], pointer: str = "", depth: int = 0
) -> Iterator[tuple[str, str]]:
    """(JSON pointer to an object id in the body, collection of that object) for every id a body carries."""
    if depth > 4 or not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name, target = _component(schema["$ref"], components)
        if name in resources and "id" in target.get("properties", {}):
            yield f"{pointer}/id", resources[name]
        schema = target
    if "items" in schema:
        yield from _id_pointers(schema.get("items", {}), components, resources, f"{pointer}/0", depth + 1)
        return
    for prop, subschema in schema.get("properties", {}).items():
        if isinstance(subschema, dict) and ("items" in subschema or "$ref" in subschema):
            yield from _id_pointers(subschema, components, resources, f"{pointer}/{prop}", depth + 1)


def add_links(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Link every response that carries object ids to the operations on those objects (OpenAPI 3 ``links``)."""
    paths: dict[str, Any] = result.get("paths", {})
    components: dict[str, Any] = result.get("components", {}).get("schemas", {})
    resources = _resource_by_component(paths, components)
    members: dict[str, list[str]] = {}
    for path, methods in paths.items():
        match = _MEMBER.match(path)
        if match:
            for method, operation in methods.items():
                if method in _METHODS and "operationId" in operation:
                    members.setdefault(match["collection"], []).append(operation["operationId"])
    for methods in paths.values():
        for method, operation in methods.items():
            if method not in _METHODS:
                continue
            for status, response in operation.get("responses", {}).items():
                schema = _body_schema(response) if str(status).startswith("2") else None
                if not schema:
                    continue
                links: dict[str, Any] = {}
                for pointer, collection in _id_pointers(schema, components, resources):
                    for target in members.get(collection, []):
                        name = target if pointer == "/id" else f"{target}_from{pointer.replace('/', '_')}"
                        if target == operation.get("operationId") and pointer == "/id":
                            continue
                        links[name] = {
                            "operationId": target,
                            "parameters": {"id": f"$response.body#{pointer}"},
                        }
                if links:
                    response["links"] = links
    return result
