"""Prometheus metrics of the API process: the metric objects, the hooks that update them, and ``/metrics``.

Why this shape:

* Metrics carry tenant names and key ids (never a key, its prefix or its hash), so ``/metrics`` is not behind an API
  key but must not be public: the Helm chart scrapes it on a separate port (``VIBEXP_METRICS_PORT``) that the
  Ingress never routes to. ``docs/metrics.md`` lists every metric, its labels and its cardinality bound.
* Label values come only from bounded sets: route *templates* (``/api/v1/prompts/{item_id}``) resolved from the
  app's routes (``vibexp.api.route_templates``, the same value the usage log records), never raw paths; the fixed
  ``ToolType`` set; the fixed ``InvalidApiKey.reason`` set; key ids and tenant names only after a key has been
  verified (so only keys that exist in the database ever become labels).
* Several uvicorn workers in one pod: when ``PROMETHEUS_MULTIPROC_DIR`` is set (before the process starts), every
  worker writes its samples to files there and any worker's ``/metrics`` answers for all of them. Gauges say how
  workers combine (``max`` for timestamps, ``mostrecent`` for the tenant's window). Without it, run one worker per
  pod (the chart's default) and scale with replicas.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vibexp.api.request_state import RequestState
from vibexp.api.route_templates import route_template
from vibexp.api.settings import ApiSettings
from vibexp.core.alerts.models import AlertKind
from vibexp.core.alerts.service import observe_opened
from vibexp.core.errors import AccountSuspended, AuthFailure, InvalidApiKey, IpNotAllowed
from vibexp.core.keys.policy import ActiveKey
from vibexp.core.keys.verifier import Principal
from vibexp.core.ratelimit.limiter import RateDecision
from vibexp.core.text import make_storable
from vibexp.core.usage.tool_type import ToolType

__all__ = [
    "AUTH_FAILURE_REASONS",
    "MULTIPROC_ENV",
    "key_name_label",
    "metrics_lifespan",
    "metrics_registry",
    "metrics_router",
    "observe_active_keys",
    "observe_alert_opened",
    "observe_auth_failure",
    "observe_rate_decision",
    "observe_request",
    "observe_usage_flush",
    "render_metrics",
]

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Every ``InvalidApiKey.reason`` (``AuthFailure``) plus the codes of the other refusals (a suspended account, an
#: address outside the key's networks). Anything else is counted as ``other`` so a new reason can never add unbounded
#: series.
AUTH_FAILURE_REASONS = frozenset({*(reason.value for reason in AuthFailure), AccountSuspended.code, IpNotAllowed.code})
_TOOL_TYPES = frozenset(tool.value for tool in ToolType)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: ``*_created`` samples double the series count and no dashboard or alert uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# -- HTTP traffic on the guarded paths (/api/v1, /mcp) ------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "vibexp_http_requests",
    "Requests to /api/v1 and /mcp by route template, method, status and calling tool.",
    ["route", "method", "status", "tool_type"],
)
HTTP_LATENCY = Histogram(
    "vibexp_http_request_duration_seconds",
    "Time from the request reaching the API-key layer to the end of the response.",
    ["route", "method", "status", "tool_type"],
    buckets=_LATENCY_BUCKETS,
)
# -- keys and tenants ------------------------------------------------------------------------------------------
KEY_REQUESTS = Counter(
    "vibexp_api_key_requests",
    "Authenticated requests per API key (by key id, never the key), including ones refused with 429.",
    ["tenant", "key_id", "tool_type"],
)
KEY_LAST_USED = Gauge(
    "vibexp_api_key_last_used_timestamp_seconds",
    "Unix time of the key's most recent authenticated request seen by this process.",
    ["tenant", "key_id"],
    multiprocess_mode="max",
)
RATE_LIMITED = Counter(
    "vibexp_rate_limited_requests",
    "Requests refused with 429 because the tenant's hourly window was used up.",
    ["tenant", "tier"],
)
TENANT_WINDOW_USED = Gauge(
    "vibexp_tenant_window_requests",
    "Requests counted in the tenant's current hourly window (all replicas), as of its latest request here.",
    ["tenant"],
    multiprocess_mode="mostrecent",
)
TENANT_WINDOW_LIMIT = Gauge(
    "vibexp_tenant_window_limit",
    "The tenant's hourly request limit, as of its latest request here.",
    ["tenant"],
    multiprocess_mode="mostrecent",
)
TENANT_WINDOW_RESET = Gauge(
    "vibexp_tenant_window_reset_timestamp_seconds",
    "Unix time at which the window that vibexp_tenant_window_requests counts ends.",
    ["tenant"],
    multiprocess_mode="max",
)
AUTH_FAILURES = Counter(
    "vibexp_auth_failures",
    "Requests refused by the API-key layer (401/403), by reason.",
    ["reason"],
)
for _reason in (*sorted(AUTH_FAILURE_REASONS), "other"):
    AUTH_FAILURES.labels(_reason)  # every reason starts at 0, so increase() sees even the first failure


#: ``vibexp_api_key_info``'s ``name`` label: at most this many characters of the key's name (user text).
KEY_NAME_LABEL_LENGTH = 64


def key_name_label(name: str) -> str:
    """A key's name as a label value: control characters and lone surrogates replaced, cut to
    ``KEY_NAME_LABEL_LENGTH`` characters (an ellipsis marks a cut). Quotes, backslashes and newlines are escaped by
    the exposition format itself, so a name can never end a label or a line."""
    text = make_storable(" ".join(name.split()), KEY_NAME_LABEL_LENGTH + 1)
    return text if len(text) <= KEY_NAME_LABEL_LENGTH else text[: KEY_NAME_LABEL_LENGTH - 1] + "\u2026"


class ActiveKeyCollector(Collector):
    """The active keys, as of the latest key policy sweep, as two families:

    * ``vibexp_api_key_expiry_timestamp_seconds{tenant, key_id}``: each active key's ``expires_at`` (keys with an
      expiry still ahead);
    * ``vibexp_api_key_info{key_id, name, owner} 1``: each active key's name, so per-key panels join on ``key_id``
      (``* on (key_id) group_left (name) ...``) and show names instead of UUIDs. ``owner`` is the owner's e-mail
      ("" for a service key).

    Not ``Gauge``s: the set of keys is replaced as a whole (a revoked or expired key must lose its series, which
    multiprocess gauge files cannot forget), and it comes from the database, not from this process's traffic. The
    key policy sweep (``vibexp.core.keys.policy``, every ``VIBEXP_KEY_POLICY_INTERVAL`` seconds) reads it and
    :func:`observe_active_keys` swaps it in; a scrape only formats it, and requests never touch it. Every process
    reports the whole set (rules and panels take ``max``/``topk`` by key over replicas). Cardinality: one series
    per active key in each family; labels are the tenant's name, the key's id and its name (escaped, at most
    ``KEY_NAME_LABEL_LENGTH`` characters), never the key, its prefix or its hash.
    """

    expiry_name = "vibexp_api_key_expiry_timestamp_seconds"
    expiry_documentation = "Unix time at which the active API key expires (keys with an expiry still ahead)."
    info_name = "vibexp_api_key_info"
    info_documentation = "One series per active API key naming it (join on key_id to show names); always 1."

    def __init__(self) -> None:
        self._keys: tuple[tuple[ActiveKey, str], ...] = ()

    def update(self, keys: Sequence[ActiveKey]) -> None:
        labelled = tuple((key, key_name_label(key.name)) for key in keys)
        self._keys = labelled  # one assignment: a scrape on the metrics thread sees old or new, whole

    def collect(self) -> Iterator[Metric]:
        keys = self._keys
        expiry = GaugeMetricFamily(self.expiry_name, self.expiry_documentation, labels=["tenant", "key_id"])
        info = GaugeMetricFamily(self.info_name, self.info_documentation, labels=["key_id", "name", "owner"])
        for key, name in keys:
            if key.expires_at is not None:
                expiry.add_metric([key.tenant, key.key_id], key.expires_at.timestamp())
            info.add_metric([key.key_id, name, key.owner], 1.0)
        yield expiry
        yield info


ACTIVE_KEYS = ActiveKeyCollector()
REGISTRY.register(ACTIVE_KEYS)


def observe_active_keys(keys: Sequence[ActiveKey]) -> None:
    """``Runtime(on_active_keys=...)``: the active keys as of the latest key policy sweep."""
    ACTIVE_KEYS.update(keys)


# -- alerts (vibexp.core.alerts) -------------------------------------------------------------------------------
ALERTS = Counter(
    "vibexp_alerts", "Alerts opened in this process (repeats of an open alert not counted), by kind.", ["kind"]
)
_ALERT_SERIES = {kind.value: ALERTS.labels(kind.value) for kind in AlertKind}  # each kind starts at 0


def observe_alert_opened(kind: str) -> None:
    """``vibexp.core.alerts.service.observe_opened``: one newly opened alert, once its transaction committed."""
    series = _ALERT_SERIES.get(kind)
    if series is not None:  # the kinds are a fixed set; anything else would be a new, unbounded label
        series.inc()


observe_opened(observe_alert_opened)  # at import: once per process, whichever app or test imports the metrics
# -- usage recorder --------------------------------------------------------------------------------------------
USAGE_FLUSH_LAG = Histogram(
    "vibexp_usage_flush_lag_seconds",
    "How long the oldest event of each usage flush waited before it was written to the database.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
USAGE_EVENTS_FLUSHED = Counter(
    "vibexp_usage_events_flushed", "Usage events written to the database by the batched recorder."
)
USAGE_LAST_FLUSH = Gauge(
    "vibexp_usage_last_flush_timestamp_seconds",
    "Unix time of the latest successful usage flush that wrote at least one event (or of the process start).",
    multiprocess_mode="max",
)


def _method(method: str) -> str:
    return method if method in _METHODS else "other"


def _tool(tool_type: str) -> str:
    return tool_type if tool_type in _TOOL_TYPES else ToolType.other.value


# -- hooks called by the API-key middleware and the usage recorder ---------------------------------------------
# Labelled children are looked up once and kept (``labels()`` takes a lock and costs a few microseconds each
# time). These maps hold exactly the series the metrics hold, so they have the same bounds.
_REQUEST_SERIES: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
_KEY_SERIES: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_TENANT_SERIES: dict[str, tuple[Any, ...]] = {}
_TENANT_GAUGES = (TENANT_WINDOW_USED, TENANT_WINDOW_LIMIT, TENANT_WINDOW_RESET)


def observe_request(state: RequestState) -> None:
    """Count one guarded request and its latency; per key too when the key was verified."""
    tool = _tool(state.usage.tool_type)
    labels = (state.route, _method(state.method), str(state.status), tool)
    series = _REQUEST_SERIES.get(labels)
    if series is None:
        series = _REQUEST_SERIES[labels] = (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
    series[0].inc()
    series[1].observe(time.perf_counter() - state.started)
    principal = state.principal
    if principal is not None:
        key = (principal.tenant_name, principal.key_id, tool)
        key_series = _KEY_SERIES.get(key)
        if key_series is None:
            key_series = _KEY_SERIES[key] = (KEY_REQUESTS.labels(*key), KEY_LAST_USED.labels(*key[:2]))
        key_series[0].inc()
        key_series[1].set(time.time())


def observe_auth_failure(state: RequestState, exc: InvalidApiKey | AccountSuspended | IpNotAllowed) -> None:
    reason = exc.reason if isinstance(exc, InvalidApiKey) else exc.code
    AUTH_FAILURES.labels(reason if reason in AUTH_FAILURE_REASONS else "other").inc()
    observe_request(state)


def observe_rate_decision(principal: Principal, decision: RateDecision) -> None:
    """The tenant's place in its hourly window (for the near-limit alert) and, when refused, a rate-limit hit."""
    tenant = principal.tenant_name
    series = _TENANT_SERIES.get(tenant)
    if series is None:
        series = _TENANT_SERIES[tenant] = tuple(g.labels(tenant) for g in _TENANT_GAUGES)
    used, limit, reset = series
    used.set(decision.limit - decision.remaining)
    limit.set(decision.limit)
    reset.set(decision.reset_at)
    if not decision.allowed:
        RATE_LIMITED.labels(tenant, principal.tier).inc()


