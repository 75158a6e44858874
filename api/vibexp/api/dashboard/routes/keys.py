"""Settings → API Keys: the list, create (the key shown once), a key's usage page, revoke (confirmed), rotate,
delete a revoked key (confirmed: off the list, its usage and audit history stay).

Create and rotate are POST → 303 → GET: the POST mints the key and redirects to a one-time page
(``vibexp.core.keys.flash``), so reloading, going back and forward, or resubmitting never mints another key and
never shows a key twice.

The create form also sets the key's permissions (``PermissionsForm``): a preset (full access, read-only) or a
custom grid of scopes, networks it may be used from, and an expiry in days. It works without JavaScript: the
preset is a radio the server reads, and a bad value re-renders the form with the message and every input kept.
The person signed in acts for the whole account, so the key may be as wide as they like (``issuer=None``), within
the tenant's maximum key lifetime. Rotation keeps the old key's permissions and, unless the rotate form sets
another, its expiry (capped by the maximum lifetime). The expiry banner warns of keys about to expire, but not of an
old key in its rotation grace period: that one is listed as rotating to its successor.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from markupsafe import Markup
from pydantic import ValidationError
from starlette.responses import Response

from vibexp.api.dashboard.charts import usage_charts
from vibexp.api.dashboard.deps import CsrfChecked, CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute, error_page
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.dashboard.state import dashboard_state
from vibexp.api.deps import SessionDep
from vibexp.core import access, cidrs
from vibexp.core.clock import utcnow
from vibexp.core.errors import Conflict, InvalidInput, NotFound
from vibexp.core.keys import usecases as keys_cases
from vibexp.core.keys.flash import FLASH_LIFETIME, consume_flash, create_flash
from vibexp.core.keys.models import ApiKey
from vibexp.core.keys.schemas import ApiKeyCreate
from vibexp.core.keys.usecases import KeyPermissions, NewKey
from vibexp.core.members import usecases as members_cases
from vibexp.core.usage import usecases as usage_cases

__all__ = [
    "EXPIRY_PRESETS",
    "EXPIRY_WARNING",
    "GRACE_PERIODS",
    "OWNER_FILTERS",
    "PRESETS",
    "ExpiringKey",
    "KeyFilter",
    "PermissionsForm",
    "RotatingKey",
    "SetUp",
    "default_expiry",
    "expiring_soon",
    "expiry_choices",
    "owner_choice",
    "rotating",
    "router",
    "set_ups",
]

router = APIRouter(prefix="/settings/api-keys", route_class=DashboardRoute)

#: The rotation form's choices: seconds the old key keeps working → label.
GRACE_PERIODS: dict[int, str] = {
    0: "None — revoke the old key now",
    3600: "1 hour",
    86400: "24 hours",
    7 * 86400: "7 days",
    30 * 86400: "30 days",
}


#: The create form's presets: the radio's value → the scopes it stores (``custom`` takes the checked boxes). None is
#: chosen in advance: the person picks what the key may do (Read-only is the first choice, one click away).
PRESETS: dict[str, list[str] | None] = {"read": [access.READ_ONLY], "full": [access.FULL_ACCESS], "custom": None}
#: The create form's expiry choices: the radio's value → days (``custom`` reads the number typed, ``never`` none).
EXPIRY_PRESETS: dict[str, int | None] = {"7": 7, "30": 30, "90": 90, "custom": None, "never": None}
#: The expiry chosen in advance: the guide's "rotate every 90 days".
DEFAULT_EXPIRY = "90"
#: The list's status filter: the query's ``status`` → the key status it keeps (``None``: every key).
STATUS_FILTERS: dict[str, str | None] = {"active": "active", "revoked": "revoked", "all": None}
#: An admin's owner filter on the list: its values and labels (``all`` is everyone's).
OWNER_FILTERS: dict[str, str] = {"me": "Mine", "service": "Service", "all": "Everyone's"}
#: The longest search text the list takes.
MAX_SEARCH = 200
#: The longest expiry the form takes when the account sets no maximum (a timestamp needs a bound; ten years).
MAX_EXPIRY_DAYS = 3650
#: How soon an expiry has to be for the warning banner.
EXPIRY_WARNING = timedelta(days=7)

_SEPARATORS = re.compile(r"[\s,]+")


def expiry_choices(max_lifetime_days: int | None) -> list[str]:
    """The expiry presets this account's policy allows: none longer than its maximum key lifetime, and "never" only
    without one."""
    allowed = []
    for value, days in EXPIRY_PRESETS.items():
        if value == "never" and max_lifetime_days is not None:
            continue
        if days is not None and max_lifetime_days is not None and days > max_lifetime_days:
            continue
        allowed.append(value)
    return allowed


def default_expiry(max_lifetime_days: int | None) -> str:
    """The expiry preset chosen in advance: 90 days, else the longest preset the policy allows, else custom."""
    choices = expiry_choices(max_lifetime_days)
    if DEFAULT_EXPIRY in choices:
        return DEFAULT_EXPIRY
    shorter = [value for value in choices if EXPIRY_PRESETS[value] is not None]
    return shorter[-1] if shorter else "custom"


@dataclass
class PermissionsForm:
    """The create form's permission inputs as typed (kept for a re-render), and what they mean once checked.

    ``expiry`` is a preset (``EXPIRY_PRESETS``); a number typed in ``expires_in_days`` means Custom; neither (a form
    posted without them) gives the account's default (its maximum lifetime, or never)."""

    access: str = ""
    checked: list[str] = field(default_factory=list)
    allowed_cidrs: str = ""
    expires_in_days: str = ""
    #: The "Ask before destructive MCP tools" checkbox.
    confirm_destructive: bool = False
    expiry: str = ""
    max_lifetime_days: int | None = None

    def parse(self, errors: dict[str, str]) -> KeyPermissions:
        """The permissions to request; each bad input adds its message to ``errors`` under the input's name."""
        scope_list = self._scopes(errors)
        networks = self._networks(errors)
        expires_at = self._expiry(errors)
        return KeyPermissions(
            scopes=scope_list,
            allowed_cidrs=networks,
            expires_at=expires_at,
            confirm_destructive=self.confirm_destructive,
        )

    def _scopes(self, errors: dict[str, str]) -> list[str] | None:
        if self.access not in PRESETS:
            errors["scopes"] = "Choose what the key may do: Read-only, Full access or Custom."
            return None
        preset = PRESETS[self.access]
        if preset is not None:
            return preset
        if not self.checked:
            errors["scopes"] = "Custom access needs at least one permission: check what the key may read or write."
            return None
        try:
            return list(access.normalise(self.checked))
        except ValueError as exc:
            errors["scopes"] = f"Custom permissions: {exc}."
            return None

    def _networks(self, errors: dict[str, str]) -> list[str] | None:
        entries = [entry for entry in _SEPARATORS.split(self.allowed_cidrs) if entry]
        try:
            return list(cidrs.normalise(entries))
        except ValueError as exc:
            errors["allowed_cidrs"] = f"Allowed networks: {exc}"
            return None

    def _expiry(self, errors: dict[str, str]) -> datetime | None:
        limit = self.max_lifetime_days
        # A number typed in the days field means Custom whichever preset is checked: without JavaScript nothing
        # switches the radio, and a typed number is the clearer wish (with JavaScript, picking a preset clears it).
        choice = "custom" if self.expires_in_days.strip() else self.expiry
        if not choice:
            return None  # the account's default: its maximum lifetime, or never
        if choice not in expiry_choices(limit):
            if choice == "never" and limit is not None:
                errors["expiry"] = f"Keys of this account expire after {limit} days at most: choose an expiry."
            else:
                days = ", ".join(v for v in expiry_choices(limit) if EXPIRY_PRESETS[v] is not None)
                errors["expiry"] = f"Choose when the key expires: {days} days, custom" + (
                    "." if limit is not None else " or never."
                )
            return None
        if choice == "never":
            return None
        preset = EXPIRY_PRESETS[choice]
        if preset is not None:
            return utcnow() + timedelta(days=preset)
        if not self.expires_in_days.strip():
            errors["expires_in_days"] = "Custom expiry needs a number of days, such as 60."
            return None
        return expiry_in_days(self.expires_in_days, errors, max_lifetime_days=limit)


