"""Kopf handlers, registered into a registry made per run (nothing registers at import time).

Each handler is a thin, instrumented wrapper: it takes the shared runtime from ``memo``, maps failures once
(:func:`vibexp.operator.errors.kopf_errors`) and calls the reconcile functions in ``apikeys`` and ``tenants``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from sqlalchemy import text

from vibexp.core.config import Settings
from vibexp.core.db import Database
from vibexp.core.migrate import upgrade_async
from vibexp.core.ratelimit.limiter import RateLimiter
from vibexp.operator.apikeys import delete_apikey, reconcile_apikey, sync_apikey
from vibexp.operator.errors import kopf_errors
from vibexp.operator.kube import KubeClient
from vibexp.operator.metrics import OperatorMetrics, instrumented
from vibexp.operator.resources import (
    APIKEYS,
    FINALIZER,
    GROUP,
    LABEL_APIKEY,
    LABEL_MANAGED_BY,
    MANAGER,
    TENANTS,
    VERSION,
    apikey_path,
)
from vibexp.operator.runtime import OperatorRuntime, runtime_of
from vibexp.operator.settings import OperatorConfig
from vibexp.operator.tenants import reconcile_tenant, suspend_tenant, sync_tenant

__all__ = ["register"]

log = logging.getLogger(__name__)


def _login(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config (client certificates or tokens)."""
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(settings=settings)
    if info is None:
        info = kopf.login_with_kubeconfig(settings=settings)
    return info


def register(
    registry: kopf.OperatorRegistry,
    *,
    settings: Settings,
    config: OperatorConfig,
    metrics: OperatorMetrics,
    namespaces: list[str] | None,
) -> None:
    """Register every handler of the operator into ``registry``."""
    retry = config.retry_delay
    core_settings = settings

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @kopf.on.startup(id="startup", registry=registry)
    async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="operator.vibexp.io")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="operator.vibexp.io")
        settings.posting.level = logging.INFO
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = config.kube_timeout * 2
        if core_settings.should_auto_migrate:
            await upgrade_async(core_settings.database_url)
        database = Database.from_settings(core_settings)  # the API's pool settings apply here too
        memo.runtime = OperatorRuntime(
            config=config,
            engine=database.engine,
            session_factory=database.session_factory,
            limiter=RateLimiter(database.engine),
            kube=KubeClient(timeout=config.kube_timeout),
            metrics=metrics,
            namespaces=namespaces,
        )
        metrics.serve(config.metrics_host, config.metrics_port)
        log.info("VibeXP operator started (%s)", "cluster-wide" if namespaces is None else ", ".join(namespaces))

    @kopf.on.login(id="login", registry=registry)
    def login(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo | None:
        info = _login(settings)
        if info is not None:
            runtime_of(memo).kube.configure(info, lambda: _login(settings))
        return info

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        rt = runtime_of(memo)
        metrics.stop()
        await rt.kube.close()
        await rt.engine.dispose()

    @kopf.on.probe(id="database", registry=registry)
    async def database(memo: kopf.Memo, **_: Any) -> str:
        """Shown in /healthz; never fails it (restarting the operator does not bring a database back)."""
        try:
            async with asyncio.timeout(2), runtime_of(memo).engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return "ok"
        except Exception as exc:
            return f"unreachable: {type(exc).__name__}"

    # -- ApiKey ------------------------------------------------------------------------------------------------
    key = (GROUP, VERSION, APIKEYS)

    @kopf.on.resume(*key, id="reconcile", registry=registry, backoff=retry)
    @kopf.on.create(*key, id="reconcile", registry=registry, backoff=retry)
    @kopf.on.update(*key, id="reconcile", registry=registry, backoff=retry)
    @instrumented("apikey", "reconcile", metrics)
    async def apikey_reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        rt = runtime_of(memo)
        with kopf_errors(rt.config.retry_delay):
            await reconcile_apikey(rt, body)

    @kopf.on.delete(*key, id="revoke-on-delete", registry=registry, backoff=retry)
    @instrumented("apikey", "delete", metrics)
    async def apikey_delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        rt = runtime_of(memo)
        with kopf_errors(rt.config.retry_delay):
            await delete_apikey(rt, body)

    @kopf.timer(*key, id="sync", registry=registry, interval=config.sync_interval, initial_delay=config.sync_interval)
    @instrumented("apikey", "sync", metrics)
    async def apikey_sync(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        rt = runtime_of(memo)
        with kopf_errors(rt.config.retry_delay):
            await sync_apikey(rt, body)

    @kopf.on.event("v1", "secrets", labels={LABEL_MANAGED_BY: MANAGER}, id="secret-drift", registry=registry)
    @instrumented("secret", "drift", metrics)
    async def secret_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """A Secret we manage was edited or deleted: let its ApiKey check it (and rotate if the key is gone)."""
        if event.get("type") not in ("MODIFIED", "DELETED"):
            return
        meta = body.get("metadata") or {}
        name = (meta.get("labels") or {}).get(LABEL_APIKEY)
        owner = next((r for r in meta.get("ownerReferences") or [] if r.get("kind") == "ApiKey"), None)
        if not name or owner is None:
            return
        rt = runtime_of(memo)
        if namespaces is not None and meta.get("namespace") not in namespaces:
            return
        with kopf_errors(rt.config.retry_delay):
            apikey = await rt.kube.get(apikey_path(meta["namespace"], name))
            if apikey is None or apikey["metadata"]["uid"] != owner.get("uid"):
                return
            await reconcile_apikey(rt, apikey)

    # -- VibeXPTenant ------------------------------------------------------------------------------------------
    tenant = (GROUP, VERSION, TENANTS)

    @kopf.on.resume(*tenant, id="resume", registry=registry, backoff=retry)
    @instrumented("vibexptenant", "resume", metrics)
    async def tenant_resume(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        rt = runtime_of(memo)
        with kopf_errors(rt.config.retry_delay):
            await reconcile_tenant(rt, body, kick_all=False)

    @kopf.on.create(*tenant, id="reconcile", registry=registry, backoff=retry)
    @kopf.on.update(*tenant, id="reconcile", registry=registry, backoff=retry)
    @instrumented("vibexptenant", "reconcile", metrics)
    async def tenant_reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        rt = runtime_of(memo)
        with kopf_errors(rt.config.retry_delay):
            await reconcile_tenant(rt, body, kick_all=True)

    @kopf.on.delete(*tenant, id="suspend-on-delete", registry=registry, backoff=retry)
    @instrumented("vibexptenant", "delete", metrics)
    async def tenant_delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        rt = runtime_of(memo)
        with kopf_errors(rt.config.retry_delay):
            await suspend_tenant(rt, body)

    @kopf.timer(
        *tenant, id="sync", registry=registry, interval=config.sync_interval, initial_delay=config.sync_interval
    )
    @instrumented("vibexptenant", "sync", metrics)
    async def tenant_sync(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        rt = runtime_of(memo)
        with kopf_errors(rt.config.retry_delay):
            await sync_tenant(rt, body)