def observe_usage_flush(events: int, oldest_wait: float) -> None:
    """``UsageRecorder(on_flush=...)``: how many events a flush wrote and how long the oldest one waited."""
    USAGE_EVENTS_FLUSHED.inc(events)
    USAGE_FLUSH_LAG.observe(max(oldest_wait, 0.0))
    USAGE_LAST_FLUSH.set(time.time())


# -- exposition --------------------------------------------------------------------------------------------------
def metrics_registry() -> CollectorRegistry:
    """The process's registry, or, in multiprocess mode, a fresh one that reads every worker's files."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(ACTIVE_KEYS)  # read from the database by this worker's sweep: no files to merge
    return registry


def render_metrics() -> bytes:
    return generate_latest(metrics_registry())


metrics_router = APIRouter(tags=["health"])


@metrics_router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics (text format). Not behind an API key: never route it through a public Ingress.",
)
async def metrics() -> PlainTextResponse:
    return PlainTextResponse(render_metrics(), media_type=CONTENT_TYPE_LATEST)


def metrics_lifespan(app: Any, settings: ApiSettings) -> Callable[[], AbstractAsyncContextManager[None]]:
    """A lifespan hook: compiles the app's route templates (so no request pays for it), and serves the metrics on
    ``settings.metrics_port`` too, when it is set.

    With several workers only the first one binds the port; the others log it and go on (in multiprocess mode the
    one that binds answers for all of them). A single process that cannot bind it while ``/metrics`` is off on the
    main port (``VIBEXP_METRICS_ON_MAIN_PORT=false``, as the chart runs it) refuses to start: it would be unobservable.
    """

    @asynccontextmanager
    async def serve() -> AsyncIterator[None]:
        route_template({"app": app, "method": "GET", "path": "/"})
        USAGE_LAST_FLUSH.set(time.time())  # nothing is pending at start-up (VibeXPUsageNotWritten counts from here)
        if settings.metrics_port is None:
            yield
            return
        where = f"{settings.metrics_host}:{settings.metrics_port}"
        try:
            server, thread = start_http_server(
                settings.metrics_port, addr=settings.metrics_host, registry=metrics_registry()
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if os.environ.get(MULTIPROC_ENV):
                log.warning("metrics port %s not served by this process (%s); another worker serves it", where, reason)
            elif settings.metrics_on_main_port:
                log.warning(
                    "metrics port %s not served by this process (%s); /metrics on the main port works", where, reason
                )
            else:
                raise RuntimeError(
                    f"cannot serve metrics on {where} ({reason}) and VIBEXP_METRICS_ON_MAIN_PORT is false"
                ) from exc
            yield
            return
        log.info("serving metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    return serve
