"""The chart's operator RBAC is enough, and no more: the operator runs as the chart's ServiceAccount.

The chart is installed into the RBAC-enabled test kube-apiserver; a TokenRequest token for the operator's
ServiceAccount goes into a kubeconfig of its own (the bearer token alone: the same identity a pod would have), and
a real `vibexp operator` runs with it against PostgreSQL, next to a real `vibexp serve` on the same database. It
completes an ApiKey's lifecycle (tenant + ApiKey -> Secret whose key the API accepts -> delete -> key refused)
with no permission error in its log. The same token is then refused (403) every Secret and object the chart does
not grant. Both RBAC shapes are exercised: namespaced (operator.watchNamespaces) and cluster-wide (the default).
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kube_testenv import KubeEnv
from kubelib import create_namespace, kubectl, service_account_token, token_kubeconfig, wait_until

from helmlib import CHART, CRDS_SOURCE, Helm
from helpers.databases import create_postgres_database, drop_postgres_database
from helpers.servers import REPO, LiveServer, free_port
from vibexp.core.migrate import upgrade_async

pytestmark = [pytest.mark.kube, pytest.mark.postgres, pytest.mark.slow]

RELEASE, NS = "vx", "vibexp-system"
SA = "vx-vibexp-operator"  # <release>-vibexp-operator
SERVED, OTHER = "vibexp-served", "vibexp-other"
GROUP_VERSION = "vibexp.io/v1alpha1"
PERMISSION_ERRORS = ("Forbidden", "forbidden", "Not enough permissions")


class OperatorProcess:
    """`vibexp operator` with only the ServiceAccount's kubeconfig, as in its pod (the log is kept for failures)."""

    def __init__(self, kubeconfig: Path, database_url: str, log_path: Path, namespaces: list[str]) -> None:
        self.health_port = free_port()
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "VIBEXP_"))}
        env.update(
            KUBECONFIG=str(kubeconfig),
            VIBEXP_DATABASE_URL=database_url,
            VIBEXP_ENVIRONMENT="test",
            VIBEXP_AUTO_MIGRATE="false",
            VIBEXP_OPERATOR_SYNC_INTERVAL="2",
            VIBEXP_OPERATOR_RETRY_DELAY="1",
            VIBEXP_OPERATOR_HEALTH_HOST="127.0.0.1",
            VIBEXP_OPERATOR_HEALTH_PORT=str(self.health_port),
            VIBEXP_OPERATOR_METRICS_HOST="127.0.0.1",
            VIBEXP_OPERATOR_METRICS_PORT=str(free_port()),
        )
        args = [f"--namespace={ns}" for ns in namespaces]  # exactly what the chart's Deployment passes
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vibexp.cli", "operator", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        wait_until(self.healthy, "the operator's /healthz", timeout=60)

    def healthy(self) -> bool:
        assert self.proc.poll() is None, f"the operator exited:\n{self.log()}"
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def database_url_pg() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database: what the chart deploys against."""
    url = asyncio.run(create_postgres_database("vibexp_chart"))
    asyncio.run(upgrade_async(url))
    yield url
    asyncio.run(drop_postgres_database(url))


@pytest.fixture(scope="module")
def api(database_url_pg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(database_url_pg).start(tmp_path_factory.mktemp("api"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def release(kube_env: KubeEnv, kube_admin: httpx.Client) -> Iterator[Helm]:
    """The chart installed as release `vx` in vibexp-system, serving the namespace vibexp-served only."""
    for ns in (NS, SERVED, OTHER):
        create_namespace(kube_admin, ns)
    secret = {
        "metadata": {"name": "vibexp-database"},
        "stringData": {"url": "postgresql+asyncpg://x", "secret-key": "k"},
    }
    assert kube_admin.post(f"/api/v1/namespaces/{NS}/secrets", json=secret).status_code in (201, 409)
    for ns in (SERVED, OTHER):  # a Secret of someone else's in each namespace
        foreign = {"metadata": {"name": "someone-elses"}, "stringData": {"password": "hunter2"}}
        assert kube_admin.post(f"/api/v1/namespaces/{ns}/secrets", json=foreign).status_code in (201, 409)
    # The CRDs may be left (kept) by test_chart_install.py; apply them so this module also runs alone.
    kubectl(kube_env, "apply", "--server-side", "--force-conflicts", "-f", str(CRDS_SOURCE))
    for crd in ("apikeys.vibexp.io", "vibexptenants.vibexp.io"):
        kubectl(kube_env, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    helm = Helm(kubeconfig=kube_env.kubeconfig)
    values = {"crds": {"enabled": False}, "dashboard": {"enabled": False}, "operator": {"watchNamespaces": [SERVED]}}
    helm.run("install", RELEASE, str(CHART), "--namespace", NS, "--no-hooks", *helm.values_file(values))
    yield helm
    helm.run("uninstall", RELEASE, "--namespace", NS)


@pytest.fixture(scope="module")
def sa_kubeconfig(
    release: Helm, kube_env: KubeEnv, kube_admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    token = service_account_token(kube_admin, NS, SA)
    return token_kubeconfig(kube_env, token, NS, tmp_path_factory.mktemp("sa") / "kubeconfig")


@pytest.fixture(scope="module")
def as_operator(sa_kubeconfig: Path, kube_env: KubeEnv, kube_admin: httpx.Client) -> Iterator[httpx.Client]:
    """An HTTP client holding the operator ServiceAccount's token (and nothing else)."""
    token = service_account_token(kube_admin, NS, SA)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(
        base_url=kube_env.server, verify=kube_env.ssl_context(admin=False), headers=headers, timeout=30
    ) as client:
        who = client.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        assert who.json()["status"]["userInfo"]["username"] == f"system:serviceaccount:{NS}:{SA}"
        yield client


