"""Settings → Export: download the account's content as JSON Lines, upload a file to import (all or nothing).

The download streams from the same core generator as ``GET /api/v1/export``; the upload is a multipart form with
the CSRF token like every other dashboard form, and goes through the same import (``import_lines_in``: parsed first,
then applied in the request's one transaction, which the signed-in viewer's session already opened; rolled back,
and the page says which line, when a line is bad).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse

from vibexp.api.dashboard.deps import CsrfChecked, CurrentViewer
from vibexp.api.dashboard.errors import DashboardRoute
from vibexp.api.dashboard.rendering import render
from vibexp.api.deps import RuntimeDep, SessionDep
from vibexp.core.content.transfer import CONTENT_TYPE
from vibexp.core.content.usecases import export_lines, import_lines_in
from vibexp.core.errors import InvalidInput

__all__ = ["router"]

router = APIRouter(prefix="/settings/export", route_class=DashboardRoute)
TEMPLATE = "settings/transfer.html"


@router.get("")
async def transfer_page(request: Request, viewer: CurrentViewer) -> Response:
    return render(request, TEMPLATE, {"counts": None, "error": None})


@router.get("/download")
async def download(request: Request, viewer: CurrentViewer, runtime: RuntimeDep) -> Response:
    lines = export_lines(runtime.session_factory, caller=viewer.caller)
    headers = {"Content-Disposition": f'attachment; filename="vibexp-{viewer.tenant.name}.jsonl"'}
    return StreamingResponse(lines, media_type=CONTENT_TYPE, headers=headers)


@router.post("/import", dependencies=[CsrfChecked])
async def upload(request: Request, db: SessionDep, viewer: CurrentViewer) -> Response:
    upload = (await request.form()).get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return render(request, TEMPLATE, {"counts": None, "error": "Choose a .jsonl file to import."}, status=422)
    body = await upload.read()  # the body-size limit middleware bounds the whole request
    try:
        counts = await import_lines_in(db, caller=viewer.caller, lines=body.split(b"\n"))
    except InvalidInput as exc:
        await db.rollback()  # all or nothing: the lines before the bad one are undone too
        for obj in (viewer.user, viewer.tenant):
            await db.refresh(obj)
        error = f"Nothing was imported: {exc.message}."
        return render(request, TEMPLATE, {"counts": None, "error": error}, status=422)
    return render(request, TEMPLATE, {"counts": counts, "error": None})
