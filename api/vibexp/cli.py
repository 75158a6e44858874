"""The ``vibexp`` command: serve, operator, database, tenants, keys and users.

``vibexp key create`` writes the key alone on stdout (one line) so it can be captured by a script; every other
message goes to stderr. Option values beyond plain numbers (scopes, CIDRs, durations, policy days) are parsed by
``vibexp.cli_parsing``; a refused value is one ``error:`` line and exit 2, as a refused argument is.

Exit codes: 0 done; 2 a user error (a refused argument or value, an unknown tenant or key id, a name already taken,
a missing SQLite file); 1 the database cannot be reached (a server down or a wrong address: the same command may
work later) and, for ``scan``, a key found. Every failure is one ``error:`` line on stderr, never a traceback.
Only ``db upgrade`` and ``serve`` create the embedded SQLite file: any other command run where it does not exist
says where it looked and how to point it elsewhere, instead of creating an empty database there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import importlib.metadata
import os
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from vibexp import cli_parsing
from vibexp.api.settings import ApiSettings, get_api_settings
from vibexp.core.account import update_tenant
from vibexp.core.alerts.leaks import revoke_leaked
from vibexp.core.audit.service import Actor
from vibexp.core.clock import utcnow
from vibexp.core.config import DEFAULT_DATABASE_URL, Settings
from vibexp.core.content.usecases import export_lines, import_lines
from vibexp.core.db import Database, session_scope
from vibexp.core.errors import Conflict, InvalidInput, NotFound, VibeXPError
from vibexp.core.keys import service as keys
from vibexp.core.keys.models import ApiKey, KeyStatus
from vibexp.core.keys.report import ReportError, report_findings
from vibexp.core.keys.scan import ScanError, ScanStats, scan_git, scan_paths
from vibexp.core.keys.scopes import FullAccess
from vibexp.core.migrate import upgrade
from vibexp.core.tenants import service as tenants
from vibexp.core.tenants.models import Tier
from vibexp.core.tenants.schemas import TenantCreate, TenantUpdate
from vibexp.core.users.service import create_user

__all__ = ["main"]

T = TypeVar("T")

#: Read by prometheus_client at import, in each worker (vibexp.api.metrics reads the same name).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: An option value that means "read it from stdin" (secrets kept out of the shell history and the process list).
STDIN_ARGUMENT = "-"


def _err(message: str) -> None:
    print(message, file=sys.stderr)


class DatabaseUnreachable(Exception):
    """The configured database cannot be reached or opened (exit 1: not the command's fault, it may work later)."""


#: The option (or argument) of each command that sets a schema field, so a refused value names what the user typed.
#: Fields not listed are named ``--field-name``.
FIELD_OPTIONS = {
    "name": "NAME",
    "rate_limit_per_hour": "--rate-limit",
    "suspended": "--suspend/--unsuspend",
    "password": "the password",
}


def _validation_messages(exc: ValidationError) -> list[str]:
    """One line per problem, naming the environment variable (settings) or the option (CLI input) at fault."""
    lines = []
    settings_error = exc.title in (Settings.__name__, ApiSettings.__name__)
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        if field and settings_error:
            field = f"VIBEXP_{field.upper()}"
        elif field:
            top = str(error["loc"][0])
            field = FIELD_OPTIONS.get(top, "--" + top.replace("_", "-"))
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"error: {field}: {message}" if field else f"error: {message}")
    return lines


