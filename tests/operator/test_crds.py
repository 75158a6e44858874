"""The CRDs reject bad specs at `kubectl apply` time with a clear message, and print useful columns."""

from __future__ import annotations

import json

import httpx
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
        (
            {"alerts": {"autoRevokeOn": ["key_leaked", "bogus"]}},
            'spec.alerts.autoRevokeOn[1]: Unsupported value: "bogus"',
        ),
        # A forged key with a key's public display prefix raises failed_auth: it must not be able to revoke the key.
        (
            {"alerts": {"autoRevokeOn": ["failed_auth"]}},
            'spec.alerts.autoRevokeOn[0]: Unsupported value: "failed_auth"',
        ),
        (
            {"alerts": {"autoRevokeOn": ["key_leaked", "failed_auth"]}},
            'spec.alerts.autoRevokeOn[1]: Unsupported value: "failed_auth"',
        ),
        ({"alerts": {"webhookUrl": "ftp://hooks.example.com/x"}}, "spec.alerts.webhookUrl: Invalid value"),
        ({"alerts": {"webhookUrl": "hooks.example.com"}}, "spec.alerts.webhookUrl: Invalid value"),
        ({"alerts": {"webhookSecretRef": {"name": "hook"}}}, "spec.alerts.webhookSecretRef.key: Required value"),
        ({"alerts": {"workingHours": "x" * 101}}, "spec.alerts.workingHours: Too long"),
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


@pytest.mark.parametrize("field", ["secretName", "expiresAt"])
def test_immutable_fields_cannot_be_added_or_removed(kube_env: KubeEnv, kube_admin: httpx.Client, field: str) -> None:
    """`self == oldSelf` on the field does not run when it appears or disappears; the spec-level rule does.
    Both ways, with `kubectl apply` and with a merge patch through the API."""
    value = {"secretName": "late-secret", "expiresAt": "2099-01-01T00:00:00Z"}[field]
    message = f"spec.{field} cannot be added or removed after creation"
    without, with_field = unique("without"), unique("with")
    kubectl(kube_env, "apply", "-f", "-", input=apikey_yaml(without, {"tenant": "nobody"}))
    kubectl(kube_env, "apply", "-f", "-", input=apikey_yaml(with_field, {"tenant": "nobody", field: value}))
    base = "/apis/vibexp.io/v1alpha1/namespaces/default/apikeys"
    merge = {"Content-Type": "application/merge-patch+json"}
    try:
        # Adding: kubectl apply, then the API.
        assert message in rejected(kube_env, apikey_yaml(without, {"tenant": "nobody", field: value}))
        resp = kube_admin.patch(f"{base}/{without}", json={"spec": {field: value}}, headers=merge)
        assert resp.status_code == 422 and message in resp.text
        # Removing: kubectl apply (the field left out of the manifest), then the API (null in a merge patch).
        assert message in rejected(kube_env, apikey_yaml(with_field, {"tenant": "nobody"}))
        resp = kube_admin.patch(f"{base}/{with_field}", json={"spec": {field: None}}, headers=merge)
        assert resp.status_code == 422 and message in resp.text
        # Other changes still go through.
        resp = kube_admin.patch(f"{base}/{with_field}", json={"spec": {"description": "ok"}}, headers=merge)
        assert resp.status_code == 200, resp.text
        assert kube_admin.get(f"{base}/{with_field}").json()["spec"][field] == value
        assert field not in kube_admin.get(f"{base}/{without}").json()["spec"]
    finally:
        for name in (without, with_field):
            kubectl(kube_env, "delete", "apikey", name, "-n", "default", "--wait=false")


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("k" * 64, {"tenant": "acme"}, "an ApiKey name is at most 63 characters"),
        (
            "bad-label-key",
            {"tenant": "acme", "secretTemplate": {"labels": {"not a key": "x"}}},
            "must be valid label keys",
        ),
        (
            "bad-label-key2",
            {"tenant": "acme", "secretTemplate": {"labels": {"a/b/c": "x"}}},
            "must be valid label keys",
        ),
        (
            "bad-label-value",
            {"tenant": "acme", "secretTemplate": {"labels": {"team": "two words"}}},
            "secretTemplate.labels.team",
        ),
        (
            "long-label-value",
            {"tenant": "acme", "secretTemplate": {"labels": {"team": "x" * 64}}},
            "secretTemplate.labels.team",
        ),
        (
            "bad-annotation-key",
            {"tenant": "acme", "secretTemplate": {"annotations": {"-x": "y"}}},
            "must be valid annotation keys",
        ),
        (
            "big-annotation",
            {"tenant": "acme", "secretTemplate": {"annotations": {"notes": "x" * 2049}}},
            "secretTemplate.annotations.notes",
        ),
    ],
)
def test_specs_the_operator_cannot_build_are_refused(
    kube_env: KubeEnv, name: str, spec: dict[str, object], message: str
) -> None:
    assert message in rejected(kube_env, apikey_yaml(name, spec))


def test_valid_label_and_annotation_keys_are_accepted(kube_env: KubeEnv) -> None:
    name = unique("keys")
    template = {
        "labels": {"team": "a", "example.com/owner": "b_c.d", "x": ""},
        "annotations": {"example.com/notes": "free text, spaces and all", "a.b-c/d_e.f": "1"},
    }
    kubectl(kube_env, "apply", "-f", "-", input=apikey_yaml(name, {"tenant": "acme", "secretTemplate": template}))
    kubectl(kube_env, "delete", "apikey", name, "-n", "default", "--wait=false")


def test_possession_kinds_may_auto_revoke_and_alerts_write_is_a_scope(kube_env: KubeEnv) -> None:
    """The kinds that prove possession of the key are accepted in autoRevokeOn; alerts:write is a key scope."""
    tenant = unique("revoke")
    kinds = ["disallowed_address", "retired_key_used", "key_leaked"]
    kubectl(kube_env, "apply", "-f", "-", input=tenant_yaml(tenant, {"alerts": {"autoRevokeOn": kinds}}))
    kubectl(kube_env, "delete", "vibexptenant", tenant, "--wait=false")
    key = unique("ack")
    kubectl(kube_env, "apply", "-f", "-", input=apikey_yaml(key, {"tenant": "acme", "scopes": ["alerts:write"]}))
    kubectl(kube_env, "delete", "apikey", key, "-n", "default", "--wait=false")
