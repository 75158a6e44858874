"""Liveness, readiness, and the unauthenticated comparison endpoint for ``make bench``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from vibexp.api.deps import RuntimeDep, SessionDep
from vibexp.api.errors import UNAVAILABLE_RESPONSE, error_response
from vibexp.api.middleware.outage import RETRY_AFTER_SECONDS
from vibexp.api.schemas import Health
from vibexp.core.content.models import Prompt
from vibexp.core.content.schemas import PromptRead
from vibexp.core.errors import NotFound

__all__ = ["bench_router", "health_router"]

health_router = APIRouter(tags=["health"])


@health_router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@health_router.get(
    "/readyz", response_model=Health, responses=UNAVAILABLE_RESPONSE, summary="Readiness: the database answers"
)
async def readyz(runtime: RuntimeDep) -> Any:
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return error_response(
            503,
            "service_unavailable",
            "database unreachable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return Health(status="ok")


bench_router = APIRouter(prefix="/bench", include_in_schema=False)


@bench_router.get("/constant")
async def bench_constant() -> dict[str, str]:
    """Constant JSON, no database: the framework's own ceiling, which ``make bench`` states every ratio against."""
    return {"status": "ok", "service": "vibexp"}


@bench_router.get("/prompts/{item_id}")
async def bench_prompt(item_id: str, session: SessionDep) -> PromptRead:
    """The same row as GET /api/v1/prompts/{id}, without auth, limits or usage: the baseline of ``make bench``."""
    obj = await session.get(Prompt, item_id)
    if obj is None:
        raise NotFound("prompt not found")
    return PromptRead.model_validate(obj)