def _database_description(url: str) -> str:
    """The database URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def _require_database(settings: Settings) -> None:
    """Refuse to work on an embedded SQLite file that does not exist (only ``db upgrade`` and ``serve`` create it):
    a command run in the wrong folder would otherwise create and migrate an empty database there, and then report
    that the tenant it was given does not exist."""
    if not settings.is_sqlite:
        return
    url = make_url(settings.database_url)
    if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
        return
    path = Path(url.database)
    if path.exists():
        return
    given = (
        "the default VIBEXP_DATABASE_URL, ./vibexp.db in the current folder"
        if settings.database_url == DEFAULT_DATABASE_URL
        else f"VIBEXP_DATABASE_URL={settings.database_url}"
    )
    raise ValueError(
        f"no database at {path.absolute()} ({given}): run this command in the folder `vibexp serve` runs in, or "
        "point it at your database with VIBEXP_DATABASE_URL (e.g. sqlite+aiosqlite:////abs/path/vibexp.db or "
        "postgresql+asyncpg://user:password@host/db), or create one here with `vibexp db upgrade`"
    )


def _is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or opened (as opposed to a failed statement)."""
    if isinstance(exc, DBAPIError):
        return exc.statement is None  # raised while connecting: no statement was sent
    if isinstance(exc, BrokenPipeError):  # stdout closed (``vibexp export | head``): not the database
        return False
    return isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror))


@contextlib.contextmanager
def _database_errors(settings: Settings) -> Iterator[None]:
    """Turn a database that cannot be reached into one ``error:`` line (``DatabaseUnreachable``), not a traceback."""
    try:
        yield
    except Exception as exc:
        if not _is_connection_error(exc):
            raise
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise DatabaseUnreachable(
            f"cannot reach the database {_database_description(settings.database_url)}: {reason} (check "
            "VIBEXP_DATABASE_URL, and that the database server is running and reachable from here)"
        ) from None


def _migrated(settings: Settings) -> None:
    """Check that the embedded SQLite file exists and migrate it (before the event loop: alembic runs its own)."""
    _require_database(settings)
    if settings.should_auto_migrate:
        with _database_errors(settings):
            upgrade(settings.database_url)


