"""The OAuth tests' HTTP client calls the in-process app at ``http://127.0.0.1`` (a Host the MCP transport's
DNS-rebinding check allows, so ``/mcp/v1/connect`` answers in-process), from a client address of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from oauth.flow import LOCAL_BASE as BASE


@pytest.fixture
async def client(app: FastAPI, client_address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(client_address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http
