"""The OpenAPI document describes every response a client can get, errors included, with the one error schema."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from helpers.factories import Account

ERROR_REF = "#/components/schemas/ErrorBody"
#: Every authenticated operation can answer these (bad JSON, key, suspension, not found, size, validation, limit).
#: Under /api/v1 but answered without a key: the leaked-key report.
PUBLIC_API_PATHS = {"/api/v1/leaked-keys", "/api/v1/members/invitations/accept"}
AUTHENTICATED_ERRORS = {"400", "401", "403", "404", "413", "422", "429"}
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit-Policy",
    "RateLimit",
}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def _schema_ref(response: dict[str, Any]) -> str | None:
    ref: str | None = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    return ref


async def test_every_api_operation_documents_its_errors(document: dict[str, Any]) -> None:
    api_operations = [
        (m, p, op) for m, p, op in _operations(document) if p.startswith("/api/v1") and p not in PUBLIC_API_PATHS
    ]
    assert len(api_operations) >= 22
    for method, path, op in api_operations:
        responses = op["responses"]
        assert set(responses) >= AUTHENTICATED_ERRORS, (method, path, sorted(responses))
        for status, response in responses.items():
            assert response.get("description"), (method, path, status)
            if status.startswith(("4", "5")):
                assert _schema_ref(response) == ERROR_REF, (method, path, status, response)
        successes = [s for s in responses if s.startswith("2")]
        assert len(successes) == 1, (method, path, successes)
        if successes[0] != "204":
            assert _schema_ref(responses[successes[0]]) or responses[successes[0]]["content"], (method, path)
        assert op.get("security") == [{"HTTPBearer": []}], (method, path)
        assert "WWW-Authenticate" in responses["401"]["headers"]
        assert {"Retry-After", "X-RateLimit-Reset"} <= set(responses["429"]["headers"])
        for status, response in responses.items():
            # The middleware adds them to every response after the key is accepted; 401/403/413 come before.
            documented = set(response.get("headers", {}))
            if status in {"401", "403", "413"}:
                assert not documented & RATE_LIMIT_HEADERS, (method, path, status)
            else:
                assert documented >= RATE_LIMIT_HEADERS, (method, path, status)


async def test_documented_rate_limit_headers_are_sent(
    client: httpx.AsyncClient, account: Account, document: dict[str, Any]
) -> None:
    listed = await client.get("/api/v1/prompts", headers=account.headers)
    missing = await client.get("/api/v1/prompts/nope", headers=account.headers)
    assert (listed.status_code, missing.status_code) == (200, 404)
    for response in (listed, missing):
        responses = document["paths"][response.request.url.path.replace("nope", "{item_id}")]["get"]["responses"]
        documented = responses[str(response.status_code)]["headers"]
        assert {name.lower() for name in documented} <= set(response.headers), response.status_code


async def test_conditional_writes_document_409_and_412(document: dict[str, Any]) -> None:
    for path in ["/api/v1/prompts/{item_id}", "/api/v1/memories/{item_id}", "/api/v1/artifacts/{project}/{slug}"]:
        put = document["paths"][path]["put"]
        assert {"409", "412"} <= set(put["responses"]), path
        assert any(p["name"].lower() == "if-match" and p["in"] == "header" for p in put["parameters"]), path
    for path in ["/api/v1/prompts", "/api/v1/artifacts"]:
        assert "409" in document["paths"][path]["post"]["responses"], path


async def test_error_schema_is_code_and_message(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["error"]
    assert {"code", "message"} <= set(schemas["ErrorDetail"]["required"])
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer vib_...`",
    }


async def test_public_operations_need_no_key_and_readiness_documents_503(document: dict[str, Any]) -> None:
    public = {(m, p) for m, p, op in _operations(document) if not p.startswith("/api/v1") or p in PUBLIC_API_PATHS}
    assert {("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/api/v1/leaked-keys")} <= public
    leak = document["paths"]["/api/v1/leaked-keys"]["post"]["responses"]
    assert set(leak) == {"202", "400", "413", "422", "429"} and "Retry-After" in leak["429"]["headers"]
    assert not any(set(r.get("headers", {})) & RATE_LIMIT_HEADERS for r in leak.values())
    for method, path, op in _operations(document):
        if (method, path) in public:
            assert "security" not in op, path
    assert _schema_ref(document["paths"]["/readyz"]["get"]["responses"]["503"]) == ERROR_REF


async def test_the_key_appears_only_in_create_and_rotate_responses(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "key" in schemas["ApiKeyCreated"]["properties"]
    assert "key" not in schemas["ApiKeyRead"]["properties"]
    for method, path, op in _operations(document):
        success = next(r for s, r in op["responses"].items() if s.startswith("2"))
        if _schema_ref(success) == "#/components/schemas/ApiKeyCreated":
            assert (method, path) in {("POST", "/api/v1/api-keys"), ("POST", "/api/v1/api-keys/{key_id}/rotate")}


async def test_stored_text_fields_document_that_nul_is_refused(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for model, field in [("PromptCreate", "content"), ("MemoryCreate", "content"), ("ArtifactCreate", "title")]:
        assert schemas[model]["properties"][field]["pattern"] == "^[^\\x00]*$", (model, field)
