"""Kopf handlers, registered into a registry made per run (nothing registers at import time).

The ApiKey and VibeXPTenant handlers share one body, so they are a table (:data:`HANDLERS`) registered by a loop.
Each entry becomes a thin, instrumented wrapper: it takes the shared runtime from ``memo``, waits out the object's
backoff (one retry schedule per object, see ``vibexp.operator.retry``), maps failures once
(:func:`vibexp.operator.errors.kopf_errors`) and calls a reconcile function of ``apikeys`` or ``tenants``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from sqlalchemy import text

from vibexp.core.config import Settings
from vibexp.core.db import Database
from vibexp.core.failure_log import FailureLog
from vibexp.core.migrate import upgrade_async
from vibexp.core.ratelimit.limiter import RateLimiter
from vibexp.operator.apikeys import delete_apikey, reconcile_apikey, report_apikey_outage, sync_apikey
from vibexp.operator.errors import is_database_error, kopf_errors
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
)
from vibexp.operator.retry import Backoff
from vibexp.operator.runtime import OperatorRuntime, runtime_of
from vibexp.operator.settings import OperatorConfig
from vibexp.operator.tenants import reconcile_tenant, report_tenant_outage, suspend_tenant, sync_tenant

__all__ = ["HANDLERS", "OUTAGE_MARK", "register"]

log = logging.getLogger(__name__)

#: Starts the message of every TemporaryError the wrappers raise. Kopf logs each retry at ERROR (and posts it as
#: an event); our own failure log already reports the first failure and then a summary a minute, so Kopf's
#: copies of these lines are dropped (:class:`_QuietRetries`).
OUTAGE_MARK = "[vibexp backoff]"

Action = Callable[[OperatorRuntime, Mapping[str, Any]], Awaitable[None]]
Reporter = Callable[[OperatorRuntime, Mapping[str, Any], str], Awaitable[None]]

KOPF_EVENTS = {"resume": kopf.on.resume, "create": kopf.on.create, "update": kopf.on.update, "delete": kopf.on.delete}


@dataclass(frozen=True, slots=True)
class Handler:
    plural: str
    metric_resource: str
    metric_handler: str
    kopf_id: str
    #: Kopf causes (resume/create/update/delete), or () for the periodic sync timer.
    on: tuple[str, ...]
    action: Action
    report_outage: Reporter


HANDLERS: tuple[Handler, ...] = (
    Handler(
        APIKEYS,
        "apikey",
        "reconcile",
        "reconcile",
        ("resume", "create", "update"),
        reconcile_apikey,
        report_apikey_outage,
    ),
    Handler(APIKEYS, "apikey", "delete", "revoke-on-delete", ("delete",), delete_apikey, report_apikey_outage),
    Handler(APIKEYS, "apikey", "sync", "sync", (), sync_apikey, report_apikey_outage),
    Handler(
        TENANTS,
        "vibexptenant",
        "resume",
        "resume",
        ("resume",),
        functools.partial(reconcile_tenant, kick_all=False),
        report_tenant_outage,
    ),
    Handler(
        TENANTS,
        "vibexptenant",
        "reconcile",
        "reconcile",
        ("create", "update"),
        functools.partial(reconcile_tenant, kick_all=True),
        report_tenant_outage,
    ),
    Handler(TENANTS, "vibexptenant", "delete", "suspend-on-delete", ("delete",), suspend_tenant, report_tenant_outage),
    Handler(TENANTS, "vibexptenant", "sync", "sync", (), sync_tenant, report_tenant_outage),
)


class _QuietRetries(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return OUTAGE_MARK not in record.getMessage()


def _cause(exc: BaseException) -> str:
    root = exc.__cause__ or exc
    return f"{type(root).__name__}: {str(root).partition(chr(10))[0]}"[:300]


async def attempt(rt: OperatorRuntime, entry: Handler, body: Mapping[str, Any]) -> None:
    """Run one action; on a temporary failure record it in the object's backoff, say so on the object, re-raise."""
    uid = body["metadata"]["uid"]
    try:
        with kopf_errors(rt.config.retry_delay):
            await entry.action(rt, body)
    except kopf.TemporaryError as exc:
        delay = rt.backoff.failed(uid)
        if is_database_error(exc.__cause__):
            # Only the database's failures: a temporary wait of another kind (a webhook Secret not there yet, the
            # Kubernetes API) is no "reconciling with the VibeXP database failed" and must not be logged as one.
            rt.failures.failed(f"objects are retried with backoff (up to {rt.config.retry_max_delay:.0f}s apart)")
            try:
                await entry.report_outage(rt, body, _cause(exc))
            except Exception:  # the condition is best effort; the retry below is what matters
                log.debug("could not report the outage on %s", uid, exc_info=True)
        raise kopf.TemporaryError(f"{OUTAGE_MARK} {exc}; next attempt in {delay:.1f}s", delay=delay) from exc
    rt.backoff.succeeded(uid)
    rt.failures.succeeded()


