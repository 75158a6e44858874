"""Settings → API Keys: the list, create (the key shown once), a key's usage page, revoke (confirmed), rotate.

Create and rotate are POST → 303 → GET: the POST mints the key and redirects to a one-time page
(``vibexp.core.keys.flash``), so reloading, going back and forward, or resubmitting never mints another key and
never shows a key twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from vibexp.api.dashboard.charts import usage_charts
from vibexp.api.dashboard.deps import CsrfChecked, CurrentViewer, viewer_actor
from vibexp.api.dashboard.errors import DashboardRoute, error_page
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.dashboard.state import dashboard_state
from vibexp.api.deps import SessionDep
from vibexp.core.errors import NotFound
from vibexp.core.keys import service as keys
from vibexp.core.keys.flash import FLASH_LIFETIME, consume_flash, create_flash
from vibexp.core.keys.models import ApiKey
from vibexp.core.keys.schemas import ApiKeyCreate
from vibexp.core.usage.service import key_usage

__all__ = ["GRACE_PERIODS", "router"]

router = APIRouter(prefix="/settings/api-keys", route_class=DashboardRoute)

#: The rotation form's choices: seconds the old key keeps working → label.
GRACE_PERIODS: dict[int, str] = {
    0: "None — revoke the old key now",
    3600: "1 hour",
    86400: "24 hours",
    7 * 86400: "7 days",
    30 * 86400: "30 days",
}


def _form_errors(exc: ValidationError) -> dict[str, str]:
    return {str(err["loc"][0]) if err["loc"] else "form": str(err["msg"]) for err in exc.errors()}


async def _list_page(
    request: Request, db: SessionDep, viewer: CurrentViewer, *, status: int = 200, **extra: Any
) -> Response:
    records = await keys.list_keys(db, tenant_id=viewer.tenant.id)
    records.sort(key=lambda k: (k.status != "active", -k.created_at.timestamp()))
    context: dict[str, Any] = {"keys": records, "form": {"name": "", "description": ""}, "errors": {}, **extra}
    return render(request, "keys/list.html", context, status=status)


@router.get("")
async def list_page(request: Request, db: SessionDep, viewer: CurrentViewer) -> Response:
    notice = None
    revoked_id = request.query_params.get("revoked")
    if revoked_id:
        try:
            key = await keys.get_key(db, key_id=revoked_id, tenant_id=viewer.tenant.id)
            notice = f"Revoked “{key.name}” ({key.prefix}…). Tools using it have lost access."
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
) -> Response:
    try:
        data = ApiKeyCreate(name=name.strip(), description=description.strip())
    except ValidationError as exc:
        form = {"name": name, "description": description}
        return await _list_page(request, db, viewer, status=422, form=form, errors=_form_errors(exc), open_form=True)
    new = await keys.create_key(
        db,
        tenant_id=viewer.tenant.id,
        name=data.name,
        description=data.description,
        source="dashboard",
        actor=viewer_actor(request, viewer),
    )
    return await _show_once(request, db, viewer, new)


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
    new: keys.NewKey,
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
    return await keys.get_key(db, key_id=key_id, tenant_id=viewer.tenant.id)


@router.get("/{key_id}")
async def detail(request: Request, key_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    key = await _own_key(db, viewer, key_id)
    usage = await key_usage(db, key=key, limit=50)
    charts = await usage_charts(db, tenant_id=viewer.tenant.id, key_id=key.id)
    replaced_by = None
    if key.replaced_by_id:
        replaced_by = await keys.get_key(db, key_id=key.replaced_by_id, tenant_id=viewer.tenant.id)
    context = {"key": key, "usage": usage, "charts": charts, "grace_periods": GRACE_PERIODS, "replaced_by": replaced_by}
    return render(request, "keys/detail.html", context)


@router.get("/{key_id}/revoke")
async def confirm_revoke(request: Request, key_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    key = await _own_key(db, viewer, key_id)
    if key.status != "active":
        return redirect(request, f"/settings/api-keys/{key.id}")
    return render(request, "keys/revoke.html", {"key": key})


@router.post("/{key_id}/revoke", dependencies=[CsrfChecked])
async def revoke(request: Request, key_id: str, db: SessionDep, viewer: CurrentViewer) -> Response:
    key = await _own_key(db, viewer, key_id)
    await keys.revoke_key(
        db, key=key, actor=viewer_actor(request, viewer)
    )  # the commit's after-commit hook drops it from every verifier cache
    return redirect(request, f"/settings/api-keys?revoked={key.id}")


@router.post("/{key_id}/rotate", dependencies=[CsrfChecked])
async def rotate(
    request: Request,
    key_id: str,
    db: SessionDep,
    viewer: CurrentViewer,
    grace_period: Annotated[int, Form()] = 0,
) -> Response:
    key = await _own_key(db, viewer, key_id)
    if grace_period not in GRACE_PERIODS:
        grace_period = 0
    grace = timedelta(seconds=grace_period)
    new = await keys.rotate_key(
        db, key=key, grace_period=grace, source="dashboard", actor=viewer_actor(request, viewer)
    )
    return await _show_once(request, db, viewer, new, rotated=key, grace=grace_period)
