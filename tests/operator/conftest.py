"""Fixtures for the operator tests: the real kube-apiserver (the session fixture of tests/kube/conftest.py), the
CRDs, the API as a live server on the same database, and the operator as a real `vibexp operator` subprocess per
test, restricted to the test's own namespace (so the SQLite and PostgreSQL runs never see each other's ApiKeys).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opkit import CRDS, GROUP, VERSION, KubeEnv, Operator, kubectl, unique, wait_until

import kube.conftest as shared
from helpers.servers import LiveServer

#: The one session-wide apiserver and its admin client, defined in tests/kube/conftest.py.
kube_env = shared.kube_env
kube_admin = shared.kube_admin


@pytest.fixture(scope="session")
def crds(kube_env: KubeEnv, kube_admin: httpx.Client) -> None:
    """The product CRDs, applied with kubectl exactly as the README says, and served."""
    kubectl(kube_env, "apply", "-f", str(CRDS))
    for plural in ("apikeys", "vibexptenants"):
        name = f"{plural}.{GROUP}"
        wait_until(lambda name=name: shared.crd_established(kube_admin, name), f"CRD {name} established")
    wait_until(lambda: kube_admin.get(f"/apis/{GROUP}/{VERSION}").status_code == 200, "CRD discovery")


@pytest.fixture(scope="session")
def api_servers() -> Iterator[dict[str, LiveServer]]:
    """One `vibexp serve` per database, started on first use, stopped at the end of the session."""
    servers: dict[str, LiveServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def api(database_url: str, api_servers: dict[str, LiveServer], tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    if database_url not in api_servers:
        api_servers[database_url] = LiveServer(database_url).start(tmp_path_factory.mktemp("api"))
    return api_servers[database_url]


@pytest.fixture
def operator(
    kube_env: KubeEnv, kube_admin: httpx.Client, crds: None, database_url: str, tmp_path: Path
) -> Iterator[Operator]:
    """A namespace of the test's own and an operator serving it (stopped, with its log shown on failure)."""
    ns = unique("op")
    resp = kube_admin.post("/api/v1/namespaces", json={"metadata": {"name": ns}})
    assert resp.status_code == 201, resp.text
    op = Operator(kube_env, kube_admin, database_url, ns, tmp_path)
    yield op
    op.stop()
