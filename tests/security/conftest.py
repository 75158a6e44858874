"""The alert tests' fixtures: the detector's sink replaced by a recording one, and one client per peer address
(through the in-process app)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from helpers.alert_sink import RecordingSink, detector_of


@pytest.fixture
def sink(app: FastAPI) -> RecordingSink:
    recording = RecordingSink()
    detector_of(app).sink = recording
    return recording


@pytest.fixture
async def clients(app: FastAPI) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One client per address, made on demand: ``clients["10.1.2.3"]``."""
    made: dict[str, httpx.AsyncClient] = {}

    class _Clients(dict[str, httpx.AsyncClient]):
        def __missing__(self, address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            client = made[address] = self[address] = httpx.AsyncClient(transport=transport, base_url="http://t")
            return client

    yield _Clients()
    for client in made.values():
        await client.aclose()
