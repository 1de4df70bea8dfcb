"""OpenAPI generation: read/write serializer pairs and documented error responses on every operation."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

_ERROR = {"$ref": "#/components/schemas/Error"}
_CONFLICT = {"$ref": "#/components/schemas/Conflict"}
_VALIDATION = {"$ref": "#/components/schemas/ValidationError"}

_ERROR_SCHEMAS = {
    "Error": {
        "type": "object",
        "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
        "required": ["detail"],
    },
    "Conflict": {
        "type": "object",
        "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
        "required": ["detail", "code"],
    },
    "ValidationError": {
        "type": "object",
        "description": "Field errors: each key is a field (or `non_field_errors`/`detail`), each value its messages.",
        "additionalProperties": {},
    },
}


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


def _response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Document the contract's error responses on every operation (see API.md "Status codes")."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(_ERROR_SCHEMAS)
    for path, methods in result.get("paths", {}).items():
        for method, operation in methods.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
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
    return result
