"""Deliver queued alerts to the tenant's webhook, in a background task of each API process.

Every ``poll_interval`` seconds the sender looks for due deliveries (``state = 'pending'`` and ``next_attempt_at``
reached) and claims them: one UPDATE moves their ``next_attempt_at`` a lease into the future and counts the attempt,
so another process polling the same database does not see them as due (on PostgreSQL the candidates are locked
``FOR UPDATE SKIP LOCKED``; on SQLite the UPDATE runs under the file's single write lock). The outcome is written
only if the row still carries this claim (its attempt number), so a process that lost its lease cannot overwrite
a newer attempt's result.

Each attempt is one POST of the stored body (the exact bytes that are signed) with

- ``Content-Type: application/json``
- ``X-VibeXP-Signature: t=<unix time of this attempt>,v1=<hex HMAC-SHA256(secret, "<t>.<delivery id>.<body>")>``
  (``sign``; left out when the tenant has no secret): the timestamp and the delivery id are signed with the body,
  so a receiver that refuses a ``t`` older than its replay window (docs/webhooks.md: 5 minutes) and remembers the
  delivery ids it handled cannot be fed an old delivery again
- ``X-VibeXP-Delivery: <delivery id>`` (the same on every retry: a receiver can drop duplicates with it)
- ``X-VibeXP-Attempt: <n>``

a ``timeout`` (5 s) for the whole exchange, and redirects NOT followed: a 3xx is a failed attempt, like a 5xx,
a 4xx, a timeout or a refused connection. A failed attempt is retried after ``retry_delays`` (10 s, 30 s, 2 min,
10 min, 1 h); after ``max_attempts`` (6) the delivery is ``failed``.

Before every attempt the URL's host is resolved and each address checked (``vibexp.core.destinations``):
this server and its replicas, link-local and metadata addresses, and (unless ``VIBEXP_WEBHOOK_ALLOW_PRIVATE``)
loopback and private addresses are refused, and the delivery is ``failed`` without any request. The request then
goes to the very address that was checked (the URL's host name still in ``Host`` and, for HTTPS, in SNI and the
certificate check), so the name cannot be re-resolved elsewhere in between. The delivery log says only
``delivered``, ``HTTP <status>`` or "delivery failed: no HTTP response": whether nothing listened, a firewall
dropped the packets, the TLS handshake failed or the name did not resolve is not told apart, so the log cannot be
used to scan ports.

The tenant's secret is stored encrypted (``vibexp.core.secret_box``) and opened only to sign; it is never
logged nor stored in the delivery log.

httpx (already a runtime dependency, ``[project.dependencies]``) rather than asyncio streams: HTTPS, HTTP/1.1
framing and per-phase timeouts for free, and an async client that does not need a thread per attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vibexp.core.alerts.models import DeliveryState, WebhookDelivery
from vibexp.core.clock import utcnow
from vibexp.core.config import get_settings
from vibexp.core.db import writing
from vibexp.core.destinations import DestinationPolicy, DestinationRefused, DestinationUnresolved
from vibexp.core.secret_box import SecretBox
from vibexp.core.tasks import PeriodicTask
from vibexp.core.tenants.models import Tenant

__all__ = [
    "MAX_ATTEMPTS",
    "NO_RESPONSE",
    "RETRY_DELAYS",
    "WebhookSender",
    "points_at_self",
    "sign",
]

log = logging.getLogger(__name__)

#: Seconds to wait after the 1st, 2nd, ... failed attempt (the last one repeats if ``max_attempts`` is larger).
RETRY_DELAYS: tuple[float, ...] = (10.0, 30.0, 120.0, 600.0, 3600.0)
#: Attempts before a delivery is given up (``failed``).
MAX_ATTEMPTS = 6
#: Seconds one attempt may take, connecting included.
TIMEOUT = 5.0
#: Deliveries claimed per poll.
BATCH = 20

#: The delivery log's one word for every failure below HTTP (DNS, refused, reset, timeout, TLS).
NO_RESPONSE = "delivery failed: no HTTP response"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def sign(secret: str, *, timestamp: int, delivery_id: str, body: bytes) -> str:
    """The ``X-VibeXP-Signature`` value: ``t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<delivery id>.<body>">``
    under the secret."""
    signed = f"{timestamp}.{delivery_id}.".encode() + body
    return f"t={timestamp},v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


async def points_at_self(url: str, own_urls: Iterable[str]) -> bool:
    """Whether ``url`` reaches this server (``vibexp.core.destinations``: its own hosts and ports, every
    loopback address or this host's name on one of its ports, any spelling); False when it does not resolve."""
    policy = DestinationPolicy(own_urls, allow_private=True)
    try:
        await policy.check(url)
    except DestinationRefused:
        return True
    except DestinationUnresolved:
        return False
    return False


def _address_of(url: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.hostname, port or _DEFAULT_PORTS[parts.scheme]


@dataclass(slots=True)
class _Claimed:
    id: str
    url: str
    payload: str
    attempt: int
    secret: str | None


@dataclass(slots=True)
class _Outcome:
    delivered: bool
    status: int | None
    error: str | None
    final: bool = False  # no retry whatever the attempts left (a refused URL)


class WebhookSender:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        own_urls: Sequence[str] = (),
        allow_private: bool = False,
        secret_key: str | None = None,
        poll_interval: float = 1.0,
        timeout: float = TIMEOUT,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        max_attempts: int = MAX_ATTEMPTS,
        batch: int = BATCH,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not retry_delays or max_attempts < 1:
            raise ValueError("retry_delays must not be empty and max_attempts must be at least 1")
        self._engine = engine
        self._policy = DestinationPolicy(own_urls, allow_private=allow_private)
        self._box = SecretBox(secret_key if secret_key is not None else get_settings().secret_key)
        self._timeout = timeout
        self._retry_delays = tuple(retry_delays)
        self._max_attempts = max_attempts
        self._batch = batch
        # Well past one attempt's timeout: a claim outlives its attempt, unless the process died mid-attempt.
        self._lease = timedelta(seconds=timeout * 2 + 30)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop = PeriodicTask(
            "vibexp-webhook-sender",
            self.run_once,
            interval=poll_interval,
            logger=log,
            what="webhook delivery",
            consequence="due deliveries are retried on the next poll",
        )

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            transport=self._transport,
            follow_redirects=False,  # a 3xx is a failed attempt: a redirect could point anywhere, this server too
            timeout=httpx.Timeout(self._timeout),
            trust_env=False,  # no proxy from the environment between the sender and the URL it checked
            headers={"User-Agent": "VibeXP-Webhooks/1"},
        )
        await self._loop.start()

    async def stop(self) -> None:
        """Stop polling; an attempt in flight is abandoned (its lease expires and it is retried)."""
        try:
            await self._loop.stop()
        finally:
            if self._client is not None:
                await self._client.aclose()
                self._client = None

    async def run_once(self) -> int:
        """Claim the due deliveries and attempt each once; the number attempted."""
        claimed = await self._claim()
        if claimed:
            await asyncio.gather(*(self._attempt(item) for item in claimed))
        return len(claimed)

    async def _claim(self) -> list[_Claimed]:
        now = utcnow()
        due = (
            select(WebhookDelivery.id)
            .where(WebhookDelivery.state == DeliveryState.pending.value, WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(self._batch)
        )
        # A cheap read first: most polls find nothing, and on SQLite an UPDATE would take the write lock anyway.
        async with self._engine.connect() as conn:
            if (await conn.execute(due.limit(1))).first() is None:
                return []
        if self._engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        claim = (
            update(WebhookDelivery)
            # The WHERE is evaluated again in the UPDATE: a row another process claimed meanwhile is not due any more.
            .where(
                WebhookDelivery.id.in_(due.scalar_subquery()),
                WebhookDelivery.state == DeliveryState.pending.value,
                WebhookDelivery.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + self._lease, attempts=WebhookDelivery.attempts + 1)
            .returning(
                WebhookDelivery.id,
                WebhookDelivery.tenant_id,
                WebhookDelivery.url,
                WebhookDelivery.payload,
                WebhookDelivery.attempts,
            )
        )
        async with writing(self._engine), self._engine.begin() as conn:
            rows = (await conn.execute(claim.execution_options(synchronize_session=False))).all()
            if not rows:
                return []
            tenant_ids = {row.tenant_id for row in rows}
            found = await conn.execute(select(Tenant.id, Tenant.alert_webhook_secret).where(Tenant.id.in_(tenant_ids)))
            secrets: dict[str, str | None] = {tenant_id: secret for tenant_id, secret in found}  # still sealed
        return [
            _Claimed(row.id, row.url, row.payload, attempt=row.attempts, secret=secrets.get(row.tenant_id))
            for row in rows
        ]

    async def _attempt(self, item: _Claimed) -> None:
        try:
            outcome = await self._send(item)
        except Exception as exc:  # never let one delivery's surprise stop the others (or the loop)
            log.warning("webhook delivery %s: unexpected %s", item.id, type(exc).__name__, exc_info=True)
            outcome = _Outcome(delivered=False, status=None, error=f"internal error: {type(exc).__name__}")
        await self._record(item, outcome)

    async def _send(self, item: _Claimed) -> _Outcome:
        try:
            destination = await self._policy.check(item.url)
        except DestinationRefused as exc:
            return _Outcome(delivered=False, status=None, error=str(exc), final=True)
        except DestinationUnresolved:
            if _address_of(item.url) is None:
                return _Outcome(delivered=False, status=None, error="not an http(s) URL; not sent", final=True)
            return _Outcome(delivered=False, status=None, error=NO_RESPONSE)
        secret = self._box.open(item.secret) if item.secret else None
        if item.secret and secret is None:
            return _Outcome(
                delivered=False,
                status=None,
                error="webhook secret cannot be decrypted (VIBEXP_SECRET_KEY differs from the one that stored it)",
            )
        body = item.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "X-VibeXP-Delivery": item.id,
            "X-VibeXP-Attempt": str(item.attempt),
        }
        if secret:
            headers["X-VibeXP-Signature"] = sign(secret, timestamp=int(time.time()), delivery_id=item.id, body=body)
        url = httpx.URL(item.url)
        headers["Host"] = url.netloc.decode("ascii")  # the name the receiver expects, not the pinned address
        pinned = url.copy_with(host=str(destination.address))
        extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
        assert self._client is not None, "start() the sender before sending"
        try:
            async with asyncio.timeout(self._timeout):
                # Streamed so the response body is never read: only its status matters.
                request = self._client.build_request(
                    "POST", pinned, content=body, headers=headers, extensions=extensions
                )
                response = await self._client.send(request, stream=True)
                status = response.status_code
                await response.aclose()
        except (TimeoutError, httpx.HTTPError):
            return _Outcome(delivered=False, status=None, error=NO_RESPONSE)
        if 200 <= status < 300:
            return _Outcome(delivered=True, status=status, error=None)
        if 300 <= status < 400:
            return _Outcome(delivered=False, status=status, error=f"HTTP {status}: redirect not followed")
        return _Outcome(delivered=False, status=status, error=f"HTTP {status}")

    def _next_state(self, item: _Claimed, outcome: _Outcome, now: datetime) -> tuple[str, datetime | None]:
        if outcome.delivered:
            return DeliveryState.delivered.value, None
        if outcome.final or item.attempt >= self._max_attempts:
            return DeliveryState.failed.value, None
        delay = self._retry_delays[min(item.attempt, len(self._retry_delays)) - 1]
        return DeliveryState.pending.value, now + timedelta(seconds=delay)

    async def _record(self, item: _Claimed, outcome: _Outcome) -> None:
        now = utcnow()
        state, next_at = self._next_state(item, outcome, now)
        async with writing(self._engine), self._engine.begin() as conn:
            await conn.execute(
                update(WebhookDelivery)
                # Still this attempt's claim: a process whose lease ran out must not overwrite a newer attempt.
                .where(WebhookDelivery.id == item.id, WebhookDelivery.attempts == item.attempt)
                .values(
                    state=state,
                    next_attempt_at=next_at,
                    last_attempt_at=now,
                    last_status=outcome.status,
                    last_error=outcome.error[:300] if outcome.error else None,
                )
            )
        if not outcome.delivered:
            log.info("webhook delivery %s attempt %d: %s (%s)", item.id, item.attempt, outcome.error, state)
