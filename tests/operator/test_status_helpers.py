"""The pure pieces the reconcilers rely on to avoid hot loops and to recognise their own Secrets."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime

from kubernetes_asyncio.client import V1ObjectMeta, V1OwnerReference, V1Secret

from vibexp.core.keys.tokens import generate_key, hash_key
from vibexp.operator.models import ApiKeySpec, SecretTemplate
from vibexp.operator.secrets import (
    SecretMetadata,
    build_secret,
    holds_key,
    is_owned_by,
    metadata_current,
    secret_trigger,
)
from vibexp.operator.status import ReadyState, ready_condition, status_patch

APIKEY = ApiKeySpec.from_body(
    {
        "metadata": {"name": "k", "namespace": "ns", "uid": "u-1"},
        "spec": {"tenant": "acme", "secretTemplate": {"labels": {"team": "a"}, "annotations": {"owner": "me"}}},
    }
)


def test_status_patch_is_empty_when_nothing_changed() -> None:
    current = {"phase": "Active", "requestCount": 3, "rotation": {"count": 0}, "lastUsedAt": None}
    assert status_patch(current, {"phase": "Active", "requestCount": 3, "rotation": {"count": 0, "x": None}}) == {}


def test_status_patch_sends_changes_and_removals() -> None:
    current = {"phase": "Active", "keyId": "a", "rotation": {"count": 1, "previousKeyId": "p"}}
    patch = status_patch(current, {"phase": "Revoked", "keyId": None, "rotation": {"count": 1}})
    assert patch == {"phase": "Revoked", "keyId": None, "rotation": {"previousKeyId": None, "count": 1}}


def test_transition_time_moves_only_when_status_flips() -> None:
    before = {"type": "Ready", "status": "False", "reason": "A", "lastTransitionTime": "2020-01-01T00:00:00Z"}
    same = ready_condition(ReadyState(False, "B", "m"), generation=2, previous=before)
    assert same["lastTransitionTime"] == "2020-01-01T00:00:00Z" and same["reason"] == "B"
    flipped = ready_condition(ReadyState(True, "KeyReady", "m"), generation=2, previous=before)
    assert flipped["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert datetime.strptime(flipped["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_secret_ownership_and_content() -> None:
    key = generate_key()
    want = SecretMetadata(APIKEY, key_id="id", prefix=key[:12], rotation=0)
    secret = build_secret(APIKEY, plaintext=key, want=want, resource_version=None)
    assert is_owned_by(secret, "u-1") and not is_owned_by(secret, "u-2")
    foreign = V1Secret(
        metadata=V1ObjectMeta(owner_references=[V1OwnerReference(api_version="v1", kind="ApiKey", name="k", uid="u-1")])
    )
    assert not is_owned_by(foreign, "u-1")
    assert holds_key(secret, hash_key(key)) and not holds_key(secret, hash_key(generate_key()))
    assert base64.b64decode(secret.data["apiKey"]).decode() == key
    labels = secret.metadata.labels
    assert labels["app.kubernetes.io/managed-by"] == "vibexp-operator" and labels["team"] == "a"
    assert metadata_current(secret, want, trigger="")
    changed = dataclasses.replace(APIKEY, template=SecretTemplate(labels={"team": "b"}))
    assert not metadata_current(secret, SecretMetadata(changed, key_id="id", prefix=key[:12], rotation=0), trigger="")


def test_lost_labels_and_annotations_are_not_current() -> None:
    key = generate_key()
    want = SecretMetadata(APIKEY, key_id="id", prefix=key[:12], rotation=0)
    secret = build_secret(APIKEY, plaintext=key, want=want, resource_version="7")
    secret.metadata.labels = {}
    assert not metadata_current(secret, want, trigger="")
    secret = build_secret(APIKEY, plaintext=key, want=want, resource_version="7")
    secret.metadata.annotations = {}
    assert secret_trigger(secret) is None and not metadata_current(secret, want, trigger=None)


def test_garbage_in_the_secret_is_not_the_key() -> None:
    assert not holds_key(V1Secret(data={"apiKey": "!!not base64!!"}), hash_key(generate_key()))
    assert not holds_key(V1Secret(data={}), hash_key(generate_key()))