def expiry_in_days(typed: str, errors: dict[str, str], *, max_lifetime_days: int | None = None) -> datetime | None:
    """An "Expires in (days)" input as a moment (``None`` when empty); a bad value goes to ``errors``, in the words
    of the field's help (the account's maximum lifetime included, so every error shows at once)."""
    text = typed.strip()
    if not text:
        return None
    if not text.lstrip("-").isdigit():
        errors["expires_in_days"] = "Expires in must be a whole number of days, such as 90."
        return None
    days = int(text)
    if days < 1:
        errors["expires_in_days"] = "Expires in must be at least 1 day."
        return None
    if days > MAX_EXPIRY_DAYS:
        errors["expires_in_days"] = f"Expires in may be at most {MAX_EXPIRY_DAYS} days (ten years)."
        return None
    if max_lifetime_days is not None and days > max_lifetime_days:
        errors["expires_in_days"] = f"Keys expire after {max_lifetime_days} days at most (this account's policy)."
        return None
    return utcnow() + timedelta(days=days)


@dataclass(frozen=True, slots=True)
class ExpiringKey:
    """An active key that stops working soon, and how soon in words ("in 3 days")."""

    key: ApiKey
    within: str


def _within(left: timedelta) -> str:
    # Rounded to the nearest hour or day: a key made to expire "in 3 days" still reads so a second later.
    hours = round(left / timedelta(hours=1))
    if hours < 24:
        hours = max(1, hours)
        return f"in {hours} hour{'' if hours == 1 else 's'}"
    days = round(left / timedelta(days=1))
    return f"in {days} day{'' if days == 1 else 's'}"


