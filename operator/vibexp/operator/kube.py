"""A small Kubernetes API client for what Kopf does not do for us: Secrets, reading tenants and keys, status.

It authenticates with the same credentials Kopf logged in with (kubeconfig or in-cluster service account), handed
over by the operator's login handler, and asks for them again once on a 401 (rotated service-account tokens).
Plain aiohttp, which Kopf already depends on: no second client library and its own notion of configuration.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import kopf

__all__ = ["JSON_MERGE", "KubeApiError", "KubeClient"]

JSON_MERGE = "application/merge-patch+json"

Login = Callable[[], kopf.ConnectionInfo | None]


class KubeApiError(Exception):
    """A Kubernetes API call that failed: ``status`` is the HTTP status (0 when the server was unreachable)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def temporary(self) -> bool:
        """Worth retrying: unreachable, conflicts, throttling and server errors."""
        return self.status in (0, 409, 429) or self.status >= 500


class KubeClient:
    def __init__(self, *, timeout: float = 30.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._info: kopf.ConnectionInfo | None = None
        self._login: Login | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stale: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    def configure(self, info: kopf.ConnectionInfo, login: Login) -> None:
        """Use these credentials from now on (the old session is closed on the next request)."""
        self._info = info
        self._login = login
        self._stale = self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _ensure_session(self) -> tuple[aiohttp.ClientSession, str]:
        async with self._lock:
            if self._info is None:
                raise KubeApiError(0, "NotLoggedIn", "the operator has no Kubernetes credentials yet")
            if self._stale is not None:
                await self._stale.close()
                self._stale = None
                self._session = None
            if self._session is None:
                connector = aiohttp.TCPConnector(ssl=self._info.as_ssl_context(), limit=50)
                self._session = aiohttp.ClientSession(
                    connector=connector,
                    headers=self._info.as_http_headers(),
                    timeout=self._timeout,
                    trust_env=self._info.trust_env,
                )
            return self._session, self._info.server.rstrip("/")

    async def _relogin(self) -> None:
        if self._login is None:
            return
        info = self._login()
        if info is not None:
            self.configure(info, self._login)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """One API call; returns the decoded object, or None for a 404 when ``missing_ok``."""
        for attempt in (1, 2):
            session, server = await self._ensure_session()
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": content_type} if body is not None else {}
            try:
                async with session.request(method, server + path, data=data, headers=headers) as resp:
                    text = await resp.text()
                    if resp.status == 401 and attempt == 1:
                        await self._relogin()
                        continue
                    if resp.status == 404 and missing_ok:
                        return None
                    if resp.status >= 400:
                        raise _error(resp.status, text)
                    decoded: dict[str, Any] = json.loads(text) if text else {}
                    return decoded
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                raise KubeApiError(0, "Unreachable", f"{method} {path}: {exc!r}") from exc
        raise KubeApiError(401, "Unauthorized", "the Kubernetes API refused the operator's credentials")

    # -- typed helpers ------------------------------------------------------------------------------------------
    async def get(self, path: str) -> dict[str, Any] | None:
        return await self.request("GET", path, missing_ok=True)

    async def create(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        created = await self.request("POST", path, body=obj)
        assert created is not None
        return created

    async def replace(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        replaced = await self.request("PUT", path, body=obj)
        assert replaced is not None
        return replaced

    async def merge_patch(self, path: str, patch: Mapping[str, Any], *, missing_ok: bool = False) -> None:
        await self.request("PATCH", path, body=patch, content_type=JSON_MERGE, missing_ok=missing_ok)

    async def delete(self, path: str, *, uid: str | None = None, resource_version: str | None = None) -> bool:
        """Delete with optional preconditions; False when it was already gone."""
        preconditions: dict[str, str] = {}
        if uid:
            preconditions["uid"] = uid
        if resource_version:
            preconditions["resourceVersion"] = resource_version
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": preconditions} if preconditions else None
        return await self.request("DELETE", path, body=body, missing_ok=True) is not None

    async def list(self, path: str) -> list[dict[str, Any]]:
        listed = await self.request("GET", path)
        items: list[dict[str, Any]] = (listed or {}).get("items", [])
        return items


def _error(status: int, text: str) -> KubeApiError:
    try:
        decoded = json.loads(text)
        return KubeApiError(status, str(decoded.get("reason", "")), str(decoded.get("message", text)))
    except ValueError:
        return KubeApiError(status, "", text[:500])
