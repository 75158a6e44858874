"""The CRDs' enums are hand-written YAML (crds/, copied into the chart by `make manifests`): each is tied here to the
list in the code it must equal, so a scope or an alert kind added to one and not the other fails the suite (no
kube-apiserver needed: the files are read as they are)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vibexp.core.access import SCOPE_NAMES
from vibexp.core.alerts.models import AUTO_REVOCABLE, AlertKind
from vibexp.core.tenants.tiers import Tier

CRDS = Path(__file__).resolve().parents[2] / "crds"


def spec_schema(filename: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / filename).read_text())
    (version,) = crd["spec"]["versions"]
    properties: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    return properties


def test_the_apikey_scopes_enum_is_every_scope_name() -> None:
    scopes = spec_schema("vibexp.io_apikeys.yaml")["scopes"]
    enum = scopes["items"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == {str(name) for name in SCOPE_NAMES}
    assert scopes["maxItems"] == len(SCOPE_NAMES)


def test_the_tenant_auto_revoke_enum_is_every_auto_revocable_alert_kind() -> None:
    auto_revoke = spec_schema("vibexp.io_vibexptenants.yaml")["alerts"]["properties"]["autoRevokeOn"]
    enum = auto_revoke["items"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == {kind.value for kind in AUTO_REVOCABLE}
    assert AlertKind.failed_auth.value not in enum  # anyone who knows a display prefix can raise it
    assert auto_revoke["maxItems"] == len(AUTO_REVOCABLE)


def test_the_tenant_tier_enum_is_every_tier() -> None:
    tier = spec_schema("vibexp.io_vibexptenants.yaml")["tier"]
    assert tier["enum"] == [t.value for t in Tier]
    assert tier["default"] == Tier.free.value
