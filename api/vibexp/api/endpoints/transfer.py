"""Export and import of the caller's content as JSON Lines over REST (``vibexp.core.content.transfer``).

``GET /export`` streams: the response is written page by page as the core generator reads them, never built in
memory. ``POST /import`` takes the JSONL as the raw body (so the body-size limit middleware bounds it: 413 over the
limit) and applies it in the request's one transaction: a bad line is a 422 naming its line number, and nothing of
the file is kept.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at import.

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from vibexp.api.deps import CurrentCaller, RuntimeDep
from vibexp.api.endpoints import API_PREFIX
from vibexp.api.errors import ERROR_RESPONSES
from vibexp.core.content.transfer import CONTENT_TYPE
from vibexp.core.content.usecases import export_lines, import_lines

__all__ = ["ImportResult", "transfer_router"]

transfer_router = APIRouter(prefix=API_PREFIX, tags=["export"], responses=ERROR_RESPONSES)


class ImportResult(BaseModel):
    created: int = Field(description="Objects that were not there before")
    updated: int = Field(description="Objects found by their natural key whose fields the file changed")
    unchanged: int = Field(description="Objects already there as the file has them")
    by_type: dict[str, dict[str, int]] = Field(description="The same counts per type (prompt, artifact, memory)")


@transfer_router.get(
    "/export",
    summary="Export all prompts, artifacts and memories as JSON Lines",
    response_class=StreamingResponse,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "One JSON object a line; empty if no content"}},
)
async def export(runtime: RuntimeDep, caller: CurrentCaller) -> StreamingResponse:
    # The generator opens its own short sessions: the request's session would be closed before streaming ends.
    lines = export_lines(runtime.session_factory, caller=caller)
    headers = {"Content-Disposition": 'attachment; filename="vibexp-export.jsonl"'}
    return StreamingResponse(lines, media_type=CONTENT_TYPE, headers=headers)


@transfer_router.post(
    "/import",
    response_model=ImportResult,
    summary="Import JSON Lines (an export, or the MCP memory server's memory.jsonl); all or nothing",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
            "description": "One JSON object a line; a bad line is a 422 naming it and nothing is imported",
        }
    },
)
async def import_(request: Request, runtime: RuntimeDep, caller: CurrentCaller) -> Any:
    body = await request.body()  # bounded by the body-size limit middleware
    counts = await import_lines(runtime.session_factory, caller=caller, lines=body.split(b"\n"))
    return counts.as_dict()
