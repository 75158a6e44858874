"""The dashboard's pages, one module per area; ``router`` includes them all."""

from __future__ import annotations

from fastapi import APIRouter

from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.routes import (
    account,
    alert_settings,
    alerts,
    audit,
    connected_apps,
    content,
    keys,
    members,
    prompt_versions,
    setup,
    transfer,
    usage,
)

__all__ = ["router"]

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
for module in (
    account,
    setup,
    members,
    keys,
    connected_apps,
    usage,
    content,
    prompt_versions,
    transfer,
    audit,
    alerts,
    alert_settings,
):
    router.include_router(module.router)
