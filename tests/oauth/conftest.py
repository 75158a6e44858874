"""The OAuth tests' HTTP client calls the in-process app at ``http://127.0.0.1`` (a Host the MCP transport's
DNS-rebinding check allows, so ``/mcp/v1/connect`` answers in-process), from a client address of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpers.factories import Account
from oauth.flow import Connect, Flow, person_flow
from vibexp.core.access import Role

BASE = "http://127.0.0.1"


@pytest.fixture
async def client(app: FastAPI, client_address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(client_address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


@pytest.fixture
async def connect(
    app: FastAPI, client_address: str, account: Account, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Connect]:
    async with AsyncExitStack() as stack:

        async def new(role: Role = Role.member, client_id: str | None = None) -> Flow:
            transport = httpx.ASGITransport(app=app, client=(client_address, 40000))
            browser = await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url=BASE))
            return await person_flow(
                browser, session_factory, tenant_id=account.tenant.id, role=role, client_id=client_id
            )

        yield new
