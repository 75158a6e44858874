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

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
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
from vibexp.core.usage import usecases as usage_cases

__all__ = [
    "EXPIRY_WARNING",
    "GRACE_PERIODS",
    "PRESETS",
    "ExpiringKey",
    "PermissionsForm",
    "RotatingKey",
    "expiring_soon",
    "rotating",
    "router",
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


#: The create form's presets: the radio's value → the scopes it stores (``custom`` takes the checked boxes).
PRESETS: dict[str, list[str] | None] = {"full": [access.FULL_ACCESS], "read": [access.READ_ONLY], "custom": None}
#: The longest expiry the form takes when the account sets no maximum (a timestamp needs a bound; ten years).
MAX_EXPIRY_DAYS = 3650
#: How soon an expiry has to be for the warning banner.
EXPIRY_WARNING = timedelta(days=7)

_SEPARATORS = re.compile(r"[\s,]+")


@dataclass
class PermissionsForm:
    """The create form's permission inputs as typed (kept for a re-render), and what they mean once checked."""

    access: str = "full"
    checked: list[str] = field(default_factory=list)
    allowed_cidrs: str = ""
    expires_in_days: str = ""
    #: The "Ask before destructive MCP tools" checkbox.
    confirm_destructive: bool = False

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
            errors["scopes"] = "Choose Full access, Read-only or Custom."
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
            errors["scopes"] = str(exc)
            return None

    def _networks(self, errors: dict[str, str]) -> list[str] | None:
        entries = [entry for entry in _SEPARATORS.split(self.allowed_cidrs) if entry]
        try:
            return list(cidrs.normalise(entries))
        except ValueError as exc:
            errors["allowed_cidrs"] = str(exc)
            return None

    def _expiry(self, errors: dict[str, str]) -> datetime | None:
        return expiry_in_days(self.expires_in_days, errors)


def expiry_in_days(typed: str, errors: dict[str, str]) -> datetime | None:
    """An "Expires in (days)" input as a moment (``None`` when empty); a bad value goes to ``errors``."""
    text = typed.strip()
    if not text:
        return None
    if not text.lstrip("-").isdigit():
        errors["expires_in_days"] = "Expires in must be a whole number of days, such as 90."
        return None
    days = int(text)
    if days < 1:
        errors["expires_in_days"] = "Expires in must be at least 1 day (leave it empty for the default)."
        return None
    if days > MAX_EXPIRY_DAYS:
        errors["expires_in_days"] = f"Expires in may be at most {MAX_EXPIRY_DAYS} days (ten years)."
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


def _form_errors(exc: ValidationError) -> dict[str, str]:
    return {str(err["loc"][0]) if err["loc"] else "form": str(err["msg"]) for err in exc.errors()}


async def _list_page(
    request: Request, db: SessionDep, viewer: CurrentViewer, *, status: int = 200, **extra: Any
) -> Response:
    records = await keys_cases.list_keys(db, caller=viewer.caller)
    records.sort(key=lambda k: (k.status != "active", -k.created_at.timestamp()))
    context: dict[str, Any] = {
        "keys": records,
        "expiring": expiring_soon(records),
        "rotating": rotating(records),
        "form": {"name": "", "description": "", "permissions": PermissionsForm()},
        "errors": {},
        "scope_grid": access.resource_scopes(),
        "max_lifetime": viewer.tenant.max_key_lifetime_days,
        "max_expiry_days": MAX_EXPIRY_DAYS,
        **extra,
    }
    return render(request, "keys/list.html", context, status=status)


@router.get("")
async def list_page(request: Request, db: SessionDep, viewer: CurrentViewer) -> Response:
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
    return await _list_page(request, db, viewer, notice=notice)


@router.post("", dependencies=[CsrfChecked])
async def create(
    request: Request,
    db: SessionDep,
    viewer: CurrentViewer,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    access: Annotated[str, Form()] = "full",
    scope: Annotated[list[str] | None, Form()] = None,
    allowed_cidrs: Annotated[str, Form()] = "",
    expires_in_days: Annotated[str, Form()] = "",
    confirm_destructive: Annotated[bool, Form()] = False,
) -> Response:
    permissions = PermissionsForm(
        access=access,
        checked=scope or [],
        allowed_cidrs=allowed_cidrs,
        expires_in_days=expires_in_days,
        confirm_destructive=confirm_destructive,
    )
    form = {"name": name, "description": description, "permissions": permissions}
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
        context: dict[str, Any] = {"key": key, "plaintext": plaintext, "rotated": None}
        if opened.rotated_id:
            context["rotated"] = await _own_key(db, viewer, opened.rotated_id)
            context["grace"] = GRACE_PERIODS.get(opened.grace_seconds or 0, "")
        response = render(request, "keys/created.html", context)
    state = dashboard_state(request)
    response.delete_cookie(
        FLASH_COOKIE, path=f"{CREATED_PATH}/{flash_id}", secure=state.signer.secure, httponly=True, samesite="strict"
    )
    return response


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
