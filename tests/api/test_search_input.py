"""``q=`` over REST with hostile input (issue #15): FTS operator syntax, quotes, over-long strings. Never a 500,
never an engine syntax error: the documented reading of vibexp.core.content.search (words of letters and digits,
every word must match, at most 1,000 characters, a q without words finds nothing)."""

from __future__ import annotations

import httpx
import pytest

from helpers.api_errors import assert_error
from helpers.factories import Account

PATHS = ["/api/v1/memories", "/api/v1/prompts", "/api/v1/artifacts"]
#: (q, whether it finds the seeded "deploy to staging on Tuesdays").
SYNTAX = [
    ('"', False),
    ('""', False),
    ('"unbalanced', False),
    ('deploy"', True),
    ('"deploy', True),
    ("*", False),
    ("deploy*", True),
    ("*deploy", True),
    ("NEAR", False),
    ("NEAR(deploy staging)", False),  # "near" is a word the text lacks
    ("deploy NEAR/3 staging", False),
    ("-", False),
    ("-deploy", True),  # not a negation
    ("deploy -staging", True),
    ("AND OR NOT", False),  # stop words only
    ("deploy AND", True),
    ("OR deploy", True),
    ("deploy OR nonsense", False),  # not a disjunction
    ("NOT deploy", True),
    ("(", False),
    (")", False),
    ("(deploy", True),
    ("((deploy) OR (staging))", True),
    ("content:deploy", False),  # "content" is a word the text lacks, not a column filter
    ("^deploy", True),
    ("{deploy staging}", True),
    ("deploy + staging", True),
    ("'deploy'", True),
    ("deploy & staging | !x", False),
    ("deploy <-> staging", True),
    ("\\", False),
    ("%", False),
    ("_", False),
    (";", False),
    ("--", False),
]


async def _seed(client: httpx.AsyncClient, account: Account) -> None:
    text = "deploy to staging on Tuesdays"
    bodies = {
        "/api/v1/memories": {"content": text},
        "/api/v1/prompts": {"name": "deployer", "content": text},
        "/api/v1/artifacts": {"project": "ops", "slug": "deploys", "title": "Deploys", "content": text},
    }
    for path, body in bodies.items():
        response = await client.post(path, json=body, headers=account.headers)
        assert response.status_code == 201, response.text


@pytest.mark.parametrize(("q", "hit"), SYNTAX)
async def test_operator_syntax_is_plain_words(client: httpx.AsyncClient, account: Account, q: str, hit: bool) -> None:
    await _seed(client, account)
    for path in PATHS:
        response = await client.get(path, params={"q": q}, headers=account.headers)
        assert response.status_code == 200, (path, q, response.text)
        items = response.json()["items"]
        assert len(items) == (1 if hit else 0), (path, q, items)
        for item in items:
            assert isinstance(item["score"], float) and item["score"] > 0


async def test_a_10000_character_q_is_a_clear_422(client: httpx.AsyncClient, account: Account) -> None:
    for q in ["a" * 10_000, "deploy " * 1_500, '"' * 10_000, "NEAR(" * 2_000]:
        for path in PATHS:
            response = await client.get(path, params={"q": q}, headers=account.headers)
            error = assert_error(response, 422, "validation_error")
            assert "q" in error["message"] and "1000" in error["message"], error


async def test_1000_characters_and_many_words_are_fine(client: httpx.AsyncClient, account: Account) -> None:
    await _seed(client, account)
    # 1,000 characters; only the first 32 words count, and these are all in the text.
    q = ("deploy staging " * 100)[:1000]
    assert len(q) == 1000
    for path in PATHS:
        response = await client.get(path, params={"q": q}, headers=account.headers)
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == 1
    # Word 33 onwards is ignored: a missing word there does not hide the hit.
    padded = " ".join(["deploy"] * 32 + ["absentword"])
    found = await client.get("/api/v1/memories", params={"q": padded}, headers=account.headers)
    assert len(found.json()["items"]) == 1
    missing = await client.get("/api/v1/memories", params={"q": "absentword deploy"}, headers=account.headers)
    assert missing.json()["items"] == []


async def test_plain_lists_have_no_score_and_search_pages_carry_on(client: httpx.AsyncClient, account: Account) -> None:
    for i in range(5):
        body = {"content": "release " * (i + 1) + f"note {i}"}
        assert (await client.post("/api/v1/memories", json=body, headers=account.headers)).status_code == 201
    plain = (await client.get("/api/v1/memories", headers=account.headers)).json()
    assert [m["score"] for m in plain["items"]] == [None] * 5
    first = (await client.get("/api/v1/memories", params={"q": "released", "limit": 2}, headers=account.headers)).json()
    scores = [m["score"] for m in first["items"]]
    assert scores == sorted(scores, reverse=True)
    rest = await client.get(
        "/api/v1/memories",
        params={"q": "released", "limit": 10, "cursor": first["next_cursor"]},
        headers=account.headers,
    )
    assert rest.status_code == 200
    ids = [m["id"] for m in first["items"] + rest.json()["items"]]
    assert len(ids) == len(set(ids)) == 5
    # A plain list's cursor is not a ranked one: refused clearly, not misread.
    plain_page = (await client.get("/api/v1/memories", params={"limit": 2}, headers=account.headers)).json()
    wrong = await client.get(
        "/api/v1/memories", params={"q": "release", "cursor": plain_page["next_cursor"]}, headers=account.headers
    )
    assert "cursor" in assert_error(wrong, 422)["message"]
