"""``vibexp operator``: Kopf under the hood, cluster-wide or for the listed namespaces."""

from __future__ import annotations

import logging

import kopf

from vibexp.core.config import Settings
from vibexp.operator.handlers import register
from vibexp.operator.metrics import OperatorMetrics
from vibexp.operator.settings import OperatorConfig

__all__ = ["run_operator"]


def run_operator(*, namespaces: list[str], all_namespaces: bool, settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code.

    One replica at a time (Kopf has no leader election): the Deployment uses ``strategy: Recreate``.
    """
    config = OperatorConfig()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level.lower() != "debug":
        # Kopf logs every handler and timer run at INFO (a line per ApiKey per sync interval); our own log lines
        # and the Kubernetes events already say what changed.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    registry = kopf.OperatorRegistry()
    register(
        registry,
        settings=settings,
        config=config,
        metrics=OperatorMetrics(),
        namespaces=None if all_namespaces else list(namespaces),
    )
    liveness = f"http://{config.health_host}:{config.health_port}/healthz" if config.health_port else None
    kopf.run(
        registry=registry,
        standalone=True,  # no peering objects: one operator replica
        clusterwide=all_namespaces,
        namespaces=[] if all_namespaces else namespaces,
        liveness_endpoint=liveness,
        memo=kopf.Memo(),
    )
    return 0
