"""Session-wide real kube-apiserver (+ etcd) for the `kube` tests; see tests/testenv/kube_testenv.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

# kube_testenv lives outside the configured pythonpath; make it importable from here.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "testenv"))

import kube_testenv
from kube_testenv import KubeEnv


def crd_established(client: httpx.Client, name: str) -> bool:
    """Whether the CRD `name` (`<plural>.<group>`) reports Established=True.

    Right after creation the server returns `status.conditions: null`, so a missing or null list means "not yet".
    """
    status = client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").json().get("status") or {}
    return any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or [])


@pytest.fixture(scope="session")
def kube_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEnv]:
    """Builds the binaries if the cache lacks them, starts once per session, always stops."""
    kube_testenv.ensure_built()
    env = kube_testenv.start_for_tests(tmp_path_factory.mktemp("kube-testenv"))
    try:
        yield env
    finally:  # also on test failures and KeyboardInterrupt; atexit + watchdog cover harder deaths
        env.stop()


@pytest.fixture(scope="session")
def kube_admin(kube_env: KubeEnv) -> Iterator[httpx.Client]:
    """HTTP client authenticated as admin (client cert in group system:masters)."""
    with httpx.Client(base_url=kube_env.server, verify=kube_env.ssl_context(), timeout=30) as client:
        yield client
