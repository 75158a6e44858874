"""ETag / If-Match for optimistic concurrency: the ETag is the object's version number."""

from __future__ import annotations

from fastapi import Response

from vibexp.core.errors import PreconditionFailed

__all__ = ["etag", "parse_if_match", "set_etag"]


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def parse_if_match(header: str | None) -> int | None:
    """The version an update expects, or None for an unconditional update (no header, or ``*``)."""
    if header is None or header.strip() == "*":
        return None
    tag = header.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    if not tag.isdigit():
        raise PreconditionFailed(f"If-Match {header!r} does not match the current ETag")
    return int(tag)
