"""Proof that the test environment is a real kube-apiserver: CRDs, CRUD, watch, validation, kubectl, RBAC."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from kube_testenv import KubeEnv

from kube.conftest import crd_established

pytestmark = pytest.mark.kube

GROUP, VERSION, PLURAL = "testenv.vibexp.io", "v1", "widgets"
WIDGETS = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}

# A small CRD of our own (not a product CRD): spec.size is a required integer in [1, 10].
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "green", "blue"]},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def widget(name: str, size: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size, **spec},
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def widget_crd(kube_admin: httpx.Client) -> Iterator[None]:
    """Install the CRD and wait until it is Established and served in discovery."""
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    resp = kube_admin.post(crds, json=WIDGET_CRD)
    assert resp.status_code == 201, resp.text

    wait_until(lambda: crd_established(kube_admin, f"{PLURAL}.{GROUP}"), "CRD Established")
    wait_until(lambda: kube_admin.get(f"/apis/{GROUP}/{VERSION}").status_code == 200, "CRD discovery")
    yield
    assert kube_admin.delete(f"{crds}/{PLURAL}.{GROUP}").status_code == 200


def test_server_is_real_kube_apiserver(kube_env: KubeEnv, kube_admin: httpx.Client) -> None:
    assert kube_env.server.startswith("https://127.0.0.1:")
    version = kube_admin.get("/version").json()
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")
    assert kube_admin.get("/readyz").text == "ok"
    # The admin identity is the client cert: CN=admin in group system:masters.
    review = kube_admin.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    user = review.json()["status"]["userInfo"]
    assert user["username"] == "admin" and "system:masters" in user["groups"]


@pytest.mark.usefixtures("widget_crd")
def test_crd_served_in_discovery(kube_admin: httpx.Client) -> None:
    groups = kube_admin.get("/apis").json()["groups"]
    assert GROUP in [g["name"] for g in groups]
    resources = kube_admin.get(f"/apis/{GROUP}/{VERSION}").json()["resources"]
    widgets = next(r for r in resources if r["name"] == PLURAL)
    assert widgets["kind"] == "Widget" and widgets["namespaced"] is True
    assert {"create", "list", "patch", "delete", "watch"} <= set(widgets["verbs"])


@pytest.mark.usefixtures("widget_crd")
def test_custom_object_create_list_patch_delete(kube_admin: httpx.Client) -> None:
    name = unique("crud")
    created = kube_admin.post(WIDGETS, json=widget(name, size=2, color="red"))
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["uid"]

    names = [w["metadata"]["name"] for w in kube_admin.get(WIDGETS).json()["items"]]
    assert name in names

    patched = kube_admin.patch(f"{WIDGETS}/{name}", json={"spec": {"size": 7}}, headers=MERGE_PATCH)
    assert patched.status_code == 200, patched.text
    assert patched.json()["spec"] == {"size": 7, "color": "red"}
    assert patched.json()["metadata"]["generation"] == 2

    assert kube_admin.delete(f"{WIDGETS}/{name}").status_code == 200
    assert kube_admin.get(f"{WIDGETS}/{name}").status_code == 404


@pytest.mark.usefixtures("widget_crd")
def test_watch_receives_added_modified_deleted(kube_env: KubeEnv, kube_admin: httpx.Client) -> None:
    name = unique("watched")
    events: list[tuple[str, str, int | None]] = []
    params = {"watch": "true", "fieldSelector": f"metadata.name={name}", "timeoutSeconds": "30"}
    with kube_admin.stream("GET", WIDGETS, params=params, timeout=40) as stream:
        assert stream.status_code == 200
        # The watch is registered once the headers are back; mutate over a second connection.
        with httpx.Client(base_url=kube_env.server, verify=kube_env.ssl_context(), timeout=30) as other:
            assert other.post(WIDGETS, json=widget(name)).status_code == 201
            patch = {"spec": {"size": 9}}
            assert other.patch(f"{WIDGETS}/{name}", json=patch, headers=MERGE_PATCH).status_code == 200
            assert other.delete(f"{WIDGETS}/{name}").status_code == 200
        for line in stream.iter_lines():
            event = json.loads(line)
            obj = event["object"]
            events.append((event["type"], obj["metadata"]["name"], obj["spec"]["size"]))
            if event["type"] == "DELETED":
                break
    assert events == [("ADDED", name, 3), ("MODIFIED", name, 9), ("DELETED", name, 9)]


@pytest.mark.usefixtures("widget_crd")
def test_schema_validation_rejects_invalid_object(kube_admin: httpx.Client) -> None:
    bad = widget(unique("bad"), size=42, color="purple")
    bad["spec"]["size"] = "big"  # wrong type
    resp = kube_admin.post(WIDGETS, json=bad)
    assert resp.status_code == 422, resp.text
    status = resp.json()
    assert status["reason"] == "Invalid"
    fields = {c["field"] for c in status["details"]["causes"]}
    assert {"spec.size", "spec.color"} <= fields

    missing = widget(unique("bad"))
    del missing["spec"]["size"]
    resp = kube_admin.post(WIDGETS, json=missing)
    assert resp.status_code == 422 and "spec.size: Required value" in resp.json()["message"]

    too_big = kube_admin.post(WIDGETS, json=widget(unique("bad"), size=11))
    assert too_big.status_code == 422 and "spec.size" in too_big.json()["message"]


@pytest.mark.usefixtures("widget_crd")
def test_kubectl_gets_the_object(kube_env: KubeEnv, kube_admin: httpx.Client) -> None:
    name = unique("kubectl")
    assert kube_admin.post(WIDGETS, json=widget(name, size=5, color="blue")).status_code == 201
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(kube_env.kubeconfig), "get", f"{PLURAL}.{GROUP}", name, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    obj = json.loads(out)
    assert obj["kind"] == "Widget" and obj["spec"] == {"size": 5, "color": "blue"}
    assert kube_admin.delete(f"{WIDGETS}/{name}").status_code == 200


@pytest.mark.usefixtures("widget_crd")
def test_service_account_token_is_denied_until_rbac_grants(kube_env: KubeEnv, kube_admin: httpx.Client) -> None:
    ns = unique("rbac")  # namespaces never finish deleting here (no controller-manager): leave it
    assert kube_admin.post("/api/v1/namespaces", json={"metadata": {"name": ns}}).status_code == 201
    sa = {"metadata": {"name": "robot"}}
    assert kube_admin.post(f"/api/v1/namespaces/{ns}/serviceaccounts", json=sa).status_code == 201
    assert kube_admin.post(f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}", json=widget("w1")).status_code == 201

    # TokenRequest API: a short-lived, audience-bound token signed with --service-account-signing-key-file.
    req = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600},
    }
    resp = kube_admin.post(f"/api/v1/namespaces/{ns}/serviceaccounts/robot/token", json=req)
    assert resp.status_code == 201, resp.text
    token = resp.json()["status"]["token"]

    robot_widgets = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(
        base_url=kube_env.server, verify=kube_env.ssl_context(admin=False), headers=headers, timeout=30
    ) as robot:
        who = robot.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        assert who.json()["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:robot"

        denied = robot.get(robot_widgets)
        assert denied.status_code == 403, denied.text
        assert denied.json()["reason"] == "Forbidden"

        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
        role = {
            "metadata": {"name": "widget-reader"},
            "rules": [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list"]}],
        }
        binding = {
            "metadata": {"name": "robot-reads-widgets"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "widget-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": ns}],
        }
        assert kube_admin.post(f"{rbac}/roles", json=role).status_code == 201
        assert kube_admin.post(f"{rbac}/rolebindings", json=binding).status_code == 201

        # The RBAC authorizer reads from an informer cache: allow it a moment to see the binding.
        wait_until(lambda: robot.get(robot_widgets).status_code == 200, "RoleBinding to take effect")
        assert [w["metadata"]["name"] for w in robot.get(robot_widgets).json()["items"]] == ["w1"]
        # Only get/list were granted: writing is still forbidden, and so is another namespace.
        assert robot.post(robot_widgets, json=widget("w2")).status_code == 403
        assert robot.get(WIDGETS).status_code == 403
