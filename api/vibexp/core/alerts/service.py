"""Raise, list and acknowledge alerts.

``raise_alert`` is what the detectors (``vibexp.core.alerts.detectors``) and the leak report call. It is one
``INSERT ... ON CONFLICT (key_id, kind) WHERE status = 'open' DO UPDATE`` (SQLite and PostgreSQL both have it): the
partial unique index ``uq_alerts_open_key_kind`` decides atomically whether this opens an alert or repeats an open
one, so two processes noticing the same thing at once make one alert with ``count`` 2, and the caller's transaction
never sees an ``IntegrityError`` (no savepoint needed: pysqlite's SAVEPOINT handling would commit early when the
savepoint opened the transaction). On PostgreSQL the second writer waits for the first one's commit and then bumps
(or inserts, if the first rolled back). A caller raising several alerts in one transaction should raise them in a
stable order (say by key id, then kind): two replicas locking the same open alerts in opposite orders would
deadlock, and PostgreSQL would abort one of their transactions.

A newly opened alert, in the caller's transaction: ``alert.raised`` in the audit trail, the key revoked when the
tenant's ``auto_revoke_on`` names the kind (``key.auto_revoked``; the alert's details then say ``auto_revoked``), and
a delivery queued for the tenant's webhook (``vibexp.core.alerts.webhooks``). A repeat only bumps ``count`` and
``last_seen_at`` (never backwards) and returns ``None``.

Metrics without a framework in the core: ``observe_opened(callback)`` registers a process-level callback that gets
the kind of each newly opened alert once the transaction that opened it has committed (a rolled-back alert is not
counted): ``raise_alert`` notes ``Notice.ALERT_OPENED`` (``vibexp.core.notices``, the one after-commit hook). The
API registers one that increments ``vibexp_alerts_total{kind}`` (``vibexp.api.metrics``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core import notices
from vibexp.core.access import Actor, CredentialKind
from vibexp.core.alerts.models import AUTO_REVOCABLE, Alert, AlertKind, AlertStatus
from vibexp.core.alerts.webhooks import enqueue_delivery
from vibexp.core.audit import service as audit
from vibexp.core.audit.service import Target
from vibexp.core.clock import utcnow
from vibexp.core.errors import InvalidInput, NotFound
from vibexp.core.ids import is_id, new_id
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.keys.service import key_ids_of, revoke_key
from vibexp.core.notices import Listener, Notice
from vibexp.core.oauth.models import OAuthClient, OAuthGrant
from vibexp.core.oauth.service import grant_ids_of, grant_name, revoke_grant
from vibexp.core.pagination import DEFAULT_PAGE_SIZE, Page, decode_cursor, encode_cursor
from vibexp.core.tenants.models import Tenant

__all__ = [
    "AUTO_REVOKE_ACTOR",
    "SYSTEM_ACTOR",
    "acknowledge",
    "acknowledge_open",
    "count_open",
    "get_alert",
    "list_alerts",
    "observe_opened",
    "on_credential",
    "owned_by",
    "parse_auto_revoke_kinds",
    "parse_kind",
    "raise_alert",
    "unobserve_opened",
]

SYSTEM_ACTOR = Actor.system("alerts")
AUTO_REVOKE_ACTOR = Actor.system("alerts: auto_revoke_on")

Observer = Callable[[str], None]
#: Each observer's listener on ``Notice.ALERT_OPENED`` (the notice carries the opened alerts' kinds).
_listeners: dict[Observer, Listener] = {}


def observe_opened(observer: Observer) -> None:
    """Call ``observer(kind)`` once per newly opened alert, after its transaction commits (this process only)."""
    if observer in _listeners:
        return

    def listener(kinds: list[str]) -> None:
        for kind in kinds:
            observer(kind)

    _listeners[observer] = listener
    notices.listen(Notice.ALERT_OPENED, listener)


def unobserve_opened(observer: Observer) -> None:
    listener = _listeners.pop(observer, None)
    if listener is not None:
        notices.unlisten(Notice.ALERT_OPENED, listener)


def parse_kind(kind: AlertKind | str) -> AlertKind:
    try:
        return AlertKind(kind)
    except ValueError:
        raise InvalidInput(f"unknown alert kind {kind!r}; one of: {', '.join(k.value for k in AlertKind)}") from None


def parse_auto_revoke_kinds(kinds: Iterable[AlertKind | str]) -> list[str]:
    """``auto_revoke_on`` as stored (sorted, no duplicates); ``InvalidInput`` for an unknown kind or ``failed_auth``.

    ``failed_auth`` proves nothing about who holds the key: five malformed keys built from its public display prefix
    raise it, so letting it revoke would let anyone revoke any key whose prefix they saw.
    """
    parsed = {parse_kind(kind) for kind in kinds}
    if AlertKind.failed_auth in parsed:
        raise InvalidInput(
            "auto_revoke_on: failed_auth cannot revoke a key: anyone who knows a key's public display prefix can "
            "raise it without holding the key; choose among " + ", ".join(kind.value for kind in AUTO_REVOCABLE)
        )
    return sorted(kind.value for kind in parsed)


def _parse_status(status: AlertStatus | str) -> AlertStatus:
    try:
        return AlertStatus(status)
    except ValueError:
        raise InvalidInput(f"unknown alert status {status!r}; one of: open, acknowledged") from None


async def _upsert(session: AsyncSession, *, values: dict[str, Any], grant: bool) -> str:
    """Open the alert or bump the open one (of the key, or of the grant); the id of the row written."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Alert).values(**values)
    later = case(
        (statement.excluded.last_seen_at > Alert.last_seen_at, statement.excluded.last_seen_at),
        else_=Alert.last_seen_at,
    )
    upsert = statement.on_conflict_do_update(
        # uq_alerts_open_grant_kind or uq_alerts_open_key_kind
        index_elements=[Alert.grant_id if grant else Alert.key_id, Alert.kind],
        # Literal, not a bound parameter: the database must see that this is the partial index's own predicate.
        index_where=text("status = 'open'"),
        set_={"count": Alert.count + 1, "last_seen_at": later},
    ).returning(Alert.id)
    written: str = (await session.execute(upsert)).scalar_one()
    return written