def expiring_soon(records: list[ApiKey], now: datetime | None = None) -> list[ExpiringKey]:
    """The active keys among ``records`` that expire within ``EXPIRY_WARNING`` (not those already expired, nor old
    keys in their rotation grace period: see ``rotating``), soonest first: the banner on the keys page and the
    overview."""
    moment = now or utcnow()
    soon = [
        k
        for k in records
        if k.status == "active"
        and k.replaced_by_id is None
        and k.expires_at is not None
        and moment < k.expires_at <= moment + EXPIRY_WARNING
    ]
    soon.sort(key=lambda k: (k.expires_at or moment, k.name))
    return [ExpiringKey(key=k, within=_within((k.expires_at or moment) - moment)) for k in soon]


@dataclass(frozen=True, slots=True)
class RotatingKey:
    """An old key still working in its rotation grace period, and the key that replaces it (``None`` when that one
    is no longer among the records)."""

    key: ApiKey
    successor: ApiKey | None


def rotating(records: list[ApiKey], now: datetime | None = None) -> list[RotatingKey]:
    """The keys among ``records`` in their rotation grace period (rotated, still working), ending soonest first."""
    moment = now or utcnow()
    by_id = {k.id: k for k in records}
    old = [
        k
        for k in records
        if k.status == "active" and k.replaced_by_id is not None and (k.expires_at is None or k.expires_at > moment)
    ]
    old.sort(key=lambda k: (k.expires_at or moment, k.name))
    return [RotatingKey(key=k, successor=by_id.get(k.replaced_by_id or "")) for k in old]


_FIELD_WORDS = {"name": "Name", "description": "Description"}


def _form_errors(exc: ValidationError) -> dict[str, str]:
    """The name's and description's errors in the words of the form's help, not the validator's."""
    errors: dict[str, str] = {}
    for err in exc.errors():
        where = str(err["loc"][0]) if err["loc"] else "form"
        label = _FIELD_WORDS.get(where, where.capitalize())
        limit = (err.get("ctx") or {}).get("max_length")
        if err["type"] == "string_too_short" and where == "name":
            errors[where] = 'Enter a name: a descriptive name, e.g. "Work Laptop - Cursor".'
        elif err["type"] == "string_too_long" and limit is not None:
            errors[where] = f"{label} may be at most {limit} characters."
        else:
            errors[where] = f"{label} may contain only printable text."
    return errors


