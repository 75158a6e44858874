"""The account's settings: a tenant's own fields and its alert settings, changed as one.

The top of the core's layers (``[tool.importlinter]`` in pyproject.toml): a tenant update may set alert settings,
which the alerts check (``vibexp.core.alerts.settings``), and the tenants, below the alerts, store and audit
(``vibexp.core.tenants.service.apply_update``). Every adapter changes a tenant here, so none can skip the checks.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from vibexp.core.access import Actor, Caller, CredentialKind, Scope, requires
from vibexp.core.alerts.settings import check_alert_settings
from vibexp.core.errors import InsufficientScope, InvalidInput
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tenant
from vibexp.core.tenants.schemas import TenantUpdate

__all__ = ["ALERT_SETTINGS", "alert_settings_errors", "update_account", "update_alert_settings", "update_tenant"]

#: The fields of a tenant that are its alert settings (README "Alerts"): what Settings → Alerts changes.
ALERT_SETTINGS = frozenset({"alert_webhook_url", "alert_webhook_secret", "working_hours", "auto_revoke_on"})


async def update_tenant(
    session: AsyncSession,
    *,
    tenant: Tenant,
    data: TenantUpdate,
    actor: Actor,
    server_urls: Iterable[str] | None = None,
) -> Tenant:
    """Apply the fields ``data`` sets; a change is audited (``tenant.updated``, the old and new values; for the
    webhook secret only that it changed). ``server_urls``: the addresses an alert webhook may not point at (default:
    ``VIBEXP_PUBLIC_URL`` and ``VIBEXP_SERVER_URLS``)."""
    changes = data.model_dump(exclude_unset=True)
    tenants.check_update(tenant, changes)
    await check_alert_settings(tenant, changes, server_urls)
    return await tenants.apply_update(session, tenant=tenant, changes=changes, actor=actor)


async def update_account(
    session: AsyncSession, *, caller: Caller, data: TenantUpdate, server_urls: Iterable[str] | None = None
) -> Tenant:
    """``update_tenant`` on the caller's own account, audited as ``caller.actor`` (the CLI and the operator, who
    administer the installation; no key reaches this)."""
    tenant = await tenants.get_tenant(session, tenant_id=caller.tenant_id)
    return await update_tenant(session, tenant=tenant, data=data, actor=caller.actor, server_urls=server_urls)


@requires(Scope.alerts_write)
async def update_alert_settings(
    session: AsyncSession, *, caller: Caller, data: TenantUpdate, server_urls: Iterable[str] | None = None
) -> Tenant:
    """Change the caller's account's alert settings (and only those): a person whose role holds ``alerts:write``
    (admins and owners), in the dashboard. Never a key or a grant, whatever its scopes: an account's settings are
    not a key's to change (``vibexp.core.access``: a key reads the account, never writes it), so a leaked key cannot
    point the alerts about itself elsewhere."""
    if caller.credential in (CredentialKind.api_key, CredentialKind.grant):
        raise InsufficientScope(Scope.alerts_write, "Alert settings are changed in the dashboard or with the CLI")
    others = data.model_fields_set - ALERT_SETTINGS
    if others:
        raise InvalidInput(f"not alert settings: {', '.join(sorted(others))}")
    return await update_account(session, caller=caller, data=data, server_urls=server_urls)


#: The alert settings checked together (a webhook URL needs its secret), and which field an error of each belongs to.
_ALERT_GROUPS = (("alert_webhook_url", "alert_webhook_secret"), ("working_hours",), ("auto_revoke_on",))


@requires(Scope.alerts_write)
async def alert_settings_errors(
    session: AsyncSession, *, caller: Caller, data: TenantUpdate, server_urls: Iterable[str] | None = None
) -> dict[str, str]:
    """Every error ``update_alert_settings`` would meet in ``data``, by field, checked group by group so a form can
    show them all at once (the check stops at the first): an empty dict when it would succeed. Stores nothing."""
    tenant = await tenants.get_tenant(session, tenant_id=caller.tenant_id)
    given = data.model_dump(exclude_unset=True)
    errors: dict[str, str] = {}
    for group in _ALERT_GROUPS:
        changes = {field: given[field] for field in group if field in given}
        if not changes:
            continue
        try:
            await check_alert_settings(tenant, changes, server_urls)
        except InvalidInput as exc:
            secret = exc.message.startswith("webhook secret") and "alert_webhook_secret" in changes
            errors["alert_webhook_secret" if secret else group[0]] = exc.message
    return errors
