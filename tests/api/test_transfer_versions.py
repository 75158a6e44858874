"""Prompt versions and labels through export/import (``vibexp.core.content.prompt_history``): a round trip into
another tenant keeps numbers, contents, timestamps and labels (and what ``?label=production`` serves); importing
twice adds nothing; a history merges into a prompt that has its own; each bad ``versions`` / ``labels`` field is a
422 naming the line, with nothing imported. Both databases."""

from __future__ import annotations

import json
from typing import Any

import httpx

from helpers.api_errors import assert_error
from helpers.factories import Account

PROMPTS = "/api/v1/prompts"
EXPORT = "/api/v1/export"
IMPORT = "/api/v1/import"
NDJSON = {"Content-Type": "application/x-ndjson"}


async def _export(client: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    response = await client.get(EXPORT, headers=account.headers)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.split("\n") if line]


async def _import(client: httpx.AsyncClient, account: Account, lines: list[dict[str, Any]]) -> httpx.Response:
    body = "".join(json.dumps(line) + "\n" for line in lines)
    return await client.post(IMPORT, content=body, headers={**account.headers, **NDJSON})


async def _counts(client: httpx.AsyncClient, account: Account, lines: list[dict[str, Any]]) -> tuple[int, int, int]:
    response = await _import(client, account, lines)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["created"], body["updated"], body["unchanged"]


async def _write(client: httpx.AsyncClient, account: Account, name: str, *contents: str) -> str:
    created = await client.post(PROMPTS, json={"name": name, "content": contents[0]}, headers=account.headers)
    assert created.status_code == 201, created.text
    prompt_id: str = created.json()["id"]
    for content in contents[1:]:
        updated = await client.put(f"{PROMPTS}/{prompt_id}", json={"content": content}, headers=account.headers)
        assert updated.status_code == 200, updated.text
    return prompt_id


async def _label(client: httpx.AsyncClient, account: Account, prompt_id: str, label: str, version: int) -> None:
    response = await client.put(
        f"{PROMPTS}/{prompt_id}/labels/{label}", json={"version": version}, headers=account.headers
    )
    assert response.status_code == 200, response.text


async def _prompt_id(client: httpx.AsyncClient, account: Account, name: str) -> str:
    items = (await client.get(PROMPTS, headers=account.headers)).json()["items"]
    (found,) = [p["id"] for p in items if p["name"] == name]
    return str(found)


async def _history(client: httpx.AsyncClient, account: Account, prompt_id: str) -> list[tuple[int, str, list[str]]]:
    listed = await client.get(f"{PROMPTS}/{prompt_id}/versions", headers=account.headers)
    assert listed.status_code == 200, listed.text
    return [(v["version"], v["content"], v["labels"]) for v in reversed(listed.json()["items"])]


async def test_round_trip_keeps_versions_labels_and_what_production_serves(
    client: httpx.AsyncClient, account: Account, other_account: Account
) -> None:
    source_id = await _write(client, account, "review", "one {{x}}", "two {{x}}", "three {{x}}")
    await _label(client, account, source_id, "production", 2)
    await _label(client, account, source_id, "staging", 3)
    exported = await _export(client, account)
    (line,) = exported
    assert [(v["version"], v["content"], v["name"]) for v in line["versions"]] == [
        (1, "one {{x}}", "review"),
        (2, "two {{x}}", "review"),
        (3, "three {{x}}", "review"),
    ]
    assert all(v["created_at"] for v in line["versions"])
    assert line["labels"] == {"production": 2, "staging": 3}
    assert line["content"] == "three {{x}}"

    assert await _counts(client, other_account, exported) == (1, 0, 0)
    copy_id = await _prompt_id(client, other_account, "review")
    expected = [(1, "one {{x}}", []), (2, "two {{x}}", ["production"]), (3, "three {{x}}", ["staging"])]
    assert await _history(client, other_account, copy_id) == expected
    latest = await client.get(f"{PROMPTS}/{copy_id}", headers=other_account.headers)
    assert (latest.json()["version"], latest.headers["etag"], latest.json()["content"]) == (3, '"3"', "three {{x}}")
    served = await client.get(f"{PROMPTS}/{copy_id}", params={"label": "production"}, headers=other_account.headers)
    assert served.status_code == 200, served.text
    assert (served.json()["content"], served.headers["etag"]) == ("two {{x}}", '"2"')
    # Numbers, contents, timestamps and labels: the copy exports exactly what the source did.
    assert await _export(client, other_account) == exported

    # Twice adds nothing and changes no version; into the source tenant neither.
    assert await _counts(client, other_account, exported) == (0, 0, 1)
    assert await _history(client, other_account, copy_id) == expected
    assert await _export(client, other_account) == exported
    assert await _counts(client, account, exported) == (0, 0, 1)
    # The next write continues the imported numbering.
    updated = await client.put(
        f"{PROMPTS}/{copy_id}", json={"content": "four"}, headers=other_account.headers | {"If-Match": '"3"'}
    )
    assert updated.status_code == 200 and updated.json()["version"] == 4


