"""Assertions on the REST error contract: every 4xx/5xx body is ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["assert_error"]


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response has ``status`` and the one error body shape; returns the ``error`` object."""
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str), error
    assert isinstance(error["message"], str) and error["message"], error
    if code is not None:
        assert error["code"] == code, error
    return error
