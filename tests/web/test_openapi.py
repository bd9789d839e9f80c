"""``/api/openapi.json`` describes every endpoint of the route table with its body schema."""

from __future__ import annotations

import httpx

from web.app import api_endpoints
from web.openapi import openapi_path


async def test_schema_lists_every_endpoint_with_its_body(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    paths = document["paths"]
    for endpoint in api_endpoints():
        operation = paths[openapi_path(endpoint.path)][endpoint.method.lower()]
        assert operation["summary"]
        assert str(endpoint.status) in operation["responses"]
        if endpoint.body is None:
            assert "requestBody" not in operation
            continue
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert set(schema["properties"]) == set(endpoint.body.fields)
        assert set(schema.get("required", [])) == set(endpoint.body.required)
    operation_count = sum(len(methods) for methods in paths.values())
    assert operation_count == len(api_endpoints())
    operation_ids = [
        operation["operationId"] for methods in paths.values() for operation in methods.values()
    ]
    assert len(set(operation_ids)) == len(operation_ids)


async def test_schema_details_a_client_relies_on(anonymous: httpx.AsyncClient) -> None:
    document = (await anonymous.get("/api/openapi.json")).json()
    create_contact = document["paths"]["/api/contacts"]["post"]
    body = create_contact["requestBody"]["content"]["application/json"]["schema"]
    phone = body["properties"]["phones"]["items"]
    assert phone["required"] == ["number"]
    assert phone["properties"]["kind"]["enum"] == ["mobile", "work", "home"]
    assert body["properties"]["follow_up_at"] == {
        "type": ["string", "null"],
        "format": "date-time",
    }
    assert "422" in create_contact["responses"]
    assert {"name": "X-CSRF-Token", "in": "header"}.items() <= create_contact["parameters"][
        0
    ].items()

    one_contact = document["paths"]["/api/contacts/{id}"]["get"]
    assert one_contact["parameters"][0] == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer"},
    }
    listing = document["paths"]["/api/contacts"]["get"]
    assert {parameter["name"] for parameter in listing["parameters"]} >= {
        "q",
        "status",
        "owner_id",
        "follow_up_due",
        "limit",
        "offset",
    }
    purge = document["paths"]["/api/contacts/{id}/purge"]["post"]
    assert purge["x-roles"] == ["admin"]
    login = document["paths"]["/api/session"]["post"]
    assert "security" not in login
    assert {"401", "423", "429"} <= set(login["responses"])
    assert document["components"]["schemas"]["Error"]["required"] == ["error"]
