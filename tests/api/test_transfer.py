"""Export and import over REST (DESIGN.md "Content: versions, search, projects, export"): a streamed JSONL export,
an all-or-nothing idempotent import, a round trip into another tenant, the reference MCP memory server's
``memory.jsonl``, and each bad input."""

from __future__ import annotations

import json
from typing import Any

import httpx

from helpers.api_errors import assert_error
from helpers.factories import Account

EXPORT = "/api/v1/export"
IMPORT = "/api/v1/import"
NDJSON = {"Content-Type": "application/x-ndjson"}


async def _seed(client: httpx.AsyncClient, account: Account) -> None:
    h = account.headers
    for body in (
        {"name": "review", "content": "Review {{file}}", "description": "Code review", "tags": ["code"]},
        {"name": "unicode.prompt", "content": "Grüße \u2028 line separator inside", "tags": []},
    ):
        assert (await client.post("/api/v1/prompts", json=body, headers=h)).status_code == 201
    artifact = {"project": "web", "slug": "plan", "title": "Plan", "content": "# Plan\n\nsteps", "tags": ["doc"]}
    assert (await client.post("/api/v1/artifacts", json=artifact, headers=h)).status_code == 201
    json_artifact = {**artifact, "slug": "conf", "content": '{"a": 1}', "content_type": "application/json"}
    assert (await client.post("/api/v1/artifacts", json=json_artifact, headers=h)).status_code == 201
    for body in (
        {"content": "Prefers tabs", "tags": ["style"], "project": "web"},
        {"content": "Prefers tabs", "tags": ["style"]},  # same text, no project: a different memory
        {"content": "Deploys on Fridays"},
    ):
        assert (await client.post("/api/v1/memories", json=body, headers=h)).status_code == 201


def _lines(body: str) -> list[dict[str, Any]]:
    assert body == "" or body.endswith("\n")
    return [json.loads(line) for line in body.split("\n") if line]


def _canonical(body: str) -> list[str]:
    return sorted(json.dumps(line, sort_keys=True) for line in _lines(body))


async def _export(client: httpx.AsyncClient, account: Account) -> str:
    response = await client.get(EXPORT, headers=account.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert "content-length" not in response.headers  # streamed as it is read, not built first
    return response.text


async def _import(client: httpx.AsyncClient, account: Account, body: str | bytes) -> httpx.Response:
    return await client.post(IMPORT, content=body, headers={**account.headers, **NDJSON})


async def test_export_has_every_object_without_ids(client: httpx.AsyncClient, account: Account) -> None:
    await _seed(client, account)
    lines = _lines(await _export(client, account))
    assert [line["type"] for line in lines] == ["prompt"] * 2 + ["artifact"] * 2 + ["memory"] * 3
    for line in lines:
        assert not {"id", "version", "created_at", "updated_at", "tenant_id"} & set(line), line
    by_name = {line["name"]: line for line in lines if line["type"] == "prompt"}
    review = by_name["review"]
    # A prompt's history: its versions (numbers and times are history, not this server's ids) and labels.
    (first,) = review.pop("versions")
    assert first.pop("created_at").endswith("+00:00")
    assert first == {
        "version": 1,
        "name": "review",
        "description": "Code review",
        "content": "Review {{file}}",
        "tags": ["code"],
    }
    assert review == {
        "type": "prompt",
        "name": "review",
        "description": "Code review",
        "content": "Review {{file}}",
        "tags": ["code"],
        "labels": {},
    }
    # A raw U+2028 does not split the line.
    assert by_name["unicode.prompt"]["content"] == "Grüße \u2028 line separator inside"
    assert {"type": "memory", "project": None, "content": "Deploys on Fridays", "tags": []} in lines


async def test_round_trip_into_another_tenant_and_twice_adds_nothing(
    client: httpx.AsyncClient, account: Account, other_account: Account
) -> None:
    await _seed(client, account)
    exported = await _export(client, account)

    first = await _import(client, other_account, exported)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "created": 7,
        "updated": 0,
        "unchanged": 0,
        "by_type": {
            "prompt": {"created": 2, "updated": 0, "unchanged": 0},
            "artifact": {"created": 2, "updated": 0, "unchanged": 0},
            "memory": {"created": 3, "updated": 0, "unchanged": 0},
        },
    }
    assert _canonical(await _export(client, other_account)) == _canonical(exported)

    again = await _import(client, other_account, exported)
    assert (again.json()["created"], again.json()["updated"], again.json()["unchanged"]) == (0, 0, 7)
    assert _canonical(await _export(client, other_account)) == _canonical(exported)
    # Importing into the tenant it came from adds nothing either.
    same = (await _import(client, account, exported)).json()
    assert (same["created"], same["unchanged"]) == (0, 7)
    listed = await client.get("/api/v1/memories", headers=other_account.headers)
    assert len(listed.json()["items"]) == 3