def api_status(api: LiveServer, key: str) -> int:
    return httpx.get(f"{api.url}/api/v1/prompts", headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code


def apikey_lifecycle(kube_admin: httpx.Client, api: LiveServer, operator: OperatorProcess, namespace: str) -> None:
    """Tenant + ApiKey -> Secret with a working key -> ApiKey deleted -> key refused and Secret gone."""
    tenant, name = f"acme-{uuid.uuid4().hex[:8]}", "ci-key"
    tenants = f"/apis/{GROUP_VERSION}/vibexptenants"
    apikeys = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/apikeys"
    secret_url = f"/api/v1/namespaces/{namespace}/secrets/{name}"
    body: dict[str, Any] = {
        "apiVersion": GROUP_VERSION,
        "kind": "VibeXPTenant",
        "metadata": {"name": tenant},
        "spec": {"tier": "pro", "allowedNamespaces": [namespace]},
    }
    assert kube_admin.post(tenants, json=body).status_code == 201
    body = {
        "apiVersion": GROUP_VERSION,
        "kind": "ApiKey",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"tenant": tenant, "displayName": "CI"},
    }
    assert kube_admin.post(apikeys, json=body).status_code == 201

    def ready() -> bool:
        status = kube_admin.get(f"{apikeys}/{name}").json().get("status") or {}
        return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])

    try:
        wait_until(ready, "the ApiKey to become Ready", timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{kube_admin.get(f'{apikeys}/{name}').text}\n{operator.log()[-6000:]}") from exc
    status = kube_admin.get(f"{apikeys}/{name}").json()["status"]
    assert status["phase"] == "Active" and status["secretName"] == name
    secret = kube_admin.get(secret_url).json()
    key = base64.b64decode(secret["data"]["apiKey"]).decode()
    assert key.startswith("vib_") and key[:12] == status["prefix"][:12]
    assert api_status(api, key) == 200  # the key the operator minted works against the API on the same database

    # Rotation: the operator replaces the Secret's content (update) and retires the old key at once.
    merge = {"Content-Type": "application/merge-patch+json"}
    patch = {"spec": {"rotation": {"trigger": "rbac-test"}}}
    assert kube_admin.patch(f"{apikeys}/{name}", json=patch, headers=merge).status_code == 200

    def rotated_key() -> str | None:
        data = kube_admin.get(secret_url).json().get("data") or {}
        new = base64.b64decode(data.get("apiKey", "")).decode()
        return new if new and new != key else None

    wait_until(lambda: rotated_key() is not None, "the operator to rotate the key into the Secret", timeout=30)
    old_key, key = key, str(rotated_key())
    wait_until(lambda: api_status(api, key) == 200, "the rotated key to work", timeout=5, interval=0.05)
    wait_until(lambda: api_status(api, old_key) == 401, "the replaced key to be refused", timeout=5, interval=0.05)

    # Events: on the ApiKey in its namespace, and on the cluster-scoped tenant in the operator's own namespace.
    def events(ns: str, involved: str) -> list[dict[str, Any]]:
        params = {"fieldSelector": f"involvedObject.name={involved}"}
        items: list[dict[str, Any]] = kube_admin.get(f"/api/v1/namespaces/{ns}/events", params=params).json()["items"]
        return items

    wait_until(lambda: bool(events(namespace, name)), "events about the ApiKey")
    wait_until(lambda: bool(events(NS, tenant)), "events about the tenant in the operator's namespace")

    assert kube_admin.delete(f"{apikeys}/{name}").status_code == 200
    wait_until(lambda: kube_admin.get(f"{apikeys}/{name}").status_code == 404, "the operator to release its finalizer")
    wait_until(lambda: api_status(api, key) == 401, "the deleted ApiKey's key to be refused", timeout=5, interval=0.05)
    wait_until(lambda: kube_admin.get(secret_url).status_code == 404, "the operator to delete the Secret")
    assert kube_admin.delete(f"{tenants}/{tenant}").status_code == 200
    wait_until(lambda: kube_admin.get(f"{tenants}/{tenant}").status_code == 404, "the tenant's finalizer")


def assert_no_permission_errors(operator: OperatorProcess) -> None:
    log = operator.log()
    offending = [line for line in log.splitlines() if any(word in line for word in PERMISSION_ERRORS)]
    assert not offending, "the operator hit RBAC limits:\n" + "\n".join(offending[:20])


def test_apikey_lifecycle_as_the_charts_service_account(
    sa_kubeconfig: Path, kube_admin: httpx.Client, api: LiveServer, database_url_pg: str, tmp_path: Path
) -> None:
    operator = OperatorProcess(sa_kubeconfig, database_url_pg, tmp_path / "operator.log", [SERVED])
    try:
        apikey_lifecycle(kube_admin, api, operator, SERVED)
    finally:
        operator.stop()
    assert_no_permission_errors(operator)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/v1/namespaces/{OTHER}/secrets/someone-elses"),  # a namespace the operator does not serve
        ("GET", f"/api/v1/namespaces/{OTHER}/secrets"),
        ("GET", "/api/v1/secrets"),  # all namespaces
        ("GET", "/api/v1/namespaces/kube-system/secrets"),
        ("GET", f"/api/v1/namespaces/{NS}/secrets/vibexp-database"),  # its own database Secret arrives as env only
        ("POST", f"/api/v1/namespaces/{OTHER}/secrets"),
        ("DELETE", f"/api/v1/namespaces/{OTHER}/secrets/someone-elses"),
        ("GET", f"/apis/{GROUP_VERSION}/namespaces/{OTHER}/apikeys"),
        ("GET", f"/apis/{GROUP_VERSION}/apikeys"),
        ("GET", f"/api/v1/namespaces/{SERVED}/configmaps"),
        ("POST", f"/api/v1/namespaces/{SERVED}/pods"),
        ("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{OTHER}/rolebindings"),
        ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/vx-vibexp-api"),
        ("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/apikeys.vibexp.io"),
    ],
)
def test_operator_identity_is_refused_what_the_chart_does_not_grant(
    as_operator: httpx.Client, method: str, path: str
) -> None:
    headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
    resp = as_operator.request(method, path, json={} if method in ("POST", "PATCH") else None, headers=headers)
    assert resp.status_code == 403, f"{method} {path}: {resp.status_code} {resp.text[:300]}"
    assert resp.json()["reason"] == "Forbidden"