async def raise_alert(
    session: AsyncSession,
    *,
    tenant_id: str,
    key_id: str,
    kind: AlertKind,
    details: dict[str, Any],
    at: datetime | None = None,
    credential: CredentialKind = CredentialKind.api_key,
) -> Alert | None:
    """Open an alert of ``kind`` on the credential (``key_id``: the API key's id, or the OAuth grant's when
    ``credential`` is ``grant``), or count a repeat of the open one (then ``None``); flushes only.

    ``details`` is what was seen (the network, the rate, the address ...; never a plaintext key), JSON-serialisable.
    """
    kind = parse_kind(kind)
    at = at or utcnow()
    grant = credential is CredentialKind.grant
    await session.flush()  # rows the caller added (the key itself, say) must exist before the statement runs
    alert_id = new_id()
    values = {
        "id": alert_id,
        "tenant_id": tenant_id,
        "key_id": None if grant else key_id,
        "grant_id": key_id if grant else None,
        "kind": kind.value,
        "status": AlertStatus.open.value,
        "first_seen_at": at,
        "last_seen_at": at,
        "count": 1,
        "details": details,
    }
    if await _upsert(session, values=values, grant=grant) != alert_id:
        return None  # an open alert of this kind existed (or another process opened it a moment ago): bumped
    alert = await session.get(Alert, alert_id)
    tenant = await session.get(Tenant, tenant_id)
    if alert is None or tenant is None:  # the statement just wrote the alert, and its foreign keys
        raise RuntimeError("alert or tenant vanished inside its own transaction")
    # Never failed_auth (``parse_auto_revoke_kinds``), even one stored before it was refused (0014 drops those).
    revoke = kind in AUTO_REVOCABLE and kind.value in (tenant.auto_revoke_on or [])
    revocation: dict[str, object] = {"alert_id": alert.id, "kind": kind.value}
    if grant:
        target = await _raised_on_grant(session, alert, key_id, details, revoke=revoke, revocation=revocation)
    else:
        target = await _raised_on_key(session, alert, key_id, details, revoke=revoke, revocation=revocation)
    await session.flush()
    await enqueue_delivery(session, tenant=tenant, alert=alert, credential_name=target.name)
    notices.note(session, Notice.ALERT_OPENED, kind.value)
    return alert


async def _raised_on_key(
    session: AsyncSession,
    alert: Alert,
    key_id: str,
    details: dict[str, Any],
    *,
    revoke: bool,
    revocation: dict[str, object],
) -> Target:
    """Audit the key's new alert and, if ``revoke``, revoke the key (``key.auto_revoked``); the audit target."""
    key = await session.get(ApiKey, key_id)
    if key is None:  # the statement just wrote the alert, and its foreign keys
        raise RuntimeError("key vanished inside its alert's transaction")
    target = Target("key", id=key.id, name=key.name)
    await _audit_raised(session, alert, target, details)
    if revoke and key.status != KeyStatus.revoked.value:
        await revoke_key(session, key=key, actor=AUTO_REVOKE_ACTOR, action="key.auto_revoked", details=revocation)
        alert.details = {**alert.details, "auto_revoked": True}  # a new dict: the JSON column sees the change
    return target


async def _raised_on_grant(
    session: AsyncSession,
    alert: Alert,
    grant_id: str,
    details: dict[str, Any],
    *,
    revoke: bool,
    revocation: dict[str, object],
) -> Target:
    """Audit the grant's new alert and, if ``revoke``, revoke the grant as a person's revocation does
    (``oauth.revoked``, reason ``auto_revoked``: its tokens stop on every replica within the verifier's poll); the
    audit target (named as the action log names it: "<client> (OAuth)")."""
    row = (
        await session.execute(
            select(OAuthGrant, OAuthClient.name)
            .join(OAuthClient, OAuthClient.id == OAuthGrant.client_id)
            .where(OAuthGrant.id == grant_id)
            .with_for_update(of=OAuthGrant)
        )
    ).one_or_none()
    if row is None:  # the statement just wrote the alert, and its foreign keys
        raise RuntimeError("grant vanished inside its alert's transaction")
    grant, client_name = row
    target = Target("oauth_grant", id=grant.id, name=grant_name(client_name))
    await _audit_raised(session, alert, target, details)
    if revoke and grant.revoked_at is None:
        await revoke_grant(session, grant, reason="auto_revoked", actor=AUTO_REVOKE_ACTOR, details=revocation)
        alert.details = {**alert.details, "auto_revoked": True}  # a new dict: the JSON column sees the change
    return target


