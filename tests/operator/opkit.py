"""Helpers for the operator tests: kubectl, waiting, and `Operator` (a `vibexp operator` subprocess plus the
Kubernetes and database look-ups the tests make). Named `opkit` because `operator` is a standard library module."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpers.servers import REPO, free_port
from vibexp.core.audit.models import AuditEvent
from vibexp.core.db import create_engine, create_session_factory
from vibexp.core.keys.models import ApiKey as KeyRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testenv"))
from kube_testenv import KubeEnv

__all__ = [
    "CRDS",
    "EXAMPLES",
    "GROUP",
    "VERSION",
    "KubeEnv",
    "Operator",
    "call_api",
    "kubectl",
    "unique",
    "wait_status",
    "wait_until",
]

GROUP, VERSION = "vibexp.io", "v1alpha1"
CRDS = REPO / "crds"
EXAMPLES = REPO / "manifests" / "examples"
MERGE = {"Content-Type": "application/merge-patch+json"}

T = TypeVar("T")


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def kubectl(env: KubeEnv, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", str(env.kubeconfig), *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=60,
        cwd=REPO,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


class Operator:
    """A `vibexp operator -n NS` subprocess with helpers to drive and observe one namespace."""

    def __init__(self, env: KubeEnv, admin: httpx.Client, database_url: str, namespace: str, log_dir: Path) -> None:
        self.env = env
        self.admin = admin
        self.database_url = database_url
        self.ns = namespace
        self.log_dir = log_dir
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.extra_env: dict[str, str] = {}

    # -- process --------------------------------------------------------------------------------------------------
    def start(self, *namespaces: str, wait: bool = True, clusterwide: bool = False) -> Operator:
        self.starts += 1
        log = (self.log_dir / f"operator-{self.starts}.log").open("wb")
        env = {
            **os.environ,
            "KUBECONFIG": str(self.env.kubeconfig),
            "VIBEXP_DATABASE_URL": self.database_url,
            "VIBEXP_ENVIRONMENT": "test",
            "VIBEXP_AUTO_MIGRATE": "false",
            "VIBEXP_OPERATOR_SYNC_INTERVAL": "1",
            "VIBEXP_OPERATOR_RETRY_DELAY": "1",
            "VIBEXP_OPERATOR_HEALTH_HOST": "127.0.0.1",
            "VIBEXP_OPERATOR_HEALTH_PORT": str(self.health_port),
            "VIBEXP_OPERATOR_METRICS_HOST": "127.0.0.1",
            "VIBEXP_OPERATOR_METRICS_PORT": str(self.metrics_port),
            **self.extra_env,
        }
        args = []
        for ns in [] if clusterwide else namespaces or (self.ns,):
            args += ["-n", ns]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vibexp.cli", "operator", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        if wait:
            wait_until(self.healthy, "operator /healthz", timeout=60)
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited: {self.log()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-6000:] for p in sorted(self.log_dir.glob("operator-*.log")))

    # -- Kubernetes helpers ---------------------------------------------------------------------------------------
    def apikeys(self, name: str = "") -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{self.ns}/apikeys" + (f"/{name}" if name else "")

    @staticmethod
    def tenants(name: str = "") -> str:
        return f"/apis/{GROUP}/{VERSION}/vibexptenants" + (f"/{name}" if name else "")

    def secrets(self, name: str = "") -> str:
        return f"/api/v1/namespaces/{self.ns}/secrets" + (f"/{name}" if name else "")

    def create_tenant(self, name: str, **spec: Any) -> dict[str, Any]:
        spec.setdefault("allowedNamespaces", [self.ns])
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VibeXPTenant", "metadata": {"name": name}, "spec": spec}
        resp = self.admin.post(self.tenants(), json=body)
        assert resp.status_code == 201, resp.text
        created: dict[str, Any] = resp.json()
        return created

    def create_apikey(self, name: str, tenant: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ApiKey",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"tenant": tenant, **spec},
        }
        resp = self.admin.post(self.apikeys(), json=body)
        assert resp.status_code == 201, resp.text
        created: dict[str, Any] = resp.json()
        return created

    def patch_apikey(self, name: str, spec: dict[str, Any]) -> None:
        resp = self.admin.patch(self.apikeys(name), json={"spec": spec}, headers=MERGE)
        assert resp.status_code == 200, resp.text

    def get(self, path: str) -> dict[str, Any] | None:
        resp = self.admin.get(path)
        if resp.status_code == 404:
            return None
        assert resp.status_code == 200, resp.text
        found: dict[str, Any] = resp.json()
        return found

    def apikey(self, name: str) -> dict[str, Any]:
        found = self.get(self.apikeys(name))
        assert found is not None, f"ApiKey {name} not found"
        return found

    @staticmethod
    def ready(obj: dict[str, Any] | None) -> dict[str, Any] | None:
        for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
            if condition["type"] == "Ready":
                found: dict[str, Any] = condition
                return found
        return None

    def wait_condition(self, name: str, status: str, reason: str | None = None, timeout: float = 30) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get(self.apikeys(name))
            cond = self.ready(obj)
            if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
                return obj
            return None

        try:
            found: dict[str, Any] = wait_until(check, f"ApiKey {name} Ready={status} {reason or ''}", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; now: {self.ready(self.get(self.apikeys(name)))}\n{self.log()}") from exc
        return found

    def wait_ready(self, name: str, timeout: float = 30) -> dict[str, Any]:
        return self.wait_condition(name, "True", timeout=timeout)

    def secret_key(self, secret_name: str) -> str | None:
        secret = self.get(self.secrets(secret_name))
        if secret is None:
            return None
        return base64.b64decode(secret["data"]["apiKey"]).decode()

    def events(self, name: str) -> list[dict[str, Any]]:
        resp = self.admin.get(
            f"/api/v1/namespaces/{self.ns}/events", params={"fieldSelector": f"involvedObject.name={name}"}
        )
        items: list[dict[str, Any]] = resp.json()["items"]
        return items

    def wait_event(self, name: str, reason: str, type_: str | None = None, timeout: float = 20) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            return next(
                (e for e in self.events(name) if e["reason"] == reason and (type_ is None or e["type"] == type_)), None
            )

        found: dict[str, Any] = wait_until(check, f"event {reason} on {name}", timeout)
        return found

    # -- database -------------------------------------------------------------------------------------------------
    def in_database(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in one committed unit of work on the operator's database (outside the operator)."""

        async def run() -> T:
            engine = create_engine(self.database_url)
            try:
                async with create_session_factory(engine)() as session, session.begin():
                    return await work(session)
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def keys_of(self, uid: str) -> list[KeyRecord]:
        """Every key record the operator minted for this ApiKey (by its idempotency reference)."""

        async def query() -> list[KeyRecord]:
            engine = create_engine(self.database_url)
            try:
                async with create_session_factory(engine)() as session:
                    rows = await session.scalars(
                        select(KeyRecord)
                        .where(KeyRecord.external_ref.like(f"k8s:{uid}:%"))
                        .order_by(KeyRecord.created_at)
                    )
                    return list(rows)
            finally:
                await engine.dispose()

        return asyncio.run(query())

    def audit_of(self, key_id: str) -> list[tuple[str, str, str | None]]:
        """(action, actor type, actor id) of the audit events on one key record, oldest first."""

        async def query() -> list[tuple[str, str, str | None]]:
            engine = create_engine(self.database_url)
            try:
                async with create_session_factory(engine)() as session:
                    rows = await session.scalars(
                        select(AuditEvent).where(AuditEvent.target_id == key_id).order_by(AuditEvent.id)
                    )
                    return [(e.action, e.actor_type, e.actor_id) for e in rows]
            finally:
                await engine.dispose()

        return asyncio.run(query())


def call_api(url: str, key: str) -> int:
    return httpx.get(f"{url}/api/v1/prompts", headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code


def wait_status(url: str, key: str, status: int, timeout: float = 5) -> None:
    def check() -> bool:
        try:
            return call_api(url, key) == status
        except httpx.TimeoutException:  # a loaded machine: the next attempt decides
            return False

    wait_until(check, f"HTTP {status} for the key", timeout, interval=0.05)
