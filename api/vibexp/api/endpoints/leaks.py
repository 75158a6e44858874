"""``POST /api/v1/leaked-keys``: where a secret scanner reports keys it found in public (no API key needed).

Blind on purpose: the answer is 202 whatever the tokens were, so the endpoint cannot be used to test whether a
guessed key exists. Each active key among them is revoked at once (every replica refuses it within the
revocation poll) and recorded as ``key.leaked`` with where it was found; an OAuth access or refresh token (or a
still-unused authorization code) revokes its connected app, audited ``oauth.revoked`` with ``reason: leaked``.
Throttled per client address, in process memory (``FailureThrottle`` as a sliding window): a flood of reports
costs a dict lookup each.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, status
from pydantic import BaseModel, Field
from starlette.responses import Response

from vibexp.api.deps import SessionDep
from vibexp.api.errors import ERROR_RESPONSES, error_response
from vibexp.api.middleware.client_address import client_address
from vibexp.core.access import Actor, ActorType
from vibexp.core.alerts.leaks import revoke_leaked, revoke_leaked_grants
from vibexp.core.keys.report import LEAK_REPORT_PATH
from vibexp.core.ratelimit.failures import FailureThrottle
from vibexp.core.text import StorableText

__all__ = ["LeakReport", "leaks_router"]

MAX_REPORTS = 100
#: Reports (requests) per client address and minute.
REPORTS_PER_MINUTE = 30

#: No key, so none of the key's errors (401, 403) or rate-limit headers; its own throttle's 429.
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: ERROR_RESPONSES[status] for status in (400, 413, 422)},
    429: {
        "model": ERROR_RESPONSES[429]["model"],
        "description": f"More than {REPORTS_PER_MINUTE} reports a minute from this address (code rate_limited)",
        "headers": {"Retry-After": {"description": "Seconds until a report is accepted", "schema": {"type": "string"}}},
    },
}
leaks_router = APIRouter(prefix=LEAK_REPORT_PATH, tags=["security"], responses=_RESPONSES)


class LeakReport(BaseModel):
    token: str = Field(
        pattern=r"^vib[ocr]?_[0-9a-f]{64}$",
        description="The key (vib_) or OAuth token (vibo_ access, vibr_ refresh, vibc_ code) as found",
    )
    url: StorableText | None = Field(default=None, max_length=2000, description="Where it was found")
    source: StorableText | None = Field(default=None, max_length=100, description="Who found it, e.g. a scanner")


class LeakReportAccepted(BaseModel):
    received: int = Field(description="How many reports were read (not how many matched a key)")


def _throttle(request: Request) -> FailureThrottle:
    throttle = getattr(request.app.state, "leak_report_throttle", None)
    if not isinstance(throttle, FailureThrottle):
        throttle = request.app.state.leak_report_throttle = FailureThrottle(limit=REPORTS_PER_MINUTE, window=60.0)
    return throttle


@leaks_router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=LeakReportAccepted,
    summary="Report leaked keys and OAuth tokens (no API key needed); each active one is revoked at once",
)
async def report_leaked_keys(
    request: Request,
    session: SessionDep,
    reports: Annotated[list[LeakReport], Body(min_length=1, max_length=MAX_REPORTS)],
) -> Response | LeakReportAccepted:
    address = client_address(request.scope) or "unknown"  # the client, not the proxy in front of it
    throttle = _throttle(request)
    wait = throttle.retry_after(address)
    if wait:
        message = f"Too many leak reports from this address; retry in {wait} s"
        return error_response(429, "rate_limited", message, headers={"Retry-After": str(wait)})
    throttle.failed(address)  # counts the report (the throttle is a sliding window of events per address)
    reporter = Actor(
        ActorType.system, name="leaked-key report", client_ip=address, user_agent=request.headers.get("user-agent")
    )
    for report in reports:
        details: dict[str, object] = {"url": report.url, "source": report.source}
        if report.token.startswith("vib_"):
            await revoke_leaked(session, plaintexts=[report.token], actor=reporter, details=details)
        else:
            await revoke_leaked_grants(session, plaintexts=[report.token], actor=reporter, details=details)
    return LeakReportAccepted(received=len(reports))