async def test_changed_lines_update_by_natural_key(client: httpx.AsyncClient, account: Account) -> None:
    await _seed(client, account)
    lines = _lines(await _export(client, account))
    # Picked by natural key: rows made in one millisecond have no creation order.
    (review,) = [line for line in lines if line.get("name") == "review"]
    (plan,) = [line for line in lines if line.get("slug") == "plan"]
    (web_memory,) = [line for line in lines if line["type"] == "memory" and line["project"] == "web"]
    review["content"] = "Review {{file}} carefully"
    plan["title"] = "The plan"
    web_memory["tags"] = ["style", "go"]
    body = "".join(json.dumps(line) + "\n" for line in lines)
    result = (await _import(client, account, body)).json()
    assert (result["created"], result["updated"], result["unchanged"]) == (0, 3, 4)
    prompts = (await client.get("/api/v1/prompts", params={"q": "carefully"}, headers=account.headers)).json()
    assert [p["name"] for p in prompts["items"]] == ["review"] and prompts["items"][0]["version"] == 2
    plan = (await client.get("/api/v1/artifacts/web/plan", headers=account.headers)).json()
    assert plan["title"] == "The plan"
    web = (await client.get("/api/v1/memories", params={"project": "web"}, headers=account.headers)).json()
    assert [m["tags"] for m in web["items"]] == [["style", "go"]]


async def test_prompt_versions_and_labels_are_imported(client: httpx.AsyncClient, account: Account) -> None:
    # More in tests/api/test_transfer_versions.py.
    line = {
        "type": "prompt",
        "name": "versioned",
        "content": "v2",
        "versions": [{"version": 1, "content": "v1"}, {"version": 2, "content": "v2"}],
        "labels": {"production": 1},
    }
    result = await _import(client, account, json.dumps(line) + "\n")
    assert result.status_code == 200, result.text
    assert result.json()["created"] == 1
    (prompt,) = (await client.get("/api/v1/prompts", headers=account.headers)).json()["items"]
    assert (prompt["content"], prompt["version"]) == ("v2", 2)
    served = await client.get(
        f"/api/v1/prompts/{prompt['id']}", params={"label": "production"}, headers=account.headers
    )
    assert served.json()["content"] == "v1"


async def test_reference_memory_server_file(client: httpx.AsyncClient, account: Account) -> None:
    # Lines as modelcontextprotocol/servers src/memory writes them (saveGraph: entities, then relations).
    graph = [
        {"type": "entity", "name": "John_Smith", "entityType": "person", "observations": ["Speaks fluent Spanish"]},
        {
            "type": "entity",
            "name": "Anthropic",
            "entityType": "organization",
            "observations": ["Makes Claude", "Speaks fluent Spanish"],
        },
        {"type": "entity", "name": "Empty", "entityType": "thing", "observations": []},
        {"type": "relation", "from": "John_Smith", "to": "Anthropic", "relationType": "works_at"},
    ]
    body = "\n".join(json.dumps(line, separators=(",", ":")) for line in graph) + "\n"
    first = await _import(client, account, body)
    assert first.status_code == 200, first.text
    assert first.json()["created"] == 4 and first.json()["by_type"] == {
        "memory": {"created": 4, "updated": 0, "unchanged": 0}
    }
    items = (await client.get("/api/v1/memories", headers=account.headers)).json()["items"]
    assert {m["content"]: m["tags"] for m in items} == {
        "John_Smith: Speaks fluent Spanish": ["John_Smith", "person"],
        "Anthropic: Makes Claude": ["Anthropic", "organization"],
        "Anthropic: Speaks fluent Spanish": ["Anthropic", "organization"],
        "John_Smith works_at Anthropic": ["relation", "John_Smith", "Anthropic"],
    }
    by_entity = await client.get("/api/v1/memories", params={"tag": "Anthropic"}, headers=account.headers)
    assert len(by_entity.json()["items"]) == 3
    again = (await _import(client, account, body)).json()
    assert (again["created"], again["unchanged"]) == (0, 4)


