"""The Secret that delivers a key: how it looks, whether the operator owns it, whether it still holds the key.

Ownership (decided here, documented in the operator notes): the operator writes a Secret only when it is absent or
controlled by *this* ApiKey (an owner reference with ``controller: true`` and the ApiKey's uid). The owner
reference lets Kubernetes' garbage collector remove the Secret with its ApiKey; the operator also deletes it
itself when the key is revoked or the ApiKey deleted, so nothing depends on the collector (envtest has none).
Labels ``app.kubernetes.io/managed-by: vibexp-operator`` and ``vibexp.io/apikey`` say who manages it; a Secret
without our owner reference is never overwritten, whatever its labels say.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from kubernetes_asyncio.client import V1ObjectMeta, V1OwnerReference, V1Secret

from vibexp.core.keys.tokens import hash_key
from vibexp.operator.models import ApiKeySpec
from vibexp.operator.resources import (
    ANN_KEY_ID,
    ANN_KEY_PREFIX,
    ANN_ROTATION,
    ANN_TRIGGER,
    GROUP,
    LABEL_APIKEY,
    LABEL_MANAGED_BY,
    LABEL_TENANT,
    MANAGER,
    SECRET_DATA_KEY,
    VERSION,
)

__all__ = [
    "SecretMetadata",
    "build_secret",
    "holds_key",
    "is_owned_by",
    "metadata_current",
    "secret_plaintext",
    "secret_trigger",
]


def is_owned_by(secret: V1Secret, uid: str) -> bool:
    refs = (secret.metadata.owner_references if secret.metadata else None) or []
    return any(ref.uid == uid and ref.controller for ref in refs)


def secret_plaintext(secret: V1Secret) -> str | None:
    encoded = (secret.data or {}).get(SECRET_DATA_KEY)
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("ascii").strip()
    except (binascii.Error, UnicodeDecodeError):
        return None


def holds_key(secret: V1Secret, key_hash: str) -> bool:
    """Does the Secret still deliver the key with this hash (compared in constant time)?"""
    plaintext = secret_plaintext(secret)
    return plaintext is not None and hmac.compare_digest(hash_key(plaintext), key_hash)


def secret_trigger(secret: V1Secret) -> str | None:
    """The rotation request the Secret's key satisfies; None when someone removed the annotation."""
    annotations = (secret.metadata.annotations if secret.metadata else None) or {}
    value = annotations.get(ANN_TRIGGER)
    return None if value is None else str(value)


class SecretMetadata:
    """The labels and annotations the operator wants on an ApiKey's Secret for its current key."""

    def __init__(self, spec: ApiKeySpec, *, key_id: str, prefix: str, rotation: int) -> None:
        self.labels = {
            **spec.template.labels,
            LABEL_MANAGED_BY: MANAGER,
            LABEL_APIKEY: spec.name,
            LABEL_TENANT: spec.tenant,
        }
        self.annotations = {
            **spec.template.annotations,
            ANN_KEY_ID: key_id,
            ANN_KEY_PREFIX: prefix,
            ANN_ROTATION: str(rotation),
            ANN_TRIGGER: spec.rotation.trigger,
        }


def metadata_current(secret: V1Secret, want: SecretMetadata, *, trigger: str | None) -> bool:
    """Do the Secret's labels and annotations include what the operator wants (the trigger as it is, if any)?"""
    labels = (secret.metadata.labels if secret.metadata else None) or {}
    annotations = (secret.metadata.annotations if secret.metadata else None) or {}
    wanted_annotations = {
        **want.annotations,
        ANN_TRIGGER: trigger if trigger is not None else want.annotations[ANN_TRIGGER],
    }
    return all(labels.get(k) == v for k, v in want.labels.items()) and all(
        annotations.get(k) == v for k, v in wanted_annotations.items()
    )


def build_secret(spec: ApiKeySpec, *, plaintext: str, want: SecretMetadata, resource_version: str | None) -> V1Secret:
    return V1Secret(
        api_version="v1",
        kind="Secret",
        type="Opaque",
        metadata=V1ObjectMeta(
            name=spec.secret_name,
            namespace=spec.namespace,
            labels=dict(want.labels),
            annotations=dict(want.annotations),
            resource_version=resource_version,
            owner_references=[
                V1OwnerReference(
                    api_version=f"{GROUP}/{VERSION}",
                    kind="ApiKey",
                    name=spec.name,
                    uid=spec.uid,
                    controller=True,
                    block_owner_deletion=True,
                )
            ],
        ),
        data={SECRET_DATA_KEY: base64.b64encode(plaintext.encode("ascii")).decode("ascii")},
    )
