"""The CRDs reject bad specs at `kubectl apply` time with a clear message, and print useful columns."""

from __future__ import annotations

import json

import pytest
from opkit import KubeEnv, kubectl, unique

pytestmark = [pytest.mark.kube, pytest.mark.usefixtures("crds")]


def tenant_yaml(name: str, spec: dict[str, object]) -> str:
    return json.dumps(
        {"apiVersion": "vibexp.io/v1alpha1", "kind": "VibeXPTenant", "metadata": {"name": name}, "spec": spec}
    )


def apikey_yaml(name: str, spec: dict[str, object]) -> str:
    body = {"apiVersion": "vibexp.io/v1alpha1", "kind": "ApiKey", "metadata": {"name": name, "namespace": "default"}}
    return json.dumps({**body, "spec": spec})


def rejected(env: KubeEnv, manifest: str) -> str:
    proc = kubectl(env, "apply", "-f", "-", input=manifest, check=False)
    assert proc.returncode != 0, f"accepted: {manifest}"
    return proc.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"tier": "gold"}, 'spec.tier: Unsupported value: "gold"'),
        ({"tier": "enterprise"}, "the enterprise tier needs spec.rateLimitPerHour"),
        ({"rateLimitPerHour": 0}, "spec.rateLimitPerHour: Invalid value: 0"),
        ({"allowedNamespaces": ["Not_A_Namespace"]}, "spec.allowedNamespaces[0]"),
        ({"suspended": "yes"}, "spec.suspended: Invalid value"),
    ],
)
def test_tenant_spec_validation(kube_env: KubeEnv, spec: dict[str, object], message: str) -> None:
    assert message in rejected(kube_env, tenant_yaml(unique("bad"), spec))


def test_tenant_name_must_be_a_tenant_name(kube_env: KubeEnv) -> None:
    assert "an RFC 1123 label" in rejected(kube_env, tenant_yaml("has.dots", {}))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "spec.tenant: Required value"),
        ({"tenant": "Acme Corp"}, "spec.tenant: Invalid value"),
        ({"tenant": "acme", "secretName": "Not A Name"}, "spec.secretName: Invalid value"),
        ({"tenant": "acme", "displayName": ""}, "spec.displayName"),
        ({"tenant": "acme", "expiresAt": "tomorrow"}, "spec.expiresAt"),
        ({"tenant": "acme", "rotation": {"everyDays": 0}}, "spec.rotation.everyDays"),
        ({"tenant": "acme", "rotation": {"gracePeriodSeconds": 2592001}}, "spec.rotation.gracePeriodSeconds"),
        (
            {"tenant": "acme", "secretTemplate": {"labels": {"app.kubernetes.io/managed-by": "me"}}},
            "may not set app.kubernetes.io/managed-by",
        ),
        ({"tenant": "acme", "secretTemplate": {"annotations": {"vibexp.io/key-id": "x"}}}, "may not set vibexp.io/*"),
    ],
)
def test_apikey_spec_validation(kube_env: KubeEnv, spec: dict[str, object], message: str) -> None:
    assert message in rejected(kube_env, apikey_yaml(unique("bad"), spec))


def test_apikey_immutable_fields_and_final_revocation(kube_env: KubeEnv) -> None:
    """Transition rules, checked on an object no operator serves (namespace default)."""
    name = unique("rules")
    spec = {"tenant": "nobody", "secretName": "s1", "revoked": True, "expiresAt": "2099-01-01T00:00:00Z"}
    kubectl(kube_env, "apply", "-f", "-", input=apikey_yaml(name, spec))
    try:
        assert "cannot be un-revoked" in rejected(kube_env, apikey_yaml(name, {**spec, "revoked": False}))
        assert "spec.secretName is immutable" in rejected(kube_env, apikey_yaml(name, {**spec, "secretName": "s2"}))
        assert "spec.expiresAt is immutable" in rejected(
            kube_env, apikey_yaml(name, {**spec, "expiresAt": "2098-01-01T00:00:00Z"})
        )
    finally:
        kubectl(kube_env, "delete", "apikey", name, "-n", "default", "--wait=false")


def test_printer_columns_and_short_names(kube_env: KubeEnv) -> None:
    columns = kubectl(kube_env, "get", "apikeys", "-A", "-o", "wide").stdout.splitlines()
    header = columns[0].split() if columns else []
    if header:  # no rows yet prints "No resources found" on stderr
        assert header[:8] == ["NAMESPACE", "NAME", "TENANT", "PREFIX", "STATUS", "READY", "LAST", "USED"]
    crd = json.loads(kubectl(kube_env, "get", "crd", "apikeys.vibexp.io", "-o", "json").stdout)
    names = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert names[:5] == ["Tenant", "Prefix", "Status", "Ready", "Last Used"] and "Age" in names
    assert "vak" in crd["spec"]["names"]["shortNames"]
    kubectl(kube_env, "get", "vxt")  # the tenant short name works
