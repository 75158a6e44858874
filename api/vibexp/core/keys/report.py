"""Send what ``vibexp scan`` found to a VibeXP server's ``POST /api/v1/leaked-keys`` (``--report-to``).

For a CI job that has no database access: the server revokes each active key and records where it was found. The
keys travel only in the request body, to the server they belong to; nothing prints them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import urlsplit

from vibexp.core.keys.scan import Finding

__all__ = ["LEAK_REPORT_PATH", "ReportError", "report_findings"]

LEAK_REPORT_PATH = "/api/v1/leaked-keys"
#: The endpoint's limit per request.
BATCH = 100


class ReportError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _endpoint(server: str) -> str:
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ReportError(
            f"--report-to needs the server's http(s) URL, e.g. https://vibexp.example.com (got {server!r})"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}{LEAK_REPORT_PATH}"


def report_findings(server: str, findings: Sequence[Finding], *, source: str, timeout: float = 15.0) -> int:
    """POST the findings in batches; returns how many were reported. Raises ``ReportError`` when the server
    cannot be reached or refuses a batch (its error message, never the keys)."""
    url = _endpoint(server)
    sent = 0
    for start in range(0, len(findings), BATCH):
        batch = findings[start : start + BATCH]
        body = json.dumps([{"token": f.key, "url": f"{f.location}:{f.line}", "source": source} for f in batch])
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) above
            url, data=body.encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as exc:
            raise ReportError(f"{url} answered {exc.code}: {_message(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ReportError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
        if status != 202:
            raise ReportError(f"{url} answered {status}, expected 202")
        sent += len(batch)
    return sent


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError, OSError):
        return exc.reason if isinstance(exc.reason, str) else "an error"
