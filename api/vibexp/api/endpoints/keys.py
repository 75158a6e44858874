"""API key management with a key (keys have full account access), and the caller's account."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from vibexp.api.deps import CurrentActor, CurrentPrincipal, RuntimeDep, SessionDep
from vibexp.api.endpoints import API_PREFIX
from vibexp.api.errors import ERROR_RESPONSES
from vibexp.api.schemas import AccountRead, PageRead
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import KeyStatus
from vibexp.core.keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, ApiKeyRotate, KeyUsageRead
from vibexp.core.tenants.service import get_tenant
from vibexp.core.usage.service import key_usage

__all__ = ["account_router", "keys_router"]

keys_router = APIRouter(prefix=f"{API_PREFIX}/api-keys", tags=["api-keys"], responses=ERROR_RESPONSES)


def _created(new: keys.NewKey) -> ApiKeyCreated:
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(new.record).model_dump(), "key": new.plaintext})


@keys_router.get("", response_model=PageRead[ApiKeyRead], summary="List the account's API keys")
async def list_keys(
    session: SessionDep,
    principal: CurrentPrincipal,
    status_filter: Annotated[KeyStatus | None, Query(alias="status")] = None,
) -> Any:
    items = await keys.list_keys(session, tenant_id=principal.tenant_id, status=status_filter)
    return {"items": items, "next_cursor": None}


@keys_router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (the key is in this response only)",
)
async def create_key(body: ApiKeyCreate, session: SessionDep, principal: CurrentPrincipal, actor: CurrentActor) -> Any:
    new = await keys.create_key(
        session,
        actor=actor,
        tenant_id=principal.tenant_id,
        name=body.name,
        description=body.description,
        expires_at=body.expires_at,
        source="api",
    )
    return _created(new)


@keys_router.get("/{key_id}", response_model=ApiKeyRead, summary="Get an API key")
async def get_key(key_id: str, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await keys.get_key(session, key_id=key_id, tenant_id=principal.tenant_id)


@keys_router.delete("/{key_id}", response_model=ApiKeyRead, summary="Revoke an API key (effective at once)")
async def revoke_key(key_id: str, session: SessionDep, principal: CurrentPrincipal, actor: CurrentActor) -> Any:
    key = await keys.get_key(session, key_id=key_id, tenant_id=principal.tenant_id)
    return await keys.revoke_key(session, key=key, actor=actor)


@keys_router.post(
    "/{key_id}/rotate",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Replace a key with a new one; the old one works for the grace period, if any",
)
async def rotate_key(
    key_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    actor: CurrentActor,
    body: ApiKeyRotate | None = None,
) -> Any:
    key = await keys.get_key(session, key_id=key_id, tenant_id=principal.tenant_id)
    grace = timedelta(seconds=body.grace_period_seconds if body else 0)
    return _created(await keys.rotate_key(session, key=key, grace_period=grace, actor=actor))


@keys_router.get("/{key_id}/usage", response_model=KeyUsageRead, summary="Usage of an API key")
async def get_key_usage(
    key_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500, description="How many recent actions")] = 50,
) -> Any:
    key = await keys.get_key(session, key_id=key_id, tenant_id=principal.tenant_id)
    return await key_usage(session, key=key, limit=limit)


account_router = APIRouter(prefix=f"{API_PREFIX}/account", tags=["account"], responses=ERROR_RESPONSES)


@account_router.get("", response_model=AccountRead, summary="The caller's account: tier, limit and use this hour")
async def get_account(session: SessionDep, principal: CurrentPrincipal, runtime: RuntimeDep) -> Any:
    tenant = await get_tenant(session, tenant_id=principal.tenant_id)
    return AccountRead(
        tenant=tenant.name,
        display_name=tenant.display_name,
        tier=tenant.tier,
        hourly_limit=tenant.hourly_limit,
        used_this_hour=await runtime.limiter.current_use(tenant_id=tenant.id),
        suspended=tenant.suspended,
    )
