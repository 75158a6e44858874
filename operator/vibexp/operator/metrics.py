"""Prometheus metrics of the operator's reconciles, served on their own port.

Names (dashboards depend on them): ``vibexp_operator_reconciles_total{resource,handler,result}`` with result one of
``success``, ``temporary_error``, ``permanent_error``, ``error``; ``vibexp_operator_reconcile_errors_total
{resource,handler}``; ``vibexp_operator_reconcile_duration_seconds{resource,handler}`` (histogram);
``vibexp_operator_kube_requests_total{verb,resource}``: the operator's own Kubernetes API requests (Kopf's watches
and finalizer patches are not included). The metrics
live in a registry of their own, held by the operator's memo, so two operators in one process never collide.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import kopf
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

__all__ = ["OperatorMetrics", "instrumented"]

P = ParamSpec("P")
R = TypeVar("R")


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.reconciles = Counter(
            "vibexp_operator_reconciles_total",
            "Handler runs by resource, handler and result.",
            ["resource", "handler", "result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "vibexp_operator_reconcile_errors_total",
            "Handler runs that failed (temporary, permanent or unexpected).",
            ["resource", "handler"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "vibexp_operator_reconcile_duration_seconds",
            "Time a handler run took.",
            ["resource", "handler"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.kube_requests = Counter(
            "vibexp_operator_kube_requests_total",
            "Kubernetes API requests made by the operator's client, by verb and resource.",
            ["verb", "resource"],
            registry=self.registry,
        )
        self._server: Any = None

    def serve(self, host: str, port: int) -> None:
        if port:
            self._server, _thread = start_http_server(port, addr=host, registry=self.registry)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def observe(self, resource: str, handler: str, result: str, seconds: float) -> None:
        self.reconciles.labels(resource, handler, result).inc()
        if result != "success":
            self.errors.labels(resource, handler).inc()
        self.duration.labels(resource, handler).observe(seconds)


def instrumented(
    resource: str, handler: str, metrics: OperatorMetrics
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Count, time and classify every run of an async handler."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            result = "error"
            try:
                value = await fn(*args, **kwargs)
                result = "success"
                return value
            except kopf.TemporaryError:
                result = "temporary_error"
                raise
            except kopf.PermanentError:
                result = "permanent_error"
                raise
            finally:
                metrics.observe(resource, handler, result, time.perf_counter() - started)

        return wrapper

    return decorate
