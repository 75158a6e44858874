"""How the dashboard names each alert kind: one table over ``AlertKind`` (a human label, a severity, a one-line
summary of the alert's details). ``tests/dashboard/test_dashboard_alerts.py`` ties the table to the enum, so a new
kind cannot reach the page as a raw code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from vibexp.core.alerts.models import Alert, AlertKind
from vibexp.core.geo import country_name

__all__ = ["ALERT_KINDS", "AlertKindInfo", "Severity", "describe", "summary"]


class Severity(IntEnum):
    """Higher is worse; the page lists open alerts worst first."""

    low = 1
    medium = 2
    high = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @property
    def badge(self) -> str:
        """The CSS class of its badge (app.css's existing badges)."""
        return {Severity.low: "badge-revoked", Severity.medium: "badge-scope badge-full", Severity.high: "badge-alert"}[
            self
        ]


Details = Mapping[str, Any]


def _list(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value[:3]) + (f" and {len(value) - 3} more" if len(value) > 3 else "")
    return str(value)


def _from(details: Details, *names: str) -> str:
    """`` from 203.0.113.9`` for the first of ``names`` the details hold, else nothing."""
    for name in names:
        value = details.get(name)
        if value:
            return f" from {_list(value)}"
    return ""


def _new_network(d: Details) -> str:
    days = d.get("lookback_days")
    window = f" in the last {days} days" if days else ""
    return f"Used from network {d.get('network') or 'unknown'}{window}, new for this key" + (
        f" (address {d['client_ip']})" if d.get("client_ip") else ""
    )


def _new_country(d: Details) -> str:
    days = d.get("lookback_days")
    window = f" in the last {days} days" if days else ""
    code = d.get("country")
    place = f"{country_name(code) or code} ({code})" if code else "an unknown country"
    return f"Used from {place}{window}, new for this key" + (
        f" (address {d['client_ip']})" if d.get("client_ip") else ""
    )


def _request_spike(d: Details) -> str:
    rate, usual = d.get("requests_per_minute"), d.get("average_per_minute")
    if rate is None:
        return "Far more requests a minute than usual"
    return f"{rate} requests a minute" + (f", against a usual {usual}" if usual is not None else "")


def _failed_auth(d: Details) -> str:
    attempts = d.get("attempts")
    count = f"{attempts} refused" if attempts else "Refused"
    return f"{count} keys that share this key's prefix{_from(d, 'client_ips')}: someone may be guessing"


def _retired_key_used(d: Details) -> str:
    reason = str(d.get("reason") or "retired").replace("_", " ")
    return f"The key was presented after it was {reason}{_from(d, 'client_ip')}"


def _disallowed_address(d: Details) -> str:
    return f"The key was presented{_from(d, 'client_ips', 'client_ip')}, outside its allowed addresses"


def _after_hours(d: Details) -> str:
    when = f" at {d['local_time']}" if d.get("local_time") else ""
    hours = f" (working hours: {d['working_hours']})" if d.get("working_hours") else ""
    return f"Used{when}, outside working hours{hours}{_from(d, 'client_ip')}"


def _key_leaked(d: Details) -> str:
    where = f" in {d['url']}" if d.get("url") else ""
    by = f" by {d['reported_by']}" if d.get("reported_by") else ""
    return f"Reported as leaked{where}{by}; the key was revoked"


@dataclass(frozen=True, slots=True)
class AlertKindInfo:
    label: str
    severity: Severity
    summarise: Callable[[Details], str]


ALERT_KINDS: dict[AlertKind, AlertKindInfo] = {
    AlertKind.new_network: AlertKindInfo("Used from a new network", Severity.medium, _new_network),
    AlertKind.new_country: AlertKindInfo("Used from a new country", Severity.high, _new_country),
    AlertKind.request_spike: AlertKindInfo("Spike of requests", Severity.medium, _request_spike),
    # Low: anyone who saw the key's public prefix can raise it (it never revokes a key: AUTO_REVOCABLE).
    AlertKind.failed_auth: AlertKindInfo("Failed authentications", Severity.low, _failed_auth),
    AlertKind.retired_key_used: AlertKindInfo("Retired key used", Severity.high, _retired_key_used),
    AlertKind.disallowed_address: AlertKindInfo("Used from a disallowed address", Severity.high, _disallowed_address),
    AlertKind.after_hours: AlertKindInfo("Used after working hours", Severity.low, _after_hours),
    AlertKind.key_leaked: AlertKindInfo("Key leaked", Severity.high, _key_leaked),
}

_UNKNOWN = AlertKindInfo("Unknown alert", Severity.medium, lambda d: "")


def describe(kind: str) -> AlertKindInfo:
    """The kind's row; a kind this version does not know (a newer server wrote it) still gets a readable row."""
    try:
        return ALERT_KINDS[AlertKind(kind)]
    except ValueError:
        return AlertKindInfo(kind.replace("_", " ").capitalize(), _UNKNOWN.severity, _UNKNOWN.summarise)


def summary(alert: Alert) -> str:
    """One line on what was seen; details an old alert lacks are left out, never shown as ``None``."""
    text = describe(alert.kind).summarise(alert.details or {})
    if (alert.details or {}).get("auto_revoked") and "revoked" not in text:
        text += "; the key was revoked automatically"
    if alert.grant_id is not None:  # the summaries speak of "the key"; a connected app's alert names what it is
        text = text.replace("this key", "this connected app").replace("the key was", "the connected app was")
    return text
