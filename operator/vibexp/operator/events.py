"""Kubernetes events on the operator's objects, posted through Kopf's event poster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

__all__ = ["post_event"]


def post_event(body: Mapping[str, Any], *, warning: bool, reason: str, message: str) -> None:
    # Kopf only reads metadata, kind and apiVersion from the body; a plain mapping is what it got before typing.
    kopf.event(cast(kopf.Body, dict(body)), type="Warning" if warning else "Normal", reason=reason, message=message)
