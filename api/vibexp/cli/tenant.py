"""``vibexp tenant create|update|list``: accounts, their alert settings and their key policy."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from vibexp.cli import parsing
from vibexp.cli.common import STDIN_ARGUMENT
from vibexp.core.tenants.tiers import Tier

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from vibexp.core.config import Settings

__all__ = ["KEY_POLICY_OPTIONS", "cmd_tenant_create", "cmd_tenant_list", "cmd_tenant_update", "register"]

#: ``tenant update``'s key policy options and the ``TenantUpdate`` field each sets.
KEY_POLICY_OPTIONS = {
    "max_key_lifetime_days": "--max-key-lifetime-days",
    "revoke_unused_after_days": "--revoke-unused-after-days",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenant = sub.add_parser("tenant", help="accounts").add_subparsers(dest="tenant_command", required=True)
    t_create = tenant.add_parser("create", help="create a tenant")
    t_create.add_argument("name", metavar="NAME", help="the account's name: lowercase letters, digits and dashes")
    t_create.add_argument(
        "--tier",
        choices=[t.value for t in Tier],
        default=Tier.free.value,
        help="free (1,000 requests/hour, the default), pro (10,000) or enterprise (--rate-limit)",
    )
    t_create.add_argument("--rate-limit", type=int, help="requests per hour (required for enterprise)")
    t_create.add_argument("--display-name", help="the name the dashboard shows (default: NAME)")
    t_create.set_defaults(func=cmd_tenant_create)
    t_update = tenant.add_parser("update", help="change tier, limit, suspension, alerts or key policy")
    t_update.add_argument("name", metavar="NAME", help="the tenant to change")
    t_update.add_argument("--tier", choices=[t.value for t in Tier], help="a new tier")
    t_update.add_argument("--rate-limit", type=int, help="requests per hour (enterprise)")
    t_update.add_argument(
        "--suspend", dest="suspended", action="store_const", const=True, help="refuse every key of the account"
    )
    t_update.add_argument(
        "--unsuspend", dest="suspended", action="store_const", const=False, help="let its keys work again"
    )
    t_update.add_argument("--alert-webhook-url", metavar="URL", help="POST each alert here (http/https)")
    t_update.add_argument(
        "--alert-webhook-secret", metavar="SECRET", help="signs deliveries, 16-200 characters; '-' reads it from stdin"
    )
    t_update.add_argument("--clear-alert-webhook", action="store_true", help="stop delivering alerts to a webhook")
    t_update.add_argument(
        "--working-hours", metavar="HOURS", help="e.g. 'Mon-Fri 08:00-19:00 Europe/Berlin'; 'none' clears them"
    )
    t_update.add_argument(
        "--auto-revoke-on",
        metavar="KIND",
        action="append",
        default=[],
        help=(
            "revoke the key when an alert of this kind opens (repeatable; any kind but failed_auth, which anyone who "
            "knows the key's display prefix can raise); 'none' clears the kinds"
        ),
    )
    t_update.add_argument(
        "--max-key-lifetime-days",
        metavar="DAYS",
        help="keys expire within this many days (1-3650; the default expiry of a new key); 'none' clears it",
    )
    t_update.add_argument(
        "--revoke-unused-after-days",
        metavar="DAYS",
        help="the server revokes keys unused for this many days (1-3650); 'none' clears it",
    )
    t_update.set_defaults(func=cmd_tenant_update, suspended=None)
    t_list = tenant.add_parser("list", help="list tenants")
    t_list.set_defaults(func=cmd_tenant_list)


def cmd_tenant_create(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import in_session
    from vibexp.core.access import Actor
    from vibexp.core.tenants import usecases as accounts
    from vibexp.core.tenants.schemas import TenantCreate

    if args.tier == Tier.enterprise.value and args.rate_limit is None:  # the service's rule, named by its flag
        raise ValueError("--rate-limit: the enterprise tier needs a custom rate limit (requests per hour)")
    data = TenantCreate(
        name=args.name,
        display_name=args.display_name or "",
        tier=Tier(args.tier),
        rate_limit_per_hour=args.rate_limit,
    )

    async def work(session: AsyncSession) -> str:
        tenant = await accounts.create_account(session, data=data, actor=Actor.cli())
        return f"created tenant {tenant.name} (tier {tenant.tier}, {tenant.hourly_limit} requests/hour)"

    print(in_session(settings, work))
    return 0


def _alert_changes(args: argparse.Namespace) -> dict[str, object]:
    """The alert settings ``tenant update`` was given (``none`` clears working hours / auto-revoke kinds)."""
    changes: dict[str, object] = {}
    if args.clear_alert_webhook:
        if args.alert_webhook_url is not None or args.alert_webhook_secret is not None:
            raise ValueError("--clear-alert-webhook cannot be combined with --alert-webhook-url/--alert-webhook-secret")
        changes["alert_webhook_url"] = changes["alert_webhook_secret"] = None
    if args.alert_webhook_url is not None:
        changes["alert_webhook_url"] = args.alert_webhook_url
    if args.alert_webhook_secret is not None:
        # "-": read it from stdin, so it stays out of the shell history and the process list.
        given: str = args.alert_webhook_secret
        changes["alert_webhook_secret"] = sys.stdin.readline().strip() if given == STDIN_ARGUMENT else given
    if args.working_hours is not None:
        changes["working_hours"] = None if args.working_hours.strip().lower() == "none" else args.working_hours
    if args.auto_revoke_on:
        kinds = [kind for kind in args.auto_revoke_on if kind.lower() != "none"]
        if kinds and len(kinds) != len(args.auto_revoke_on):
            raise ValueError("--auto-revoke-on none clears the kinds; do not combine it with a kind")
        changes["auto_revoke_on"] = kinds
    return changes


def _alert_summary(tenant: Any) -> str:
    webhook = tenant.alert_webhook_url or "none"
    kinds = ", ".join(tenant.auto_revoke_on or []) or "none"
    return f"alerts: webhook {webhook}, working hours {tenant.working_hours or 'none'}, auto-revoke on {kinds}"


def _key_policy_changes(args: argparse.Namespace) -> dict[str, object]:
    """The key policy ``tenant update`` was given (``none`` clears a value)."""
    return {
        field: parsing.policy_days(text, option=option, field=field)
        for field, option in KEY_POLICY_OPTIONS.items()
        if (text := getattr(args, field)) is not None
    }


def _key_policy_summary(tenant: Any) -> str:
    lifetime = f"{tenant.max_key_lifetime_days} days" if tenant.max_key_lifetime_days else parsing.NONE
    unused = f"{tenant.revoke_unused_after_days} days" if tenant.revoke_unused_after_days else parsing.NONE
    return f"key policy: maximum key lifetime {lifetime}, revoke unused keys after {unused}"


def cmd_tenant_update(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import in_session
    from vibexp.core import account
    from vibexp.core.access import Caller
    from vibexp.core.errors import InvalidInput
    from vibexp.core.tenants import usecases as accounts
    from vibexp.core.tenants.schemas import TenantUpdate

    changes: dict[str, object] = {}
    if args.tier:
        changes["tier"] = Tier(args.tier)
    if args.rate_limit is not None:
        changes["rate_limit_per_hour"] = args.rate_limit
    if args.suspended is not None:
        changes["suspended"] = args.suspended
    alert_changes = _alert_changes(args)
    policy_changes = _key_policy_changes(args)
    data = TenantUpdate.model_validate({**changes, **alert_changes, **policy_changes})

    async def work(session: AsyncSession) -> list[str]:
        tenant = await accounts.account_named(session, name=args.name)
        try:
            tenant = await account.update_account(session, caller=Caller.cli(tenant.id), data=data)
        except InvalidInput as exc:  # a bad value given on the command line: exit 2, like argparse's own errors
            raise ValueError(exc.message) from None
        state = "suspended" if tenant.suspended else "active"
        lines = [f"tenant {tenant.name}: tier {tenant.tier}, {tenant.hourly_limit} requests/hour, {state}"]
        if alert_changes:
            lines.append(_alert_summary(tenant))
        if policy_changes or tenant.max_key_lifetime_days or tenant.revoke_unused_after_days:
            lines.append(_key_policy_summary(tenant))
        return lines

    for line in in_session(settings, work):
        print(line)
    return 0


def cmd_tenant_list(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import in_session
    from vibexp.core.tenants import usecases as accounts

    async def work(session: AsyncSession) -> list[str]:
        return [
            f"{t.name}\t{t.tier}\t{t.hourly_limit}\t{'suspended' if t.suspended else 'active'}"
            for t in await accounts.list_accounts(session)
        ]

    lines = in_session(settings, work)  # the header only once the database answered
    print("NAME\tTIER\tLIMIT/HOUR\tSTATUS")
    for line in lines:
        print(line)
    return 0
