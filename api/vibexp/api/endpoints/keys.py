"""API key management with a key (``keys:read`` / ``keys:write``, checked in ``vibexp.core.keys.usecases``), and
the caller's account (``account:read``, checked in ``vibexp.core.tenants.usecases``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from vibexp.api.deps import CurrentCaller, RuntimeDep, SessionDep
from vibexp.api.endpoints import API_PREFIX
from vibexp.api.errors import ERROR_RESPONSES
from vibexp.api.schemas import AccountRead, PageRead
from vibexp.core.keys import usecases
from vibexp.core.keys.models import KeyStatus
from vibexp.core.keys.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    ApiKeyRotate,
    ApiKeyUpdate,
    KeyUsageRead,
)
from vibexp.core.keys.usecases import KeyPermissions, NewKey
from vibexp.core.tenants import usecases as account
from vibexp.core.usage import usecases as usage

__all__ = ["account_router", "keys_router"]

#: The ``?owner=`` filter's description (key list, usage, alerts).
OWNER_FILTER = (
    "Only keys of this owner: me, service (keys of no person), an e-mail or a user id. A member's or viewer's "
    "answer is always their own keys"
)

keys_router = APIRouter(prefix=f"{API_PREFIX}/api-keys", tags=["api-keys"], responses=ERROR_RESPONSES)


def _created(new: NewKey) -> ApiKeyCreated:
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(new.record).model_dump(), "key": new.plaintext})


@keys_router.get("", response_model=PageRead[ApiKeyRead], summary="List the account's API keys")
async def list_keys(
    session: SessionDep,
    caller: CurrentCaller,
    status_filter: Annotated[KeyStatus | None, Query(alias="status")] = None,
    owner: Annotated[str | None, Query(max_length=254, description=OWNER_FILTER)] = None,
) -> Any:
    items = await usecases.list_keys(session, caller=caller, status=status_filter, owner=owner)
    return {"items": items, "next_cursor": None}


@keys_router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (the key is in this response only)",
)
async def create_key(body: ApiKeyCreate, session: SessionDep, caller: CurrentCaller) -> Any:
    permissions = KeyPermissions(
        scopes=body.scopes,
        allowed_cidrs=body.allowed_cidrs,
        expires_at=body.expires_at,
        confirm_destructive=body.confirm_destructive,
    )
    new = await usecases.create(
        session,
        caller=caller,
        name=body.name,
        description=body.description,
        permissions=permissions,
        service_key=body.service,
    )
    return _created(new)


@keys_router.get("/{key_id}", response_model=ApiKeyRead, summary="Get an API key")
async def get_key(key_id: str, session: SessionDep, caller: CurrentCaller) -> Any:
    return await usecases.get(session, caller=caller, key_id=key_id)


@keys_router.patch(
    "/{key_id}",
    response_model=ApiKeyRead,
    summary="Change an API key's name, description or confirm_destructive",
    description="Only the fields sent change. Turning `confirm_destructive` on or off is audited "
    "(`key.permissions_changed`) and applies to the key's very next MCP request.",
)
async def update_key(key_id: str, body: ApiKeyUpdate, session: SessionDep, caller: CurrentCaller) -> Any:
    return await usecases.update(
        session,
        caller=caller,
        key_id=key_id,
        name=body.name,
        description=body.description,
        confirm_destructive=body.confirm_destructive,
    )


@keys_router.delete(
    "/{key_id}",
    response_model=ApiKeyRead,
    summary="Revoke an API key (effective at once); a revoked key: delete it from the list",
    description="A key that is not revoked is revoked at once and stays listed, as revoked. A revoked key is "
    "deleted: it leaves the list (`deleted_at` set in this answer), its usage and audit history stay. A deleted "
    "key, like another account's, is 404.",
)
async def revoke_key(key_id: str, session: SessionDep, caller: CurrentCaller) -> Any:
    return await usecases.revoke_or_delete(session, caller=caller, key_id=key_id)


@keys_router.post(
    "/{key_id}/rotate",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Replace a key with a new one; the old one works for the grace period, if any",
    responses={
        409: ERROR_RESPONSES[404]
        | {"description": "The key was already rotated (code key_already_rotated): rotate its successor instead"}
    },
)
async def rotate_key(
    key_id: str,
    session: SessionDep,
    caller: CurrentCaller,
    body: ApiKeyRotate | None = None,
) -> Any:
    body = body or ApiKeyRotate()
    permissions = KeyPermissions(
        scopes=body.scopes,
        allowed_cidrs=body.allowed_cidrs,
        expires_at=body.expires_at,
        confirm_destructive=body.confirm_destructive,
    )
    grace = timedelta(seconds=body.grace_period_seconds)
    new = await usecases.rotate(session, caller=caller, key_id=key_id, grace_period=grace, permissions=permissions)
    return _created(new)


@keys_router.get("/{key_id}/usage", response_model=KeyUsageRead, summary="Usage of an API key")
async def get_key_usage(
    key_id: str,
    session: SessionDep,
    caller: CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=500, description="How many recent actions")] = 50,
) -> Any:
    return await usage.of_key(session, caller=caller, key_id=key_id, limit=limit)


account_router = APIRouter(prefix=f"{API_PREFIX}/account", tags=["account"], responses=ERROR_RESPONSES)


@account_router.get("", response_model=AccountRead, summary="The caller's account: tier, limit and use this hour")
async def get_account(session: SessionDep, caller: CurrentCaller, runtime: RuntimeDep) -> Any:
    tenant = await account.own_account(session, caller=caller)
    return AccountRead(
        tenant=tenant.name,
        display_name=tenant.display_name,
        tier=tenant.tier,
        hourly_limit=tenant.hourly_limit,
        used_this_hour=await runtime.limiter.current_use(tenant_id=tenant.id),
        suspended=tenant.suspended,
    )
