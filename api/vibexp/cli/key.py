"""``vibexp key create|list|revoke|delete|rotate``: a tenant's API keys (the plaintext of a new key alone on
stdout, every message on stderr)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from vibexp.cli import parsing
from vibexp.cli.common import err

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from vibexp.core.config import Settings
    from vibexp.core.keys.models import ApiKey
    from vibexp.core.keys.usecases import KeyPermissions, NewKey

__all__ = [
    "cmd_key_create",
    "cmd_key_delete",
    "cmd_key_list",
    "cmd_key_revoke",
    "cmd_key_rotate",
    "register",
]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    key = sub.add_parser("key", help="API keys").add_subparsers(dest="key_command", required=True)
    k_create = key.add_parser("create", help="create a key (printed once, alone on stdout)")
    k_create.add_argument("--tenant", required=True, metavar="NAME", help="the tenant the key belongs to")
    k_create.add_argument("--name", required=True, help="what the key is for, e.g. 'Work Laptop - Cursor'")
    k_create.add_argument("--description", default="", help="a longer note (optional)")
    k_create.add_argument(
        "--owner",
        metavar="EMAIL",
        help="the member the key belongs to (a personal key, never wider than their role); omitted: a service key",
    )
    _add_permission_arguments(k_create, rotating=False)
    k_create.set_defaults(func=cmd_key_create)
    k_list = key.add_parser("list", help="list a tenant's keys")
    k_list.add_argument("--tenant", required=True, metavar="NAME", help="the tenant whose keys to list")
    k_list.set_defaults(func=cmd_key_list)
    k_revoke = key.add_parser("revoke", help="revoke a key at once")
    k_revoke.add_argument("id", metavar="ID", help="the key's id, as `key list` shows it")
    k_revoke.set_defaults(func=cmd_key_revoke)
    k_delete = key.add_parser("delete", help="delete a revoked key from the lists (its usage and audit history stay)")
    k_delete.add_argument("id", help="the key's id (vibexp key list); revoke an active key first")
    k_delete.set_defaults(func=cmd_key_delete)
    k_rotate = key.add_parser("rotate", help="replace a key; the new key is printed alone on stdout")
    k_rotate.add_argument("id", metavar="ID", help="the key's id, as `key list` shows it")
    k_rotate.add_argument("--grace-period", type=int, default=0, help="seconds the old key keeps working")
    _add_permission_arguments(k_rotate, rotating=True)
    k_rotate.set_defaults(func=cmd_key_rotate)


def _add_permission_arguments(parser: argparse.ArgumentParser, *, rotating: bool) -> None:
    """``--scope``, ``--allow-cidr``, ``--expires-in`` of ``key create`` and (omitted: the old key's) ``key rotate``."""
    durations = ", ".join(parsing.DURATION_UNITS)
    parser.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="what the key may do (repeatable, or comma-separated), e.g. read, prompts:write, *; omitted: "
        + ("the old key's" if rotating else "* (full access)"),
    )
    parser.add_argument(
        "--allow-cidr",
        action="append",
        metavar="CIDR",
        help="a network the key may be used from (repeatable), e.g. 203.0.113.0/24, 2001:db8::/32, or any; omitted: "
        + ("the old key's" if rotating else "any"),
    )
    parser.add_argument(
        "--expires-in",
        metavar="DURATION",
        help=f"a whole number of {durations} from now, e.g. 90d, 12h, 2w; omitted: "
        + (
            "the old key's expiry (capped by the tenant's maximum key lifetime)"
            if rotating
            else "the tenant's maximum key lifetime, else never"
        ),
    )
    parser.add_argument(
        "--confirm-destructive",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="destructive MCP tools (delete_*, overwriting update_*/save_artifact) ask the person first, by form "
        "elicitation; omitted: " + ("as the old key" if rotating else "no"),
    )


def _key_permissions(args: argparse.Namespace) -> KeyPermissions:
    """``--scope``/``--allow-cidr``/``--expires-in`` as the service takes them (``None``: not given), checked before
    any database work. The expiry is counted from now; the service applies the tenant's maximum lifetime."""
    from vibexp.core.clock import utcnow
    from vibexp.core.keys.usecases import KeyPermissions

    expires_in = parsing.duration(args.expires_in) if args.expires_in is not None else None
    return KeyPermissions(
        scopes=parsing.key_scopes(args.scope),
        allowed_cidrs=parsing.key_networks(args.allow_cidr),
        expires_at=utcnow() + expires_in if expires_in is not None else None,
        confirm_destructive=args.confirm_destructive,
    )


async def _key_by_id(session: AsyncSession, key_id: str) -> ApiKey:
    """A key by the id ``key list`` shows; an unknown one is bad input (exit 2) that names the id."""
    from vibexp.core.access import Caller
    from vibexp.core.errors import NotFound
    from vibexp.core.keys import usecases as keys

    try:
        tenant_id = await keys.account_of_key(session, key_id=key_id)  # the CLI names a key by its id alone
        return await keys.get(session, caller=Caller.cli(tenant_id), key_id=key_id)
    except NotFound:
        raise ValueError(f"no API key with id {key_id!r} (`vibexp key list --tenant NAME` shows the ids)") from None


def _scopes_text(key: ApiKey) -> str:
    return ",".join(key.scopes)


def _networks_text(key: ApiKey) -> str:
    return ",".join(key.allowed_cidrs) or parsing.ANYWHERE


def _expiry_text(key: ApiKey) -> str:
    return key.expires_at.isoformat(timespec="seconds") if key.expires_at else "never"


