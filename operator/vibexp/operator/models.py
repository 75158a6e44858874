"""Typed views of what the operator reads: each custom resource is parsed once into a frozen model.

Everything after parsing (the pure :func:`vibexp.operator.plan.plan`, the executor, the status) works on these
models, never on the raw dicts the apiserver sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from vibexp.core import access, cidrs

__all__ = ["ApiKeySpec", "RotationSpec", "SecretTemplate", "SpecError", "TenantSpec"]


class SpecError(ValueError):
    """The apiserver admitted a spec the operator cannot act on (the message says which field and why)."""


def _frozen(value: Any) -> Mapping[str, str]:
    return MappingProxyType({str(k): str(v) for k, v in (value or {}).items()})


def _time(value: Any, what: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise SpecError(f"{what} is not an RFC 3339 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise SpecError(f"{what} needs a time zone (e.g. a trailing Z): {value!r}")
    return parsed


def _permissions(spec: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """spec.scopes (omitted: ``*``) and spec.allowedCidrs (omitted: anywhere), in the form the key row stores.

    The CRD refuses the same at `kubectl apply`; parsing again with the core's rules gives the canonical form the
    row stores (``2001:DB8::/32`` is ``2001:db8::/32``), which deciding whether the key's permissions changed needs.
    """
    raw_scopes = spec.get("scopes")
    try:
        wanted = access.normalise([str(s) for s in raw_scopes]) if raw_scopes is not None else (access.FULL_ACCESS,)
    except ValueError as exc:
        raise SpecError(f"spec.scopes: {exc}") from exc
    try:
        networks = cidrs.normalise([str(c) for c in spec.get("allowedCidrs") or []])
    except ValueError as exc:
        raise SpecError(f"spec.allowedCidrs: {exc}") from exc
    return wanted, networks


@dataclass(frozen=True, slots=True)
class RotationSpec:
    trigger: str = ""
    every_days: int | None = None
    grace: timedelta = timedelta(0)

    @classmethod
    def from_spec(cls, raw: Mapping[str, Any] | None) -> RotationSpec:
        raw = raw or {}
        every = raw.get("everyDays")
        return cls(
            trigger=str(raw.get("trigger") or ""),
            every_days=int(every) if every else None,
            grace=timedelta(seconds=int(raw.get("gracePeriodSeconds") or 0)),
        )

    def next_at(self, created_at: datetime) -> datetime | None:
        """When a key made at ``created_at`` is due for its scheduled rotation (None: no schedule)."""
        return None if self.every_days is None else created_at + timedelta(days=self.every_days)

    def due(self, *, created_at: datetime, now: datetime) -> bool:
        """The one "is a rotation due" rule."""
        due_at = self.next_at(created_at)
        return due_at is not None and due_at <= now


@dataclass(frozen=True, slots=True)
class SecretTemplate:
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class ApiKeySpec:
    """An ApiKey: its identity, its spec with defaults applied, and the two status fields reconciling relies on."""

    uid: str
    namespace: str
    name: str
    generation: int
    tenant: str
    display_name: str
    description: str
    #: The Secret in use: the one the status names (immutable in practice), else spec.secretName, else the name.
    secret_name: str
    revoked: bool
    expires_at: datetime | None
    #: What the key may do and from where, as its row stores them (``("*",)`` and ``()`` when omitted).
    scopes: tuple[str, ...]
    allowed_cidrs: tuple[str, ...]
    #: spec.confirmDestructive: the key's destructive MCP tools ask the person first (omitted: no).
    confirm_destructive: bool
    rotation: RotationSpec
    template: SecretTemplate
    #: status.rotation.count: where the search for the newest key starts.
    rotation_count: int
    deleting: bool

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ApiKeySpec:
        meta = body["metadata"]
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        template = spec.get("secretTemplate") or {}
        wanted_scopes, allowed_cidrs = _permissions(spec)
        return cls(
            uid=str(meta["uid"]),
            namespace=str(meta["namespace"]),
            name=str(meta["name"]),
            generation=int(meta.get("generation") or 0),
            tenant=str(spec.get("tenant") or ""),
            display_name=str(spec.get("displayName") or f"{meta['namespace']}/{meta['name']}"),
            description=str(spec.get("description") or ""),
            secret_name=str(status.get("secretName") or spec.get("secretName") or meta["name"]),
            revoked=bool(spec.get("revoked")),
            expires_at=_time(spec.get("expiresAt"), "spec.expiresAt"),
            scopes=wanted_scopes,
            allowed_cidrs=allowed_cidrs,
            confirm_destructive=bool(spec.get("confirmDestructive")),
            rotation=RotationSpec.from_spec(spec.get("rotation")),
            template=SecretTemplate(
                labels=_frozen(template.get("labels")), annotations=_frozen(template.get("annotations"))
            ),
            rotation_count=int((status.get("rotation") or {}).get("count") or 0),
            deleting=bool(meta.get("deletionTimestamp")),
        )


@dataclass(frozen=True, slots=True)
class TenantSpec:
    """A VibeXPTenant as far as its ApiKeys are concerned."""

    name: str
    allowed_namespaces: frozenset[str]
    suspended: bool
    deleting: bool

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TenantSpec:
        spec = body.get("spec") or {}
        return cls(
            name=str(body["metadata"]["name"]),
            allowed_namespaces=frozenset(str(ns) for ns in spec.get("allowedNamespaces") or []),
            suspended=bool(spec.get("suspended")),
            deleting=bool(body["metadata"].get("deletionTimestamp")),
        )

    def allows(self, namespace: str) -> bool:
        return "*" in self.allowed_namespaces or namespace in self.allowed_namespaces