# -- bad input ----------------------------------------------------------------------------------------------------
async def _assert_nothing_imported(client: httpx.AsyncClient, account: Account) -> None:
    assert await _export(client, account) == ""


async def test_bad_line_in_the_middle_imports_nothing(client: httpx.AsyncClient, account: Account) -> None:
    body = (
        json.dumps({"type": "prompt", "name": "good", "content": "kept?"})
        + "\n"
        + json.dumps({"type": "memory", "content": "also fine"})
        + "\n"
        + json.dumps({"type": "artifact", "project": "Bad Project", "slug": "s", "title": "t", "content": "c"})
        + "\n"
        + json.dumps({"type": "memory", "content": "after the bad line"})
        + "\n"
    )
    error = assert_error(await _import(client, account, body), 422, "invalid_input")
    assert error["message"].startswith("line 3: project:"), error
    await _assert_nothing_imported(client, account)


async def test_each_kind_of_bad_line_is_a_422_naming_it(client: httpx.AsyncClient, account: Account) -> None:
    good = json.dumps({"type": "memory", "content": "fine"})
    cases = {
        "not json {": "line 2: not JSON",
        '["a", "list"]': "line 2: not a JSON object",
        '{"type": "note", "content": "x"}': 'line 2: unknown type "note"',
        '{"content": "no type"}': "line 2: unknown type null",
        '{"type": "memory", "content": "x", "id": "0000"}': "line 2: id: Extra inputs are not permitted",
        '{"type": "memory", "content": ""}': "line 2: content:",
        '{"type": "prompt", "content": "nameless"}': "line 2: name: Field required",
        '{"type": "memory", "content": "nul \\u0000 inside"}': "line 2: content:",
        '{"type": "entity", "name": "", "entityType": "x", "observations": []}': "line 2: name:",
        '{"type": "relation", "from": "a", "to": "b"}': "line 2: relationType: Field required",
    }
    for bad, message in cases.items():
        error = assert_error(await _import(client, account, f"{good}\n{bad}\n{good}\n"), 422, "invalid_input")
        assert error["message"].startswith(message), (bad, error)
    error = assert_error(await _import(client, account, good.encode() + b"\n\xff\xfe\n"), 422, "invalid_input")
    assert error["message"] == "line 2: not UTF-8 text"
    await _assert_nothing_imported(client, account)


async def test_import_over_the_body_limit_is_413(client: httpx.AsyncClient, account: Account) -> None:
    line = json.dumps({"type": "memory", "content": "x" * 50_000}) + "\n"
    body = line * (2 * 1024 * 1024 // len(line) + 2)  # just over the default 2 MiB limit
    assert_error(await _import(client, account, body), 413, "payload_too_large")
    await _assert_nothing_imported(client, account)


async def test_empty_tenant_exports_an_empty_body_and_empty_import_adds_nothing(
    client: httpx.AsyncClient, account: Account
) -> None:
    assert await _export(client, account) == ""
    result = await _import(client, account, b"")
    assert result.status_code == 200 and result.json()["created"] == 0
    result = await _import(client, account, b"\n\n  \n")
    assert result.status_code == 200 and result.json() == {"created": 0, "updated": 0, "unchanged": 0, "by_type": {}}


async def test_export_and_import_need_a_key_and_stay_in_the_tenant(
    client: httpx.AsyncClient, account: Account, other_account: Account
) -> None:
    assert_error(await client.get(EXPORT), 401, "invalid_api_key")
    assert_error(await client.post(IMPORT, content=b"", headers=NDJSON), 401, "invalid_api_key")
    await _seed(client, account)
    assert await _export(client, other_account) == ""