def owner_choice(value: str | None) -> str:
    """A page's ``owner`` query as one of ``OWNER_FILTERS`` (absent or blank: ``all``); anything else is
    ``InvalidInput`` (the 422 page). The keys, alerts and usage pages read it alike."""
    owner = value or "all"
    if owner not in OWNER_FILTERS:
        raise InvalidInput("Show your keys, service keys or everyone's keys.")
    return owner


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """The list's filter as asked (``status`` one of ``STATUS_FILTERS``, ``q`` a piece of a name or a prefix,
    ``owner`` one of ``OWNER_FILTERS``: an admin's "Mine / Service / Everyone's"; ``me`` the viewer's user id)."""

    status: str = "all"
    q: str = ""
    owner: str = "all"
    me: str = ""

    @classmethod
    def from_query(cls, request: Request, *, me: str = "") -> KeyFilter:
        status = request.query_params.get("status") or "all"
        q = (request.query_params.get("q") or "").strip()
        owner = owner_choice(request.query_params.get("owner"))
        if status not in STATUS_FILTERS:
            raise InvalidInput("Show Active, Revoked or All keys.")
        if len(q) > MAX_SEARCH:
            raise InvalidInput(f"Search for at most {MAX_SEARCH} characters of a key's name.")
        return cls(status=status, q=q, owner=owner, me=me)

    def keeps(self, key: ApiKey) -> bool:
        wanted = STATUS_FILTERS[self.status]
        if wanted is not None and key.status != wanted:
            return False
        if self.owner == "me" and key.owner_user_id != self.me:
            return False
        if self.owner == "service" and key.owner_user_id is not None:
            return False
        needle = self.q.casefold()
        return not needle or needle in key.name.casefold() or key.prefix.startswith(self.q)

    def counts(self, records: list[ApiKey]) -> dict[str, int]:
        """How many keys each status tab would show with this search and owner."""
        return {status: sum(1 for k in records if replace(self, status=status).keeps(k)) for status in STATUS_FILTERS}


async def _list_page(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    *,
    status: int = 200,
    shown: KeyFilter | None = None,
    **extra: Any,
) -> Response:
    records = await keys_cases.list_keys(db, caller=viewer.caller)  # one query; filtered here (banners need all)
    # Admins and owners see whose each key is: the members' e-mails, one more query (members and viewers list
    # only their own keys and get neither the column nor the owner filter).
    manages = access.Scope.members_read in viewer.caller.granted
    owners = {m.user_id: m.email for m in await members_cases.list_members(db, caller=viewer.caller)} if manages else {}
    records.sort(key=lambda k: (k.status != "active", -k.created_at.timestamp()))
    shown = shown or KeyFilter()
    limit = viewer.tenant.max_key_lifetime_days
    in_grace = rotating(records)
    context: dict[str, Any] = {
        "keys": [k for k in records if shown.keeps(k)],
        "filter": shown,
        "manages": manages,
        "owners": owners,
        "owner_filters": OWNER_FILTERS,
        "counts": shown.counts(records),
        "expiring": expiring_soon(records),
        "rotating": in_grace,
        "rotating_by_id": {r.key.id: r for r in in_grace},
        "form": {"name": "", "description": "", "permissions": PermissionsForm(expiry=default_expiry(limit))},
        "errors": {},
        "scope_grid": access.resource_scopes(),
        "expiry_choices": expiry_choices(limit),
        "max_lifetime": limit,
        "max_expiry_days": MAX_EXPIRY_DAYS,
        **extra,
    }
    return render(request, "keys/list.html", context, status=status)


@router.get("")
async def list_page(request: Request, db: SessionDep, viewer: CurrentViewer) -> Response:
    shown = KeyFilter.from_query(request, me=viewer.user.id)  # a bad filter: the 422 page
    notice = None
    revoked_id = request.query_params.get("revoked")
    deleted_id = request.query_params.get("deleted")
    try:
        if revoked_id:
            key = await keys_cases.get(db, caller=viewer.caller, key_id=revoked_id)
            notice = f"Revoked “{key.name}” ({key.prefix}…). Tools using it have lost access."
        elif deleted_id:
            key = await keys_cases.get(db, caller=viewer.caller, key_id=deleted_id, include_deleted=True)
            if key.deleted_at is not None:
                notice = f"Deleted “{key.name}” ({key.prefix}…) from the list. Its usage and audit history stay."
    except NotFound:
        notice = None
    return await _list_page(request, db, viewer, shown=shown, notice=notice)