def _run_database_work(settings: Settings, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(work())`` on the configured database, its connection failures one ``error:`` line."""
    _migrated(settings)
    with _database_errors(settings):
        return asyncio.run(work())


def _in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one unit of work against the configured database (migrating the embedded SQLite file first)."""

    async def run() -> T:
        database = Database.from_settings(settings)
        try:
            async with session_scope(database.session_factory) as session:
                return await work(session)
        finally:
            await database.dispose()

    return _run_database_work(settings, run)


def serve_log_config(level: str) -> dict[str, object]:
    """One plain line per record on stderr, for uvicorn's loggers and everyone else's alike.

    Configuring the root logger first also matters: the MCP SDK calls ``logging.basicConfig`` with a Rich handler,
    which wraps lines at the terminal width and so splits records in a log collector; with a root handler in place
    its call does nothing.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        # uvicorn's access log prints query strings, where a careless client may put its key (issue 12).
        "filters": {"redact": {"()": "vibexp.api.access_log.RedactQueryString"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
        "loggers": {"uvicorn.access": {"filters": ["redact"]}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }


#: Seconds an idle HTTP keep-alive connection stays open. Longer than every client's and proxy's own idle timeout
#: (httpx 5 s, ingress-nginx's upstream keep-alive 60 s, AWS ALB 60 s), so the side that reuses a connection is the
#: side that retires it: a server closing first races the next request and resets it (uvicorn's default is 5 s).
KEEP_ALIVE_SECONDS = 75


# -- commands ----------------------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import os

    import uvicorn

    # The app (made by uvicorn's factory call) prints links with this address, e.g. the first-run setup link.
    if "VIBEXP_PUBLIC_URL" not in os.environ:
        wildcard = args.host in ("0.0.0.0", "::")  # noqa: S104 - recognising it, not binding it
        host = "127.0.0.1" if wildcard else f"[{args.host}]" if ":" in args.host else args.host
        os.environ["VIBEXP_PUBLIC_URL"] = f"http://{host}:{args.port}"
        get_api_settings.cache_clear()

    with multiprocess_metrics_dir(args.workers):
        uvicorn.run(
            "vibexp.api.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=serve_log_config(settings.log_level),
            log_level=settings.log_level,
            # Exactly one layer decides the client address: VibeXP's (VIBEXP_TRUSTED_PROXIES). uvicorn's own proxy
            # handling would trust X-Forwarded-For from loopback (FORWARDED_ALLOW_IPS) and rewrite the peer.
            proxy_headers=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=10,
        )
    return 0


@contextlib.contextmanager
def multiprocess_metrics_dir(workers: int) -> Iterator[None]:
    """Prometheus multiprocess mode for several workers: each writes its samples to files in one directory and any
    worker's ``/metrics`` answers for all of them.

    ``PROMETHEUS_MULTIPROC_DIR`` (set by the operator of the process, e.g. the chart's emptyDir) is used if given
    and emptied of the previous run's files first (stale files would add a dead run's counts); else a private
    directory is made and removed at exit. One worker needs none: its registry is in memory.
    """
    if workers <= 1:
        yield
        return
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield
        return
    with tempfile.TemporaryDirectory(prefix="vibexp-metrics-") as tmp:
        os.environ[MULTIPROC_ENV] = tmp  # inherited by the workers uvicorn spawns
        try:
            yield
        finally:
            os.environ.pop(MULTIPROC_ENV, None)


def cmd_operator(args: argparse.Namespace, settings: Settings) -> int:
    from vibexp.operator.main import run_operator

    _require_database(settings)

    return run_operator(namespaces=args.namespace, all_namespaces=not args.namespace, settings=settings)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    with _database_errors(settings):
        upgrade(settings.database_url, args.revision)
    _err(f"database at revision {args.revision}")
    return 0


def cmd_tenant_create(args: argparse.Namespace, settings: Settings) -> int:
    if args.tier == Tier.enterprise.value and args.rate_limit is None:  # the service's rule, named by its flag
        raise ValueError("--rate-limit: the enterprise tier needs a custom rate limit (requests per hour)")
    data = TenantCreate(
        name=args.name,
        display_name=args.display_name or "",
        tier=Tier(args.tier),
        rate_limit_per_hour=args.rate_limit,
    )

    async def work(session: AsyncSession) -> str:
        tenant = await tenants.create_tenant(session, data=data)
        return f"created tenant {tenant.name} (tier {tenant.tier}, {tenant.hourly_limit} requests/hour)"

    print(_in_session(settings, work))
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


#: ``tenant update``'s key policy options and the ``TenantUpdate`` field each sets.
KEY_POLICY_OPTIONS = {
    "max_key_lifetime_days": "--max-key-lifetime-days",
    "revoke_unused_after_days": "--revoke-unused-after-days",
}


def _key_policy_changes(args: argparse.Namespace) -> dict[str, object]:
    """The key policy ``tenant update`` was given (``none`` clears a value)."""
    return {
        field: cli_parsing.policy_days(text, option=option, field=field)
        for field, option in KEY_POLICY_OPTIONS.items()
        if (text := getattr(args, field)) is not None
    }


def _key_policy_summary(tenant: Any) -> str:
    lifetime = f"{tenant.max_key_lifetime_days} days" if tenant.max_key_lifetime_days else cli_parsing.NONE
    unused = f"{tenant.revoke_unused_after_days} days" if tenant.revoke_unused_after_days else cli_parsing.NONE
    return f"key policy: maximum key lifetime {lifetime}, revoke unused keys after {unused}"


def cmd_tenant_update(args: argparse.Namespace, settings: Settings) -> int:
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
        tenant = await tenants.get_tenant_by_name(session, name=args.name)
        try:
            tenant = await update_tenant(session, tenant=tenant, data=data, actor=Actor.cli())
        except InvalidInput as exc:  # a bad value given on the command line: exit 2, like argparse's own errors
            raise ValueError(exc.message) from None
        state = "suspended" if tenant.suspended else "active"
        lines = [f"tenant {tenant.name}: tier {tenant.tier}, {tenant.hourly_limit} requests/hour, {state}"]
        if alert_changes:
            lines.append(_alert_summary(tenant))
        if policy_changes or tenant.max_key_lifetime_days or tenant.revoke_unused_after_days:
            lines.append(_key_policy_summary(tenant))
        return lines

    for line in _in_session(settings, work):
        print(line)
    return 0


def cmd_tenant_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> list[str]:
        return [
            f"{t.name}\t{t.tier}\t{t.hourly_limit}\t{'suspended' if t.suspended else 'active'}"
            for t in await tenants.list_tenants(session)
        ]

    lines = _in_session(settings, work)  # the header only once the database answered
    print("NAME\tTIER\tLIMIT/HOUR\tSTATUS")
    for line in lines:
        print(line)
    return 0


def _key_permissions(args: argparse.Namespace) -> keys.KeyPermissions:
    """``--scope``/``--allow-cidr``/``--expires-in`` as the service takes them (``None``: not given), checked before
    any database work. The expiry is counted from now; the service applies the tenant's maximum lifetime."""
    expires_in = cli_parsing.duration(args.expires_in) if args.expires_in is not None else None
    return keys.KeyPermissions(
        scopes=cli_parsing.key_scopes(args.scope),
        allowed_cidrs=cli_parsing.key_networks(args.allow_cidr),
        expires_at=utcnow() + expires_in if expires_in is not None else None,
    )


async def _key_by_id(session: AsyncSession, key_id: str) -> ApiKey:
    """A key by the id ``key list`` shows; an unknown one is bad input (exit 2) that names the id."""
    try:
        return await keys.get_key(session, key_id=key_id)
    except NotFound:
        raise ValueError(f"no API key with id {key_id!r} (`vibexp key list --tenant NAME` shows the ids)") from None


def _scopes_text(key: ApiKey) -> str:
    return ",".join(key.scopes)


def _networks_text(key: ApiKey) -> str:
    return ",".join(key.allowed_cidrs) or cli_parsing.ANYWHERE


def _expiry_text(key: ApiKey) -> str:
    return key.expires_at.isoformat(timespec="seconds") if key.expires_at else "never"


def _permissions_text(key: ApiKey) -> str:
    networks = ",".join(key.allowed_cidrs) or "anywhere"
    return f"scopes {_scopes_text(key)}, usable from {networks}, expiring {_expiry_text(key)}"


def cmd_key_create(args: argparse.Namespace, settings: Settings) -> int:
    permissions = _key_permissions(args)

    async def work(session: AsyncSession) -> keys.NewKey:
        tenant = await tenants.get_tenant_by_name(session, name=args.tenant)
        try:  # the CLI acts for the whole account: no issuing key to stay within (issuer=None)
            return await keys.create_key(
                session,
                tenant_id=tenant.id,
                name=args.name,
                description=args.description,
                source="cli",
                actor=Actor.cli(),
                permissions=permissions,
            )
        except InvalidInput as exc:  # an expiry the account's policy refuses: a bad option value, exit 2
            raise ValueError(exc.message) from None

    new = _in_session(settings, work)
    _err(f"created API key {new.record.id} ({new.record.prefix}...) for tenant {args.tenant}.")
    _err(f"It has {_permissions_text(new.record)}.")
    _err("Copy it now: it is shown only once.")
    print(new.plaintext)
    return 0


def cmd_key_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> list[str]:
        tenant = await tenants.get_tenant_by_name(session, name=args.tenant)
        rows = []
        for k in await keys.list_keys(session, tenant_id=tenant.id):
            last = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never"
            created = k.created_at.isoformat(timespec="seconds")
            # The permission columns come after NAME: scripts read the first seven by position (README: $7).
            rows.append(
                f"{k.id}\t{k.prefix}...\t{k.status}\t{created}\t{last}\t{k.request_count}\t{k.name}"
                f"\t{_scopes_text(k)}\t{_networks_text(k)}\t{_expiry_text(k)}"
            )
        return rows

    rows = _in_session(settings, work)
    print("ID\tPREFIX\tSTATUS\tCREATED\tLAST USED\tREQUESTS\tNAME\tSCOPES\tALLOWED FROM\tEXPIRES")
    for row in rows:
        print(row)
    return 0


def cmd_key_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def work(session: AsyncSession) -> str:
        key = await _key_by_id(session, args.id)
        if key.status == KeyStatus.revoked.value:  # revoking again changes nothing: say so
            when = f" at {key.revoked_at.isoformat(timespec='seconds')}" if key.revoked_at else ""
            return f"API key {key.id} ({key.prefix}...) was already revoked{when}; nothing changed"
        key = await keys.revoke_key(session, key=key, actor=Actor.cli())
        return f"revoked API key {key.id} ({key.prefix}...)"

    _err(_in_session(settings, work))
    return 0


def cmd_key_delete(args: argparse.Namespace, settings: Settings) -> int:
    """Delete a revoked key from the lists (its usage and audit history stay); an active key is refused, exit 2."""

    async def work(session: AsyncSession) -> str:
        try:
            key = await keys.get_key(session, key_id=args.id)
            await keys.delete_key(session, key=key, actor=Actor.cli())
        except NotFound:
            raise ValueError(f"no API key with id {args.id!r} (see: vibexp key list --tenant NAME)") from None
        except InvalidInput:  # not revoked: nothing is deleted
            raise ValueError(
                f"key {args.id} is {key.status}: revoke it first (vibexp key revoke {args.id}), then delete it"
            ) from None
        return f"deleted API key {key.id} ({key.prefix}...): it is off the lists; its usage and audit history stay"

    _err(_in_session(settings, work))
    return 0


def cmd_key_rotate(args: argparse.Namespace, settings: Settings) -> int:
    permissions = _key_permissions(args)

    async def work(session: AsyncSession) -> keys.NewKey:
        key = await _key_by_id(session, args.id)
        grace = timedelta(seconds=args.grace_period)
        try:  # omitted scopes and networks are the old key's (the service's rule, as over REST)
            return await keys.rotate_key(
                session, key=key, grace_period=grace, actor=Actor.cli(), permissions=permissions
            )
        except (InvalidInput, Conflict) as exc:  # a key that cannot be rotated (or already was), a refused expiry
            raise ValueError(exc.message) from None

    new = _in_session(settings, work)
    when = f"in {args.grace_period} s" if args.grace_period else "now"
    _err(f"rotated {args.id}: new key {new.record.id} ({new.record.prefix}...); the old key stops working {when}.")
    _err(f"The new key has {_permissions_text(new.record)}.")
    _err("Copy the new key now: it is shown only once.")
    print(new.plaintext)
    return 0


def cmd_scan(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 1 when a key is found, 0 when none, 2 when the input cannot be scanned (CI reads these)."""
    paths = args.paths or ["."]
    stats = ScanStats()
    try:
        if args.git:
            findings = [f for path in paths for f in scan_git(path, include_unchecked=args.legacy, stats=stats)]
        else:
            findings = scan_paths(paths, include_unchecked=args.legacy, stats=stats)
    except ScanError as exc:
        _err(f"error: {exc.message}")
        return 2
    for finding in findings:
        print(finding.line_text())
    if stats.unchecked and not args.legacy:
        _err(
            f"left out {stats.unchecked} key-shaped string(s) whose checksum fails (typos, hashes, test values; "
            "or keys made before checksums: --legacy reports them too)"
        )
    if not findings:
        _err(f"no VibeXP API key found: read {stats.summary()}")
    if findings and args.revoke:
        plaintexts = [finding.key for finding in findings]

        async def work(session: AsyncSession) -> list[str]:
            found = await revoke_leaked(
                session, plaintexts=plaintexts, actor=Actor.cli(), details={"source": "vibexp scan"}
            )
            return [f"{key.prefix}..." for key in found]

        revoked = _in_session(settings, work)
        _err(f"revoked {len(revoked)} active key(s): {', '.join(revoked) or 'none was active'}")
    if findings and args.report_to:
        try:
            sent = report_findings(args.report_to, findings, source="vibexp scan")
        except ReportError as exc:
            _err(f"error: {exc.message}")
            return 2
        _err(f"reported {sent} key(s) to {args.report_to}: the server revokes each active one")
    return 1 if findings else 0


async def _tenant_id(database: Database, name: str) -> str:
    """The tenant's id; an unknown name is bad input (exit 2), as a missing file is."""
    async with session_scope(database.session_factory) as session:
        try:
            return (await tenants.get_tenant_by_name(session, name=name)).id
        except NotFound:
            raise ValueError(f"no tenant named {name!r}") from None


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    """Write the tenant's content to stdout as JSON Lines, one keyset page at a time."""

    async def run() -> None:
        database = Database.from_settings(settings)
        try:
            tenant_id = await _tenant_id(database, args.tenant)
            lines = export_lines(database.session_factory, caller=FullAccess(tenant_id), actor=Actor.cli())
            async for line in lines:
                sys.stdout.write(line)
        finally:
            await database.dispose()

    _run_database_work(settings, run)
    sys.stdout.flush()
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Apply a JSONL file to the tenant in one transaction: all of it, or (at the first bad line) none of it."""
    with contextlib.ExitStack() as stack:
        try:  # bytes: a line that is not UTF-8 is reported by its number
            lines = stack.enter_context(Path(args.file).open("rb"))
        except OSError as exc:
            raise ValueError(f"{args.file}: {exc.strerror or exc}") from None

        async def run() -> dict[str, Any]:
            database = Database.from_settings(settings)
            try:
                tenant_id = await _tenant_id(database, args.tenant)
                counts = await import_lines(
                    database.session_factory, caller=FullAccess(tenant_id), actor=Actor.cli(), lines=lines
                )
                return counts.as_dict()
            finally:
                await database.dispose()

        try:
            counts = _run_database_work(settings, run)
        except InvalidInput as exc:  # a bad line: nothing was imported
            raise ValueError(f"{args.file}: {exc.message}; nothing imported") from None
    _err(
        f"imported into {args.tenant}: {counts['created']} created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged"
    )
    return 0


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Repeat password: "):
            raise VibeXPError("the passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password()

    async def work(session: AsyncSession) -> str:
        tenant = await tenants.get_tenant_by_name(session, name=args.tenant)
        user = await create_user(session, tenant_id=tenant.id, email=args.email, password=password)
        return f"created user {user.email} in tenant {tenant.name}"

    _err(_in_session(settings, work))
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return value


# -- parser ------------------------------------------------------------------------------------------------------
def _version() -> str:
    """The installed distribution's version (the wheel's, or the editable install's)."""
    try:
        return importlib.metadata.version("vibexp")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _add_permission_arguments(parser: argparse.ArgumentParser, *, rotating: bool) -> None:
    """``--scope``, ``--allow-cidr``, ``--expires-in`` of ``key create`` and (omitted: the old key's) ``key rotate``."""
    durations = ", ".join(cli_parsing.DURATION_UNITS)
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


def build_parser() -> argparse.ArgumentParser:
    # Long on purpose: the whole command line in one place, one block of add_argument calls per sub-command.
    parser = argparse.ArgumentParser(prog="vibexp", description="VibeXP: prompts, artifacts and memories over REST/MCP")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API, MCP endpoint and dashboard")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)"
    )
    serve.add_argument("--port", type=int, default=8000, help="TCP port to listen on (default 8000)")
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=os.environ.get("VIBEXP_WORKERS", "1"),  # argparse converts a string default with `type`
        help="worker processes (default 1, or VIBEXP_WORKERS); metrics then use Prometheus multiprocess mode",
    )
    serve.set_defaults(func=cmd_serve)

    operator = sub.add_parser("operator", help="run the Kubernetes operator")
    operator.add_argument("--namespace", "-n", action="append", default=[], help="watch only this namespace")
    operator.set_defaults(func=cmd_operator)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db_upgrade = db.add_parser("upgrade", help="apply migrations")
    db_upgrade.add_argument(
        "revision",
        nargs="?",
        default="head",
        help="the migration to reach (default head: the newest); creates the embedded SQLite file if it does not exist",
    )
    db_upgrade.set_defaults(func=cmd_db_upgrade)

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

    key = sub.add_parser("key", help="API keys").add_subparsers(dest="key_command", required=True)
    k_create = key.add_parser("create", help="create a key (printed once, alone on stdout)")
    k_create.add_argument("--tenant", required=True, metavar="NAME", help="the tenant the key belongs to")
    k_create.add_argument("--name", required=True, help="what the key is for, e.g. 'Work Laptop - Cursor'")
    k_create.add_argument("--description", default="", help="a longer note (optional)")
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

    scan = sub.add_parser("scan", help="find API keys in files or a git history (exit 1 found, 0 none, 2 bad input)")
    scan.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: .)")
    scan.add_argument("--git", action="store_true", help="search every commit of the repositories at PATH")
    scan.add_argument(
        "--legacy",
        action="store_true",
        help="also report key-shaped strings without a valid checksum (keys made before checksums, or not keys)",
    )
    scan.add_argument("--revoke", action="store_true", help="revoke the active keys found (needs the database)")
    scan.add_argument(
        "--report-to",
        metavar="URL",
        help="send the keys found to this VibeXP server's POST /api/v1/leaked-keys (no database needed)",
    )
    scan.set_defaults(func=cmd_scan)

    export = sub.add_parser("export", help="write a tenant's prompts, artifacts and memories to stdout as JSON Lines")
    export.add_argument("--tenant", required=True, metavar="NAME", help="the tenant to export")
    export.set_defaults(func=cmd_export)
    import_ = sub.add_parser("import", help="import a JSON Lines file (an export, or memory.jsonl); all or nothing")
    import_.add_argument("--tenant", required=True, metavar="NAME", help="the tenant to import into")
    import_.add_argument("file", metavar="FILE", help="a JSON Lines file: a `vibexp export`, or an MCP memory.jsonl")
    import_.set_defaults(func=cmd_import)

    user = sub.add_parser("user", help="dashboard users").add_subparsers(dest="user_command", required=True)
    u_create = user.add_parser("create", help="create a user (password from a prompt, or stdin)")
    u_create.add_argument("--tenant", required=True, metavar="NAME", help="the tenant the user signs in to")
    u_create.add_argument("--email", required=True, help="the user's e-mail address (their sign-in name)")
    u_create.set_defaults(func=cmd_user_create)
    _name_sub_commands(parser)
    return parser


def _name_sub_commands(parser: argparse.ArgumentParser) -> None:
    """Show a missing sub-command as the choices (``{create,list,...}``), not as its internal ``dest`` name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            action.metavar = "{" + ",".join(action.choices) + "}"
            for sub_parser in action.choices.values():
                _name_sub_commands(sub_parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # The API server's settings include every shared one: each command refuses a bad VIBEXP_ variable alike.
        settings = get_api_settings()
        func: Callable[[argparse.Namespace, Settings], int] = args.func
        return func(args, settings)
    except VibeXPError as exc:  # refused by the domain: an unknown name, a name taken, a value out of policy
        _err(f"error: {exc.message}")
        return 2
    except DatabaseUnreachable as exc:
        _err(f"error: {exc}")
        return 1
    except ValidationError as exc:  # settings from the environment, CLI input
        for line in _validation_messages(exc):
            _err(line)
        return 2
    except ValueError as exc:  # other refused CLI input
        _err(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
