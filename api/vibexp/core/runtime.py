"""The long-lived pieces one process needs (engine, key cache, rate limiter, usage recorder, webhook sender, key
policy sweep), started and stopped together. The HTTP app holds one; the CLI and the operator make their own.

The background ones are a :class:`~vibexp.core.tasks.TaskList`, started in order and stopped in reverse: SQLite's
WAL checkpointer (``vibexp.core.wal``: the engine's commits leave checkpoints to it) first, so it runs until the
end; then the key verifier (its change poll), so it outlives everything that could still verify or revoke a key;
then the OAuth access-token verifier (its poll, and its last write of the grants' usage); the usage recorder before
the key policy sweep, which flushes it; the recorder stopped after the webhook sender and the sweep, with a last
flush, so a graceful shutdown loses no usage. The OAuth purge (``vibexp.core.oauth.purge``) depends on nothing
else. The content change feed (``vibexp.core.content.changes``,
the MCP listen streams' source) starts last and stops first: nothing else depends on it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from vibexp.core.alerts.detectors import AlertDetector, AlertSink, DefaultAlertSink, DetectorLimits
from vibexp.core.alerts.sender import WebhookSender
from vibexp.core.config import Settings
from vibexp.core.content.changes import ChangeFeed
from vibexp.core.db import Database
from vibexp.core.keys.policy import ActiveKey, KeyPolicySweep
from vibexp.core.keys.verifier import KeyVerifier
from vibexp.core.migrate import upgrade_async
from vibexp.core.oauth.purge import OAuthPurge
from vibexp.core.oauth.verifier import GrantVerifier
from vibexp.core.ratelimit.limiter import RateLimiter
from vibexp.core.tasks import TaskList
from vibexp.core.usage.recorder import UsageRecorder
from vibexp.core.wal import WalCheckpointer

__all__ = ["Runtime"]

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    database: Database
    verifier: KeyVerifier
    limiter: RateLimiter
    usage: UsageRecorder
    webhooks: WebhookSender
    key_policy: KeyPolicySweep
    #: Content and key changes from every process (``vibexp.core.content.changes``): the MCP listen streams' feed.
    content_changes: ChangeFeed = field(init=False)
    #: OAuth access tokens for ``/mcp/v1/connect`` (``vibexp.core.oauth.verifier``), kept current like the keys.
    grants: GrantVerifier = field(init=False)
    #: Deletes expired authorization codes, abandoned consents and unused registered clients (``core.oauth.purge``).
    oauth_purge: OAuthPurge = field(init=False)
    #: SQLite's WAL checkpoints, off the writers' commits (``vibexp.core.wal``; nothing on PostgreSQL).
    checkpoints: WalCheckpointer = field(init=False)
    #: The background members, in starting order.
    tasks: TaskList = field(init=False)

    def __post_init__(self) -> None:
        self.grants = GrantVerifier(
            self.database.session_factory,
            ttl=self.settings.key_cache_ttl,
            poll_interval=self.settings.revocation_poll_interval,
        )
        self.content_changes = ChangeFeed(
            self.database.session_factory, interval=self.settings.revocation_poll_interval
        )
        self.oauth_purge = OAuthPurge(self.database.session_factory, interval=self.settings.oauth_purge_interval)
        self.checkpoints = WalCheckpointer(self.database.engine)
        self.tasks = TaskList(
            [
                self.checkpoints,
                self.verifier,
                self.grants,
                self.usage,
                self.webhooks,
                self.key_policy,
                self.oauth_purge,
                self.content_changes,
            ]
        )

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        on_usage_flush: Callable[[int, float], None] | None = None,
        on_active_keys: Callable[[Sequence[ActiveKey]], None] | None = None,
        alert_sink: AlertSink | None = None,
        own_urls: Sequence[str] = (),
    ) -> Runtime:
        """``on_usage_flush(events, oldest_wait_seconds)`` is called after each usage flush (the API's metrics).
        Each flush also runs the alert detectors on the batch; they hand alerts to ``alert_sink`` (by default the
        alert service, ``vibexp.core.alerts.service.raise_alert``, when present, each alert also logged).
        ``own_urls`` are this server's addresses besides ``VIBEXP_PUBLIC_URL``, ``VIBEXP_SERVER_URLS`` and
        ``VIBEXP_REPLICA_URLS`` (its metrics port, say), which the webhook sender refuses to call (no alert loops).
        ``on_active_keys`` receives each key policy sweep's active keys (the API's metrics)."""
        database = Database.from_settings(settings, background_checkpoints=True)
        detector = AlertDetector(
            database, sink=alert_sink or DefaultAlertSink(), limits=DetectorLimits.from_settings(settings)
        )
        usage = UsageRecorder(
            database.engine,
            flush_interval=settings.usage_flush_interval,
            retention=timedelta(days=settings.usage_retention_days),
            audit_retention=timedelta(days=settings.audit_retention_days),
            on_flush=on_usage_flush,
            detector=detector,
        )
        return cls(
            settings=settings,
            database=database,
            verifier=KeyVerifier(
                database.session_factory, ttl=settings.key_cache_ttl, poll_interval=settings.revocation_poll_interval
            ),
            limiter=RateLimiter(database.engine),
            usage=usage,
            webhooks=WebhookSender(
                database.engine,
                own_urls=[settings.public_url, *settings.server_urls, *settings.replica_urls, *own_urls],
                allow_private=settings.webhook_allow_private,
                secret_key=settings.secret_key,
            ),
            # Flushes this process's buffered usage first: a key used a moment ago here has its last use written.
            key_policy=KeyPolicySweep(
                database,
                interval=settings.key_policy_interval,
                before_sweep=usage.flush,
                on_active_keys=on_active_keys,
            ),
        )

    async def start(self) -> None:
        if self.settings.should_auto_migrate:
            log.info("applying database migrations")
            await upgrade_async(self.settings.database_url)
        await self.tasks.start()

    async def stop(self) -> None:
        try:
            await self.tasks.stop()
        finally:
            await self.database.dispose()

    @property
    def engine(self) -> AsyncEngine:
        return self.database.engine

    @property
    def session_factory(self) -> async_sessionmaker[AsyncSession]:
        return self.database.session_factory