def _permissions_text(key: ApiKey) -> str:
    networks = ",".join(key.allowed_cidrs) or "anywhere"
    confirming = ", destructive MCP tools ask first" if key.confirm_destructive else ""
    return f"scopes {_scopes_text(key)}, usable from {networks}, expiring {_expiry_text(key)}{confirming}"


def cmd_key_create(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import in_session
    from vibexp.core.access import Caller
    from vibexp.core.errors import InvalidInput
    from vibexp.core.keys import usecases as keys
    from vibexp.core.tenants import usecases as accounts

    permissions = _key_permissions(args)

    async def work(session: AsyncSession) -> NewKey:
        tenant = await accounts.account_named(session, name=args.tenant)
        try:  # the CLI acts for the whole account: no issuing key to stay within (issuer=None)
            return await keys.create(
                session,
                caller=Caller.cli(tenant.id),
                name=args.name,
                description=args.description,
                source="cli",
                permissions=permissions,
                owner_email=args.owner,
            )
        except InvalidInput as exc:  # an expiry the account's policy refuses: a bad option value, exit 2
            raise ValueError(exc.message) from None

    new = in_session(settings, work)
    owner = f", owned by {args.owner}" if args.owner else " (a service key)"
    err(f"created API key {new.record.id} ({new.record.prefix}...) for tenant {args.tenant}{owner}.")
    err(f"It has {_permissions_text(new.record)}.")
    err("Copy it now: it is shown only once.")
    print(new.plaintext)
    return 0


def cmd_key_list(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import in_session
    from vibexp.core.access import Caller
    from vibexp.core.keys import usecases as keys
    from vibexp.core.tenants import usecases as accounts

    async def work(session: AsyncSession) -> list[str]:
        tenant = await accounts.account_named(session, name=args.tenant)
        rows = []
        for k in await keys.list_keys(session, caller=Caller.cli(tenant.id)):
            last = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never"
            created = k.created_at.isoformat(timespec="seconds")
            # The permission columns come after NAME: scripts read the first seven by position (README: $7).
            rows.append(
                f"{k.id}\t{k.prefix}...\t{k.status}\t{created}\t{last}\t{k.request_count}\t{k.name}"
                f"\t{_scopes_text(k)}\t{_networks_text(k)}\t{_expiry_text(k)}"
                f"\t{k.owner['email'] if k.owner else 'service'}"
            )
        return rows

    rows = in_session(settings, work)
    print("ID\tPREFIX\tSTATUS\tCREATED\tLAST USED\tREQUESTS\tNAME\tSCOPES\tALLOWED FROM\tEXPIRES\tOWNER")
    for row in rows:
        print(row)
    return 0


def cmd_key_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.cli.database import in_session
    from vibexp.core.access import Caller
    from vibexp.core.keys import usecases as keys
    from vibexp.core.keys.models import KeyStatus

    async def work(session: AsyncSession) -> str:
        key = await _key_by_id(session, args.id)
        if key.status == KeyStatus.revoked.value:  # revoking again changes nothing: say so
            when = f" at {key.revoked_at.isoformat(timespec='seconds')}" if key.revoked_at else ""
            return f"API key {key.id} ({key.prefix}...) was already revoked{when}; nothing changed"
        key = await keys.revoke(session, caller=Caller.cli(key.tenant_id), key_id=key.id)
        return f"revoked API key {key.id} ({key.prefix}...)"

    err(in_session(settings, work))
    return 0


def cmd_key_delete(args: argparse.Namespace, settings: Settings) -> int:
    """Delete a revoked key from the lists (its usage and audit history stay); an active key is refused, exit 2."""
    from vibexp.cli.database import in_session
    from vibexp.core.access import Caller
    from vibexp.core.errors import InvalidInput, NotFound
    from vibexp.core.keys import usecases as keys

    async def work(session: AsyncSession) -> str:
        try:
            caller = Caller.cli(await keys.account_of_key(session, key_id=args.id))
            key = await keys.get(session, caller=caller, key_id=args.id)
            await keys.delete(session, caller=caller, key_id=key.id)
        except NotFound:
            raise ValueError(f"no API key with id {args.id!r} (see: vibexp key list --tenant NAME)") from None
        except InvalidInput:  # not revoked: nothing is deleted
            raise ValueError(
                f"key {args.id} is {key.status}: revoke it first (vibexp key revoke {args.id}), then delete it"
            ) from None
        return f"deleted API key {key.id} ({key.prefix}...): it is off the lists; its usage and audit history stay"

    err(in_session(settings, work))
    return 0


def cmd_key_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    from vibexp.cli.database import in_session
    from vibexp.core.access import Caller
    from vibexp.core.errors import Conflict, InvalidInput
    from vibexp.core.keys import usecases as keys

    permissions = _key_permissions(args)

    async def work(session: AsyncSession) -> NewKey:
        key = await _key_by_id(session, args.id)
        grace = timedelta(seconds=args.grace_period)
        try:  # omitted scopes and networks are the old key's (the service's rule, as over REST)
            return await keys.rotate(
                session, caller=Caller.cli(key.tenant_id), key_id=key.id, grace_period=grace, permissions=permissions
            )
        except (InvalidInput, Conflict) as exc:  # a key that cannot be rotated (or already was), a refused expiry
            raise ValueError(exc.message) from None

    new = in_session(settings, work)
    when = f"in {args.grace_period} s" if args.grace_period else "now"
    err(f"rotated {args.id}: new key {new.record.id} ({new.record.prefix}...); the old key stops working {when}.")
    err(f"The new key has {_permissions_text(new.record)}.")
    err("Copy the new key now: it is shown only once.")
    print(new.plaintext)
    return 0
