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
from collections.abc import Mapping
from typing import Any

from vibexp.core.keys.tokens import hash_key
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

__all__ = ["build_secret", "holds_key", "is_owned_by", "metadata_drift", "secret_plaintext"]


def is_owned_by(secret: Mapping[str, Any], uid: str) -> bool:
    refs = (secret.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in refs)


def secret_plaintext(secret: Mapping[str, Any]) -> str | None:
    encoded = (secret.get("data") or {}).get(SECRET_DATA_KEY)
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("ascii").strip()
    except (binascii.Error, UnicodeDecodeError):
        return None


def holds_key(secret: Mapping[str, Any], key_hash: str) -> bool:
    """Does the Secret still deliver the key with this hash (compared in constant time)?"""
    plaintext = secret_plaintext(secret)
    return plaintext is not None and hmac.compare_digest(hash_key(plaintext), key_hash)


def _labels(apikey: Mapping[str, Any]) -> dict[str, str]:
    meta, spec = apikey["metadata"], apikey.get("spec") or {}
    template = (spec.get("secretTemplate") or {}).get("labels") or {}
    return {**template, LABEL_MANAGED_BY: MANAGER, LABEL_APIKEY: meta["name"], LABEL_TENANT: spec.get("tenant", "")}


def _annotations(apikey: Mapping[str, Any], *, key_id: str, prefix: str, rotation: int, trigger: str) -> dict[str, str]:
    template = ((apikey.get("spec") or {}).get("secretTemplate") or {}).get("annotations") or {}
    return {**template, ANN_KEY_ID: key_id, ANN_KEY_PREFIX: prefix, ANN_ROTATION: str(rotation), ANN_TRIGGER: trigger}


def build_secret(
    apikey: Mapping[str, Any], *, name: str, plaintext: str, key_id: str, prefix: str, rotation: int, trigger: str
) -> dict[str, Any]:
    meta = apikey["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": _labels(apikey),
            "annotations": _annotations(apikey, key_id=key_id, prefix=prefix, rotation=rotation, trigger=trigger),
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "ApiKey",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {SECRET_DATA_KEY: base64.b64encode(plaintext.encode("ascii")).decode("ascii")},
    }


def metadata_drift(apikey: Mapping[str, Any], secret: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch bringing the Secret's labels/annotations in line with ``secretTemplate``, or None."""
    meta = secret.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    want_labels = _labels(apikey)
    template_ann = ((apikey.get("spec") or {}).get("secretTemplate") or {}).get("annotations") or {}
    patch: dict[str, Any] = {}
    if any(labels.get(k) != v for k, v in want_labels.items()):
        patch["labels"] = want_labels
    if any(annotations.get(k) != v for k, v in template_ann.items()):
        patch["annotations"] = template_ann
    return {"metadata": patch} if patch else None
