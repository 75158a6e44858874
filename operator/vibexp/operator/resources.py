"""Names shared by the handlers: the API group, resource paths, and the labels/annotations the operator owns."""

from __future__ import annotations

from urllib.parse import quote

__all__ = [
    "ANN_KEY_ID",
    "ANN_KEY_PREFIX",
    "ANN_ROTATION",
    "ANN_TRIGGER",
    "APIKEYS",
    "FINALIZER",
    "GROUP",
    "LABEL_APIKEY",
    "LABEL_MANAGED_BY",
    "LABEL_TENANT",
    "MANAGER",
    "SECRET_DATA_KEY",
    "TENANTS",
    "VERSION",
    "apikey_path",
    "apikeys_path",
    "external_ref",
    "secret_path",
    "tenant_path",
]

GROUP = "vibexp.io"
VERSION = "v1alpha1"
APIKEYS = "apikeys"
TENANTS = "vibexptenants"
FINALIZER = "vibexp.io/revoke-key"

SECRET_DATA_KEY = "apiKey"  # noqa: S105 - the data key name, not a secret
MANAGER = "vibexp-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_APIKEY = "vibexp.io/apikey"
LABEL_TENANT = "vibexp.io/tenant"
ANN_KEY_ID = "vibexp.io/key-id"
ANN_KEY_PREFIX = "vibexp.io/key-prefix"
#: Which rotation request (spec.rotation.trigger) the key in this Secret satisfies. Written in the same step as the
#: key, so a crash between minting and the status patch never makes the operator rotate twice for one request.
ANN_TRIGGER = "vibexp.io/rotation-trigger"
ANN_ROTATION = "vibexp.io/rotation"


def _q(name: str) -> str:
    return quote(name, safe="")


def apikeys_path(namespace: str | None = None) -> str:
    if namespace is None:
        return f"/apis/{GROUP}/{VERSION}/{APIKEYS}"
    return f"/apis/{GROUP}/{VERSION}/namespaces/{_q(namespace)}/{APIKEYS}"


def apikey_path(namespace: str, name: str, *, status: bool = False) -> str:
    return f"{apikeys_path(namespace)}/{_q(name)}" + ("/status" if status else "")


def tenant_path(name: str, *, status: bool = False) -> str:
    return f"/apis/{GROUP}/{VERSION}/{TENANTS}/{_q(name)}" + ("/status" if status else "")


def secret_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{_q(namespace)}/secrets"
    return base if name is None else f"{base}/{_q(name)}"


def external_ref(uid: str, rotation: int) -> str:
    """The idempotency reference of an ApiKey's n-th key: one record per (object, rotation), ever."""
    return f"k8s:{uid}:{rotation}"
