"""``completion/complete`` (``vibexp.api.mcp.completions``) with the official SDK client over real HTTP: prompt
arguments (the prompt's ``{{placeholders}}``; one named like a tool argument completes what that tool takes),
``project`` and ``slug`` of ``artifact://{project}/{slug}``, by prefix, at most 100 with ``hasMore``, only the
calling key's account and only what it may read; bad requests are clean ``-32602`` errors. The SDK client and raw
POSTs on both protocol eras; the ``completions`` capability is declared (tests/mcp/test_mcp_capabilities.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcp_types import INVALID_PARAMS, PromptReference, ResourceTemplateReference
from mcpkit import connect, mcp_errors
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account, make_account
from vibexp.api.mcp.completions import MAX_VALUES
from vibexp.core.access import Caller
from vibexp.core.content import usecases
from vibexp.core.content.schemas import PromptCreate
from vibexp.core.db import session_scope
from vibexp.core.keys import usecases as keys

TEMPLATE = ResourceTemplateReference(uri="artifact://{project}/{slug}")


async def fill_completions(db: async_sessionmaker[AsyncSession], account: Account) -> None:
    owner = Caller.cli(account.tenant.id)
    async with session_scope(db, write=True) as session:
        for name, content in (
            ("review", "Review {{project}} / {{slug}} for {{audience}}"),
            ("reviewer", "Act as {{name}}"),
            ("summary", "x"),
            ("1_done", "y"),
            ("10done", "z"),
        ):
            await usecases.prompts.create(session, caller=owner, data=PromptCreate(name=name, content=content))
        for project, slug in (("web", "notes"), ("web", "news"), ("web", "todo"), ("webapp", "n1"), ("api", "notes")):
            await usecases.artifacts.save(session, caller=owner, project=project, slug=slug, content="c")
        for n in range(MAX_VALUES + 5):  # more than one answer holds
            await usecases.artifacts.save(session, caller=owner, project="many", slug=f"s{n:03d}", content="c")


async def _values(client: Any, ref: Any, name: str, value: str, context: dict[str, str] | None = None) -> list[str]:
    result = await client.complete(ref, {"name": name, "value": value}, context)
    values: list[str] = result.completion.values
    return values


async def test_completes_by_prefix_within_the_account(
    mcp_url: str, db: async_sessionmaker[AsyncSession], account: Account
) -> None:
    await fill_completions(db, account)
    async with connect(mcp_url, account.key) as client:
        assert client.server_capabilities.completions is not None
        assert await _values(client, TEMPLATE, "project", "we") == ["web", "webapp"]
        assert await _values(client, TEMPLATE, "project", "") == ["api", "many", "web", "webapp"]
        assert await _values(client, TEMPLATE, "slug", "n", {"project": "web"}) == ["news", "notes"]
        assert await _values(client, TEMPLATE, "slug", "n") == []  # which project? none given
        many = await client.complete(TEMPLATE, {"name": "slug", "value": "s"}, {"project": "many"})
        assert len(many.completion.values) == MAX_VALUES and many.completion.has_more is True
        assert many.completion.values[:2] == ["s000", "s001"]
        # A prompt's placeholders: named like a tool argument, they complete what the tool takes.
        review = PromptReference(name="review")
        assert await _values(client, review, "project", "w") == ["web", "webapp"]
        assert await _values(client, review, "slug", "no", {"project": "api"}) == ["notes"]
        assert await _values(client, review, "audience", "x") == []  # free text: nothing to offer
        assert await _values(client, PromptReference(name="reviewer"), "name", "rev") == ["review", "reviewer"]
        # LIKE's wildcards are plain characters in a prefix.
        assert await _values(client, PromptReference(name="reviewer"), "name", "1_") == ["1_done"]
        assert await _values(client, PromptReference(name="reviewer"), "name", "1") == ["10done", "1_done"]


async def test_another_accounts_or_an_unreadable_prompt_completes_to_nothing(
    mcp_url: str, db: async_sessionmaker[AsyncSession], account: Account
) -> None:
    await fill_completions(db, account)
    stranger = await make_account(db)
    async with connect(mcp_url, stranger.key) as client:
        assert await _values(client, PromptReference(name="review"), "project", "") == []
        assert await _values(client, TEMPLATE, "project", "") == []
        assert await _values(client, TEMPLATE, "slug", "", {"project": "web"}) == []
    # My own key without prompts:read: my prompts are not there for it either; artifacts still are.
    owner = Caller.cli(account.tenant.id)
    async with httpx.AsyncClient(timeout=30) as http:
        base = mcp_url.split("/mcp/")[0]
        made = await http.post(
            base + "/api/v1/api-keys", json={"name": "a", "scopes": ["artifacts:read"]}, headers=account.headers
        )
        assert made.status_code == 201, made.text
    async with connect(mcp_url, made.json()["key"]) as client:
        assert await _values(client, PromptReference(name="review"), "project", "") == []
        assert await _values(client, TEMPLATE, "project", "w") == ["web", "webapp"]
    async with session_scope(db, write=True) as session:
        await keys.set_permissions(
            session, caller=owner, key_id=made.json()["id"], scopes=["prompts:read"], allowed_cidrs=[]
        )


@pytest.mark.parametrize(
    ("ref", "argument", "message"),
    [
        (TEMPLATE, {"name": "project", "value": "x" * 201}, "at most 200 characters"),
        (TEMPLATE, {"name": "owner", "value": ""}, "has no argument 'owner'"),
        (ResourceTemplateReference(uri="file:///{path}"), {"name": "path", "value": ""}, "Unknown resource template"),
        (PromptReference(name="review"), {"name": "nope", "value": ""}, "has no argument 'nope'"),
    ],
)
async def test_bad_requests_are_invalid_params(
    mcp_url: str, db: async_sessionmaker[AsyncSession], account: Account, ref: Any, argument: Any, message: str
) -> None:
    await fill_completions(db, account)
    async with connect(mcp_url, account.key) as client:
        with pytest.raises(BaseException) as refused:
            await client.complete(ref, argument)
    errors = mcp_errors(refused.value)
    assert errors, repr(refused.value)
    assert errors[0].error.code == INVALID_PARAMS and message in errors[0].error.message


async def test_malformed_and_huge_raw_requests_are_clean_errors(mcp_url: str, account: Account) -> None:
    headers = account.headers | {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    cases = [
        {"ref": {"type": "ref/prompt"}, "argument": {"name": "x", "value": "y"}},  # no name
        {"ref": {"type": "ref/tool", "name": "get_prompt"}, "argument": {"name": "name", "value": ""}},
        {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "x", "value": 5}},
        {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "x", "value": "\u0000"}},
        {"ref": {"type": "ref/prompt", "name": "p" * 100_000}, "argument": {"name": "x", "value": "y" * 100_000}},
    ]
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        for n, params in enumerate(cases):
            body = {"jsonrpc": "2.0", "id": n, "method": "completion/complete", "params": params}
            answer = await http.post(mcp_url, json=body, headers={"MCP-Protocol-Version": "2025-06-18"})
            assert answer.status_code == 200, answer.text
            error = answer.json()["error"]
            assert error["code"] == INVALID_PARAMS, (params, error)
            assert "Traceback" not in error["message"]
