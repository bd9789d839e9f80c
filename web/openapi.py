"""The OpenAPI 3.1 document of the JSON API, generated from the route table.

Nothing here is written by hand per endpoint: paths, methods, roles, query parameters and body
schemas all come from ``web.routing.Endpoint`` declarations, so the document cannot drift from
what the dispatcher enforces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from web.csrf import STATE_CHANGING_METHODS
from web.routing import Endpoint
from web.validation import JsonSchema

OPENAPI_VERSION = "3.1.0"

_PATH_PARAMETER = re.compile(r"\{(\w+)(?::(\w+))?\}")

_STATUS_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Malformed request (not JSON, or a body where none is taken)",
    401: "Not logged in, session expired, or wrong credentials",
    403: "Role, CSRF token, Origin or source address refused",
    404: "Not found or not visible to you",
    409: "Conflicts with the current state",
    413: "Request body too large",
    415: "Body is not application/json",
    422: "A field is missing, unknown or invalid (error.field names it)",
    423: "Account locked (error.message says until when)",
    429: "Too many attempts from this address",
}

ERROR_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def openapi_path(path: str) -> str:
    """``/api/contacts/{id:int}`` -> ``/api/contacts/{id}``."""
    return _PATH_PARAMETER.sub(lambda match: "{" + match.group(1) + "}", path)


def _path_parameters(path: str) -> list[JsonSchema]:
    parameters: list[JsonSchema] = []
    for match in _PATH_PARAMETER.finditer(path):
        kind = "integer" if match.group(2) == "int" else "string"
        parameters.append(
            {"name": match.group(1), "in": "path", "required": True, "schema": {"type": kind}}
        )
    return parameters


def _error_statuses(endpoint: Endpoint) -> list[int]:
    statuses = {400, 413, 422}
    if not endpoint.access.public:
        statuses |= {401, 403}
    if "{" in endpoint.path:
        statuses.add(404)
    if endpoint.method in STATE_CHANGING_METHODS:
        statuses |= {403, 415}
    statuses.update(endpoint.errors)
    return sorted(statuses)


def _operation(endpoint: Endpoint) -> JsonSchema:
    operation: JsonSchema = {
        "operationId": endpoint.handler.__name__,
        "summary": endpoint.summary,
        "description": f"Allowed for: {endpoint.access.describe()}.",
        "tags": [endpoint.tag],
        "x-roles": sorted(role.value for role in endpoint.access.roles),
    }
    parameters = _path_parameters(endpoint.path)
    if endpoint.query is not None:
        for name, parameter in endpoint.query.parameters.items():
            entry: JsonSchema = {"name": name, "in": "query", "schema": parameter.schema}
            if parameter.description:
                entry["description"] = parameter.description
            parameters.append(entry)
    if endpoint.method in STATE_CHANGING_METHODS and not endpoint.access.public:
        parameters.append(
            {
                "name": "X-CSRF-Token",
                "in": "header",
                "required": True,
                "description": "the csrf_token returned at login",
                "schema": {"type": "string"},
            }
        )
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": endpoint.body.json_schema()}},
        }
    responses: JsonSchema = {
        str(endpoint.status): {
            "description": _STATUS_DESCRIPTIONS.get(endpoint.status, "OK"),
            "content": {"application/json": {"schema": {}}},
        }
    }
    for status in _error_statuses(endpoint):
        responses[str(status)] = {
            "description": _STATUS_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    operation["responses"] = responses
    if not endpoint.access.public:
        operation["security"] = [{"sessionCookie": []}]
    return operation


def openapi_document(endpoints: Sequence[Endpoint], title: str, version: str) -> JsonSchema:
    paths: dict[str, dict[str, JsonSchema]] = {}
    for endpoint in endpoints:
        paths.setdefault(openapi_path(endpoint.path), {})[endpoint.method.lower()] = _operation(
            endpoint
        )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "dialer_session"}
            },
        },
    }