def _kopf_handler(entry: Handler, metrics: OperatorMetrics) -> Callable[..., Awaitable[None]]:
    instrumented_attempt = instrumented(entry.metric_resource, entry.metric_handler, metrics)(attempt)

    async def handler(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        rt = runtime_of(memo)
        wait = rt.backoff.remaining(body["metadata"]["uid"])
        if wait > 0:  # another trigger already failed on this object: its scheduled retry is the one attempt
            if not entry.on:
                return
            raise kopf.TemporaryError(f"{OUTAGE_MARK} waiting {wait:.1f}s", delay=wait)
        await instrumented_attempt(rt, entry, body)

    handler.__name__ = handler.__qualname__ = f"{entry.metric_resource}_{entry.metric_handler}"
    return handler


def _login(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """Kopf's own credentials: in a pod the service account; elsewhere $KUBECONFIG or ~/.kube/config."""
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
    # Long on purpose: Kopf handlers are closures registered into one registry, and the lifecycle ones (start-up,
    # login, clean-up, probe) close over this operator's settings; the ApiKey/VibeXPTenant handlers are one loop
    # over the HANDLERS table, and the Secret-drift handler is the one event handler left.
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
        logging.getLogger("kopf.objects").addFilter(_QuietRetries())
        if core_settings.should_auto_migrate:
            await upgrade_async(core_settings.database_url)
        # The API's pool settings apply here too; pre-ping, so a database restart costs the operator no failed step.
        database = Database.from_settings(core_settings, pre_ping=True)
        memo.runtime = OperatorRuntime(
            config=config,
            engine=database.engine,
            session_factory=database.session_factory,
            limiter=RateLimiter(database.engine),
            kube=await KubeClient.connect(request_timeout=config.kube_timeout, metrics=metrics),
            metrics=metrics,
            namespaces=namespaces,
            backoff=Backoff(base=config.retry_delay, cap=config.retry_max_delay),
            failures=FailureLog(log, "reconciling with the VibeXP database"),
        )
        metrics.serve(config.metrics_host, config.metrics_port)
        log.info("VibeXP operator started (%s)", "cluster-wide" if namespaces is None else ", ".join(namespaces))

    @kopf.on.login(id="login", registry=registry)
    def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
        return _login(settings)

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

    # -- ApiKey and VibeXPTenant: the table --------------------------------------------------------------------
    for entry in HANDLERS:
        fn = _kopf_handler(entry, metrics)
        resource = (GROUP, VERSION, entry.plural)
        if not entry.on:
            interval = config.sync_interval
            kopf.timer(*resource, id=entry.kopf_id, registry=registry, interval=interval, initial_delay=interval)(fn)
        for cause in entry.on:
            KOPF_EVENTS[cause](*resource, id=entry.kopf_id, registry=registry, backoff=config.retry_delay)(fn)

    @kopf.on.event("v1", "secrets", labels={LABEL_MANAGED_BY: MANAGER}, id="secret-drift", registry=registry)
    @instrumented("secret", "drift", metrics)
    async def secret_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """A Secret we manage was edited or deleted: let its ApiKey check it (and rotate if the key is gone)."""
        if event.get("type") not in ("MODIFIED", "DELETED"):
            return
        meta = body.get("metadata") or {}
        name = (meta.get("labels") or {}).get(LABEL_APIKEY)
        owner = next((r for r in meta.get("ownerReferences") or [] if r.get("kind") == "ApiKey"), None)
        if not name or owner is None or (namespaces is not None and meta.get("namespace") not in namespaces):
            return
        rt = runtime_of(memo)
        if rt.backoff.remaining(str(owner.get("uid"))) > 0:
            return  # the ApiKey's scheduled retry will look at its Secret too
        with kopf_errors(rt.config.retry_delay):
            apikey = await rt.kube.read_apikey(meta["namespace"], name)
            if apikey is None or apikey["metadata"]["uid"] != owner.get("uid"):
                return
            await reconcile_apikey(rt, apikey, fresh=True)
