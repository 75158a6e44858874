"""Settings → API Keys: the list, create (the key shown once), a key's usage page, revoke (confirmed), rotate."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from vibexp.api.dashboard.charts import usage_charts
from vibexp.api.dashboard.deps import CsrfChecked, CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import redirect, render
from vibexp.api.deps import SessionDep
from vibexp.core.errors import NotFound
from vibexp.core.keys import service as keys
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
        db, tenant_id=viewer.tenant.id, name=data.name, description=data.description, source="dashboard"
    )
    return render(request, "keys/created.html", {"key": new.record, "plaintext": new.plaintext, "rotated": None})


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
    await keys.revoke_key(db, key=key)  # the commit's after-commit hook drops it from every verifier cache
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
    new = await keys.rotate_key(db, key=key, grace_period=timedelta(seconds=grace_period), source="dashboard")
    context = {"key": new.record, "plaintext": new.plaintext, "rotated": key, "grace": GRACE_PERIODS[grace_period]}
    return render(request, "keys/created.html", context)