@router.post("", dependencies=[CsrfChecked])
async def create(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    access: Annotated[str, Form()] = "",
    scope: Annotated[list[str] | None, Form()] = None,
    allowed_cidrs: Annotated[str, Form()] = "",
    expiry: Annotated[str, Form()] = "",
    expires_in_days: Annotated[str, Form()] = "",
    confirm_destructive: Annotated[bool, Form()] = False,
    service_key: Annotated[bool, Form()] = False,
) -> Response:
    permissions = PermissionsForm(
        access=access,
        checked=scope or [],
        allowed_cidrs=allowed_cidrs,
        expires_in_days=expires_in_days,
        confirm_destructive=confirm_destructive,
        expiry=expiry,
        max_lifetime_days=viewer.tenant.max_key_lifetime_days,
    )
    form = {"name": name, "description": description, "permissions": permissions, "service_key": service_key}
    errors: dict[str, str] = {}
    data: ApiKeyCreate | None = None
    try:
        data = ApiKeyCreate(name=name.strip(), description=description.strip())
    except ValidationError as exc:
        errors.update(_form_errors(exc))
    wanted = permissions.parse(errors)
    if data is not None and not errors:
        try:
            new = await keys_cases.create(  # a signed-in person acts for the whole account: no issuer bounds
                db,
                caller=viewer.caller,
                name=data.name,
                description=data.description,
                source="dashboard",
                permissions=wanted,
                service_key=service_key,  # admins and owners only: a member's is refused (the 403 page)
            )
        except InvalidInput as exc:  # only the expiry can be refused here: beyond the account's maximum lifetime
            errors["expires_in_days"] = exc.message
        else:
            return await _show_once(request, db, viewer, new)
    return await _list_page(request, db, viewer, status=422, form=form, errors=errors, open_form=True)


FLASH_COOKIE = "vibexp_new_key"
CREATED_PATH = "/settings/api-keys/created"
ALREADY_SHOWN = (
    "This key was shown once and cannot be shown again. If you did not save it, revoke it and create a new one "
    "under Settings → API Keys."
)


