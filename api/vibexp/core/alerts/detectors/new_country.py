"""**new_country**: the registered country of each event's client address (``vibexp.core.geo``: offline RIR data, cached
per address), per key (table ``key_countries``) or OAuth grant (``grant_countries``). A country the credential has
not used in ``new_country_days`` days (30) is an alert; its first country ever is not, nor is an address with no
country (private, loopback, link-local, unregistered). Raised once per new country: the SELECT, the upsert and the
rule are :class:`~.new_place.NewPlace`'s, as for ``new_network``."""

from __future__ import annotations

from vibexp.core.access import CredentialKind
from vibexp.core.alerts.detectors.base import DetectorLimits
from vibexp.core.alerts.detectors.new_place import NewPlace
from vibexp.core.alerts.models import AlertKind, GrantCountry, KeyCountry
from vibexp.core.geo import country_of

__all__ = ["NewCountry"]


class NewCountry(NewPlace):
    kind = AlertKind.new_country
    models = {CredentialKind.api_key: KeyCountry, CredentialKind.grant: GrantCountry}
    column = "country"

    @staticmethod
    def place_of(client_ip: str | None) -> str | None:
        return country_of(client_ip)

    def lookback_days(self, limits: DetectorLimits) -> int:
        return limits.new_country_days