async def test_numbers_with_gaps_and_defaults_are_kept(client: httpx.AsyncClient, account: Account) -> None:
    # A prompt created before versions were stored starts at its old version (migration 0007 kept only that one).
    line = {
        "type": "prompt",
        "name": "old",
        "content": "now",
        "versions": [{"version": 5, "content": "then"}, {"version": 7, "content": "now"}],
        "labels": {"production": 5},
    }
    assert await _counts(client, account, [line]) == (1, 0, 0)
    prompt_id = await _prompt_id(client, account, "old")
    assert await _history(client, account, prompt_id) == [(5, "then", ["production"]), (7, "now", [])]
    assert (await client.get(f"{PROMPTS}/{prompt_id}", headers=account.headers)).headers["etag"] == '"7"'
    (exported,) = await _export(client, account)
    assert [(v["version"], v["name"], v["description"], v["tags"]) for v in exported["versions"]] == [
        (5, "old", "", []),
        (7, "old", "", []),
    ]
    assert await _counts(client, account, [line]) == (0, 0, 1)


async def test_fields_other_than_the_newest_version_become_one_more_version(
    client: httpx.AsyncClient, account: Account
) -> None:
    # A hand-edited file: the line's own fields (the prompt now) win over its history, as an update would.
    line = {"type": "prompt", "name": "edited", "content": "by hand", "versions": [{"version": 1, "content": "v1"}]}
    assert await _counts(client, account, [line]) == (1, 0, 0)
    prompt_id = await _prompt_id(client, account, "edited")
    assert await _history(client, account, prompt_id) == [(1, "v1", []), (2, "by hand", [])]
    assert await _counts(client, account, [line]) == (0, 0, 1)
    assert await _history(client, account, prompt_id) == [(1, "v1", []), (2, "by hand", [])]


async def test_a_different_history_is_appended_after_the_prompts_own(
    client: httpx.AsyncClient, account: Account, other_account: Account
) -> None:
    source_id = await _write(client, account, "review", "one", "two", "three")
    await _label(client, account, source_id, "production", 2)
    exported = await _export(client, account)
    # The target has its own "review" with another history and its own labels.
    target_id = await _write(client, other_account, "review", "mine")
    await _label(client, other_account, target_id, "production", 1)
    await _label(client, other_account, target_id, "local", 1)

    assert await _counts(client, other_account, exported) == (0, 1, 0)
    # Its own version stays; the file's follow, renumbered; production follows its version (file wins); local kept.
    after = [(1, "mine", ["local"]), (2, "one", []), (3, "two", ["production"]), (4, "three", [])]
    assert await _history(client, other_account, target_id) == after
    assert (await client.get(f"{PROMPTS}/{target_id}", headers=other_account.headers)).headers["etag"] == '"4"'
    # Idempotent: every version of the file now matches one of the prompt's.
    assert await _counts(client, other_account, exported) == (0, 0, 1)
    assert await _history(client, other_account, target_id) == after


async def test_an_older_export_of_the_same_prompt_adds_what_it_lacks(
    client: httpx.AsyncClient, account: Account
) -> None:
    prompt_id = await _write(client, account, "review", "one", "two")
    backup = await _export(client, account)
    await client.put(f"{PROMPTS}/{prompt_id}", json={"content": "three"}, headers=account.headers)
    # Its versions are all there; its fields (version 2's) win as for any line: one more version, none lost.
    assert await _counts(client, account, backup) == (0, 1, 0)
    assert await _history(client, account, prompt_id) == [
        (1, "one", []),
        (2, "two", []),
        (3, "three", []),
        (4, "two", []),
    ]
    assert await _counts(client, account, backup) == (0, 0, 1)


async def test_bad_versions_or_labels_are_a_422_naming_the_line(client: httpx.AsyncClient, account: Account) -> None:
    good_memory = {"type": "memory", "content": "fine"}
    base = {"type": "prompt", "name": "p", "content": "b"}
    two = [{"version": 1, "content": "a"}, {"version": 2, "content": "b"}]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"versions": two, "labels": {"Production": 1}}, "line 2: labels.Production.[key]: String should match"),
        ({"versions": two, "labels": {"prod_1": 1}}, "line 2: labels.prod_1.[key]: String should match"),
        ({"versions": two, "labels": {"production": 3}}, "line 2: labels: 'production' points at version 3"),
        ({"labels": {"production": 1}}, "line 2: labels: 'production' points at version 1, which is not in"),
        ({"versions": [two[1], two[0]]}, "line 2: versions must be oldest first with increasing numbers (1 after 2)"),
        ({"versions": [two[0], two[0]]}, "line 2: versions must be oldest first with increasing numbers (1 after 1)"),
        ({"versions": []}, "line 2: versions: List should have at least 1 item"),
        ({"versions": [{"version": 0, "content": "a"}]}, "line 2: versions.0.version: Input should be greater"),
        ({"versions": [{"version": 1}]}, "line 2: versions.0.content: Field required"),
        ({"versions": [{"version": 1, "content": "a", "id": "x"}]}, "line 2: versions.0.id: Extra inputs"),
        ({"versions": [{"version": 1, "content": "a", "name": "a b"}]}, "line 2: versions.0.name: String should"),
        (
            {"versions": [{"version": 1, "content": "a", "created_at": "2026-01-01T00:00:00"}]},
            "line 2: versions.0.created_at: Input should have timezone info",
        ),
        ({"versions": {"1": "a"}}, "line 2: versions: Input should be a valid list"),
        ({"versions": two, "labels": ["production"]}, "line 2: labels: Input should be a valid dictionary"),
    ]
    for extra, message in cases:
        response = await _import(client, account, [good_memory, {**base, **extra}, {**base, "name": "after"}])
        error = assert_error(response, 422, "invalid_input")
        assert error["message"].startswith(message), (extra, error)
    assert await _export(client, account) == []  # nothing of any of those files was kept