async def _show_once(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    new: NewKey,
    *,
    rotated: ApiKey | None = None,
    grace: int | None = None,
) -> Response:
    """Redirect to the one-time page; the key travels sealed in a cookie for that one URL, never in the database."""
    flash_id = await create_flash(
        db, owner=viewer.session.sid, key_id=new.record.id, rotated_id=rotated.id if rotated else None,
        grace_seconds=grace,
    )  # fmt: skip
    state = dashboard_state(request)
    response = redirect(request, f"{CREATED_PATH}/{flash_id}")
    response.set_cookie(
        FLASH_COOKIE,
        state.sealer.seal(flash_id, new.plaintext),
        max_age=FLASH_LIFETIME,
        path=f"{CREATED_PATH}/{flash_id}",
        secure=state.signer.secure,
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/created/{flash_id}")
async def created(request: Request, flash_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    """The one GET that shows a new key: the flash is deleted as it is read, so a reload finds nothing."""
    opened = await consume_flash(db, flash_id=flash_id, owner=viewer.session.sid)
    sealed = request.cookies.get(FLASH_COOKIE)
    plaintext = dashboard_state(request).sealer.open(flash_id, sealed) if opened and sealed else None
    if opened is None or plaintext is None:
        response = error_page(request, 410, "Key already shown", ALREADY_SHOWN)
    else:
        key = await _own_key(db, viewer, opened.key_id)
        base_url = str(request.base_url).rstrip("/")
        context: dict[str, Any] = {
            "key": key,
            "plaintext": plaintext,
            "rotated": None,
            "set_ups": set_ups(base_url, plaintext),
        }
        if opened.rotated_id:
            context["rotated"] = await _own_key(db, viewer, opened.rotated_id)
            context["grace"] = GRACE_PERIODS.get(opened.grace_seconds or 0, "")
        response = render(request, "keys/created.html", context)
    state = dashboard_state(request)
    response.delete_cookie(
        FLASH_COOKIE, path=f"{CREATED_PATH}/{flash_id}", secure=state.signer.secure, httponly=True, samesite="strict"
    )
    return response


#: The MCP server's name in client set-ups and the environment variable for the key, as the README's instructions.
MCP_SERVER_NAME = "vibexp_io_common"
KEY_ENV = "VIBEXP_KEY"


@dataclass(frozen=True, slots=True)
class SetUp:
    """One ready-to-paste set-up on the "key created" page: where it goes and its text (the key filled in)."""

    id: str
    tool: str
    where: str  # HTML: constant text with <code> (never user input)
    text: str

    @property
    def where_html(self) -> Markup:
        return Markup(self.where)  # noqa: S704 - the constants above, no user text


def set_ups(base_url: str, key: str) -> list[SetUp]:
    """The tools' set-ups for a new key, in the README's words (``## MCP: Claude Code, Cursor and VS Code``)."""
    mcp = f"{base_url}/mcp/v1/common"
    api = f"{base_url}/api/v1/prompts"
    vscode = {
        "inputs": [
            {"type": "promptString", "id": "vibexp-key", "description": "VibeXP API key (vib_...)", "password": True}
        ],
        "servers": {
            MCP_SERVER_NAME: {
                "type": "http",
                "url": mcp,
                "headers": {"Authorization": "Bearer ${input:vibexp-key}"},
            }
        },
    }
    cursor = {"mcpServers": {MCP_SERVER_NAME: {"url": mcp, "headers": {"Authorization": f"Bearer ${{env:{KEY_ENV}}}"}}}}
    return [
        SetUp(
            "claude-code",
            "Claude Code",
            "Run in a terminal; then <code>claude mcp list</code> shows it Connected.",
            f'claude mcp add --transport http {MCP_SERVER_NAME} {mcp} \\\n  --header "Authorization: Bearer {key}"',
        ),
        SetUp(
            "vscode",
            "VS Code",
            "Put this in <code>.vscode/mcp.json</code>. VS Code asks for the key once (a password field): paste it "
            "there; it is kept in VS Code's secret storage, not in the file.",
            json.dumps(vscode, indent=2),
        ),
        SetUp(
            "cursor-env",
            "Cursor (1 of 2)",
            "Export the key in the shell you start Cursor from (e.g. <code>cursor .</code>) …",
            f"export {KEY_ENV}={key}",
        ),
        SetUp(
            "cursor",
            "Cursor (2 of 2)",
            "… and put this in <code>.cursor/mcp.json</code>: Cursor reads the key from the environment, so the "
            "file can be shared.",
            json.dumps(cursor, indent=2),
        ),
        SetUp("curl", "curl", "Lists your prompts over the REST API.", f'curl -H "Authorization: Bearer {key}" {api}'),
        SetUp(
            "python",
            "Python",
            "With <code>requests</code> (<code>pip install requests</code>).",
            "import requests\n\n"
            f'response = requests.get(\n    "{api}",\n    headers={{"Authorization": "Bearer {key}"}},\n'
            "    timeout=10,\n)\nresponse.raise_for_status()\nprint(response.json())",
        ),
        SetUp(
            "node",
            "Node",
            "Node 18 or later (built-in <code>fetch</code>), in an <code>.mjs</code> file.",
            f'const response = await fetch("{api}", {{\n  headers: {{ Authorization: "Bearer {key}" }},\n}});\n'
            "console.log(await response.json());",
        ),
    ]


async def _own_key(db: SessionDep, viewer: CurrentViewer, key_id: str) -> ApiKey:
    return await keys_cases.get(db, caller=viewer.caller, key_id=key_id)


async def _detail_page(
    request: Request, db: SessionDep, viewer: CurrentViewer, key: ApiKey, *, status: int = 200, **extra: Any
) -> Response:
    usage = await usage_cases.of_key(db, caller=viewer.caller, key_id=key.id, limit=50, include_deleted=True)
    charts = await usage_charts(db, caller=viewer.caller, key_id=key.id)
    replaced_by = None
    if key.replaced_by_id:
        try:  # the successor may have been deleted since
            replaced_by = await keys_cases.get(db, caller=viewer.caller, key_id=key.replaced_by_id)
        except NotFound:
            replaced_by = None
    context = {
        "key": key,
        "usage": usage,
        "charts": charts,
        "grace_periods": GRACE_PERIODS,
        "replaced_by": replaced_by,
        "rotation_expiry": keys_cases.rotation_expiry(key, viewer.tenant.max_key_lifetime_days),
        "max_lifetime": viewer.tenant.max_key_lifetime_days,
        "max_expiry_days": MAX_EXPIRY_DAYS,
        "rotate_form": {"grace_period": 0, "expires_in_days": ""},
        "errors": {},
        **extra,
    }
    return render(request, "keys/detail.html", context, status=status)


@router.get("/{key_id}")
async def detail(request: Request, key_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    # A deleted key's page still opens (the audit trail links to it), with its history and no actions.
    key = await keys_cases.get(db, caller=viewer.caller, key_id=key_id, include_deleted=True)
    return await _detail_page(request, db, viewer, key)


@router.get("/{key_id}/revoke")
async def confirm_revoke(request: Request, key_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    key = await _own_key(db, viewer, key_id)
    if key.status != "active":
        return redirect(request, f"/settings/api-keys/{key.id}")
    return render(request, "keys/revoke.html", {"key": key})


@router.post("/{key_id}/revoke", dependencies=[CsrfChecked])
async def revoke(request: Request, key_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    key = await _own_key(db, viewer, key_id)
    await keys_cases.revoke(db, caller=viewer.caller, key_id=key.id)  # after commit: off every verifier cache
    return redirect(request, f"/settings/api-keys?revoked={key.id}")


@router.get("/{key_id}/delete")
async def confirm_delete(request: Request, key_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    key = await _own_key(db, viewer, key_id)
    if key.status != "revoked":  # only a revoked key is deleted: its page offers Revoke first
        return redirect(request, f"/settings/api-keys/{key.id}")
    return render(request, "keys/delete.html", {"key": key})


@router.post("/{key_id}/delete", dependencies=[CsrfChecked])
async def delete(request: Request, key_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    key = await _own_key(db, viewer, key_id)  # a deleted or another account's key: 404
    await keys_cases.delete(db, caller=viewer.caller, key_id=key.id)  # not revoked: 422, nothing deleted
    return redirect(request, f"/settings/api-keys?deleted={key.id}")


@router.post("/{key_id}/rotate", dependencies=[CsrfChecked])
async def rotate(
    request: Request,
    key_id: str,
    db: SessionDep,
    viewer: CurrentViewer,
    grace_period: Annotated[int, Form()] = 0,
    expires_in_days: Annotated[str, Form()] = "",
) -> Response:
    key = await _own_key(db, viewer, key_id)
    if grace_period not in GRACE_PERIODS:
        grace_period = 0
    errors: dict[str, str] = {}
    expires_at = expiry_in_days(expires_in_days, errors)  # empty: the old key's (capped by the policy)
    form = {"grace_period": grace_period, "expires_in_days": expires_in_days}
    if errors:
        return await _detail_page(request, db, viewer, key, status=422, rotate_form=form, errors=errors)
    try:
        new = await keys_cases.rotate(
            db,
            caller=viewer.caller,
            key_id=key.id,
            grace_period=timedelta(seconds=grace_period),
            source="dashboard",
            permissions=KeyPermissions(expires_at=expires_at),
        )
    except InvalidInput as exc:  # an expiry beyond the policy, or a key revoked or expired meanwhile
        errors["expires_in_days" if "expires_at" in exc.message else "rotate"] = exc.message
        return await _detail_page(request, db, viewer, key, status=422, rotate_form=form, errors=errors)
    except Conflict as exc:  # rotated meanwhile (another tab, another person)
        errors["rotate"] = exc.message
        return await _detail_page(request, db, viewer, key, status=409, rotate_form=form, errors=errors)
    return await _show_once(request, db, viewer, new, rotated=key, grace=grace_period)