def test_operator_identity_reads_secrets_in_its_served_namespace(as_operator: httpx.Client) -> None:
    """What the chart does grant there (and documents): Kopf's Secret watch needs list/watch in served namespaces."""
    assert as_operator.get(f"/api/v1/namespaces/{SERVED}/secrets").status_code == 200
    assert as_operator.get(f"/api/v1/namespaces/{SERVED}/secrets/someone-elses").status_code == 200


def test_cluster_wide_default_rbac_is_enough_and_still_bounded(
    release: Helm,
    sa_kubeconfig: Path,
    as_operator: httpx.Client,
    kube_admin: httpx.Client,
    api: LiveServer,
    database_url_pg: str,
    tmp_path: Path,
) -> None:
    """Upgrade to the default (every namespace); the operator, with no --namespace, serves a namespace it never knew."""
    release.run("upgrade", RELEASE, str(CHART), "--namespace", NS, "--no-hooks", "--reset-values",
                *release.values_file({"crds": {"enabled": False}, "dashboard": {"enabled": False}}))  # fmt: skip
    wait_until(
        lambda: as_operator.get(f"/apis/{GROUP_VERSION}/apikeys").status_code == 200,
        "the ClusterRoleBinding to take effect",
    )
    fresh = f"vibexp-fresh-{uuid.uuid4().hex[:6]}"
    create_namespace(kube_admin, fresh)
    operator = OperatorProcess(sa_kubeconfig, database_url_pg, tmp_path / "operator.log", [])
    try:
        apikey_lifecycle(kube_admin, api, operator, fresh)
    finally:
        operator.stop()
    assert_no_permission_errors(operator)
    # Still no way to escalate or to touch workloads and configuration.
    for method, path in (
        ("GET", f"/api/v1/namespaces/{fresh}/configmaps"),
        ("POST", f"/api/v1/namespaces/{fresh}/pods"),
        ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
        ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/vx-vibexp-operator"),
        ("GET", "/api/v1/nodes"),
    ):
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        resp = as_operator.request(method, path, json={} if method != "GET" else None, headers=headers)
        assert resp.status_code == 403, f"{method} {path}: {resp.status_code}"
