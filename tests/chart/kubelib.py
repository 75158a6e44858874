"""Small helpers for the chart tests that talk to the test kube-apiserver: kubectl, waiting, comparing objects."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from kube_testenv import KubeEnv

__all__ = [
    "create_namespace",
    "differences",
    "kubectl",
    "live_objects",
    "service_account_token",
    "token_kubeconfig",
    "wait_until",
]


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(interval)


def kubectl(env: KubeEnv, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", str(env.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def create_namespace(admin: httpx.Client, name: str) -> None:
    """Create it unless it exists (namespaces never finish deleting without a controller-manager)."""
    resp = admin.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert resp.status_code in (201, 409), resp.text


def live_objects(env: KubeEnv, manifest: str) -> list[dict[str, Any]]:
    """The server's copy of every object in a multi-document manifest (`kubectl get -f -`)."""
    out = kubectl(env, "get", "-f", "-", "-o", "json", stdin=manifest).stdout
    decoded = json.loads(out)
    items: list[dict[str, Any]] = decoded["items"] if decoded.get("kind") == "List" else [decoded]
    return items


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` (the server's object) lacks or changed something `expected` (the rendered one) says.

    Maps: every expected key must be there with a matching value (the server may add defaults). Lists: same length,
    item by item. Scalars: equal. A field the server pruned (unknown to its schema) shows up as missing.
    """
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{path or '.'}: expected a map, the server has {actual!r}"]
        found: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                if value not in (None, {}, []):
                    found.append(f"{path}.{key}: missing on the server (pruned or dropped)")
                continue
            found += differences(value, actual[key], f"{path}.{key}")
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, the server has {actual!r}"]
        return [
            d for i, (e, a) in enumerate(zip(expected, actual, strict=True)) for d in differences(e, a, f"{path}[{i}]")
        ]
    if expected != actual:
        return [f"{path}: rendered {expected!r}, the server has {actual!r}"]
    return []


def service_account_token(admin: httpx.Client, namespace: str, name: str, seconds: int = 3600) -> str:
    """A TokenRequest token for the ServiceAccount, as the kubelet would project into its pod."""
    req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}}
    resp = admin.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", json=req)
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["status"]["token"]
    return token


def token_kubeconfig(env: KubeEnv, token: str, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates with the bearer token alone; its namespace stands in for the pod's."""
    ca = base64.b64encode(env.ca_file.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {"server": env.server, "certificate-authority-data": ca}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "testenv", "user": "sa", "namespace": namespace}}],
        "current-context": "sa",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path