async def _audit_raised(session: AsyncSession, alert: Alert, target: Target, details: dict[str, Any]) -> None:
    await audit.record(
        session,
        tenant_id=alert.tenant_id,
        action="alert.raised",
        actor=SYSTEM_ACTOR,
        target=target,
        details={**details, "kind": alert.kind, "alert_id": alert.id},
    )


async def get_alert(session: AsyncSession, *, tenant_id: str, alert_id: str) -> Alert:
    """An alert of the tenant; another tenant's (or no) alert is not found."""
    alert = await session.get(Alert, alert_id) if is_id(alert_id) else None
    if alert is None or alert.tenant_id != tenant_id:
        raise NotFound("alert not found")
    return alert


def owned_by(tenant_id: str, owner: str) -> ColumnElement[bool]:
    """Alerts on the tenant's credentials of ``owner``: a user's id (their personal keys and their OAuth grants) or
    ``SERVICE_KEYS`` (the keys of no person), as ``keys.service.list_keys`` reads it."""
    return or_(Alert.key_id.in_(key_ids_of(tenant_id, owner)), Alert.grant_id.in_(grant_ids_of(tenant_id, owner)))


def on_credential(credential_id: str) -> ColumnElement[bool]:
    """Alerts on one credential: the API key or the OAuth grant of that id."""
    return or_(Alert.key_id == credential_id, Alert.grant_id == credential_id)


async def list_alerts(
    session: AsyncSession,
    *,
    tenant_id: str,
    status: AlertStatus | str | None = None,
    kind: AlertKind | str | None = None,
    key_id: str | None = None,
    owner: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> Page[Alert]:
    """The tenant's alerts, newest (most recently opened) first; ids are time-ordered, so the cursor is the id.
    ``owner`` as ``owned_by`` reads it (``None``: every key's). Each alert comes with its key's owner (one query)."""
    query = select(Alert).where(Alert.tenant_id == tenant_id)
    if owner is not None:
        query = query.where(owned_by(tenant_id, owner))
    if status is not None:
        query = query.where(Alert.status == _parse_status(status).value)
    if kind is not None:
        query = query.where(Alert.kind == parse_kind(kind).value)
    if key_id is not None:
        query = query.where(on_credential(key_id))
    if cursor:
        query = query.where(Alert.id < decode_cursor(cursor))
    rows = list(await session.scalars(query.order_by(Alert.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


async def acknowledge(session: AsyncSession, *, tenant_id: str, alert_id: str, actor: Actor) -> Alert:
    """Close the alert: the next time its kind is noticed on the key a new alert opens. Idempotent: acknowledging
    an acknowledged alert changes (and records) nothing. Audited as ``alert.acknowledged``; flushes only."""
    alert = await get_alert(session, tenant_id=tenant_id, alert_id=alert_id)
    if alert.status == AlertStatus.acknowledged.value:
        return alert
    alert.status = AlertStatus.acknowledged.value
    alert.acknowledged_at = utcnow()
    alert.acknowledged_by = actor.name[:255]
    await audit.record(
        session,
        tenant_id=tenant_id,
        action="alert.acknowledged",
        actor=actor,
        target=Target("alert", id=alert.id, name=alert.kind),
        details={"kind": alert.kind, "key_id": alert.key_id, "grant_id": alert.grant_id, "count": alert.count},
    )
    await session.flush()
    return alert


async def acknowledge_open(
    session: AsyncSession,
    *,
    tenant_id: str,
    actor: Actor,
    kind: AlertKind | str | None = None,
    owner: str | None = None,
) -> int:
    """Acknowledge every open alert of the tenant, or of one kind, or on one owner's keys (``owned_by``): each as
    ``acknowledge`` does (audited one by one); how many were open. Bounded: at most one alert per key and kind is
    open. Flushes only."""
    query = select(Alert.id).where(Alert.tenant_id == tenant_id, Alert.status == AlertStatus.open.value)
    if kind is not None:
        query = query.where(Alert.kind == parse_kind(kind).value)
    if owner is not None:
        query = query.where(owned_by(tenant_id, owner))
    ids = list(await session.scalars(query.order_by(Alert.id)))
    for alert_id in ids:
        await acknowledge(session, tenant_id=tenant_id, alert_id=alert_id, actor=actor)
    return len(ids)


async def count_open(session: AsyncSession, *, tenant_id: str) -> int:
    """Open alerts of the tenant (the dashboard's badge)."""
    query = select(func.count()).select_from(Alert).where(Alert.tenant_id == tenant_id, Alert.status == "open")
    return int(await session.scalar(query) or 0)
