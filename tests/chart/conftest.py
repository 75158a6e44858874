"""Fixtures of the chart tests: the real helm binary, the default rendering, and a kube-apiserver of their own.

The chart tests get their own kube-apiserver (the `kube_env` fixture of tests/kube, instantiated for this folder):
`helm install` creates cluster-wide objects (the vibexp.io CRDs, a ClusterRole) that must not collide with what
the operator's and the test environment's own tests create in theirs.
"""

from __future__ import annotations

from typing import Any

import pytest

from helmlib import Helm
from kube.conftest import kube_admin, kube_env  # noqa: F401  (re-exported fixtures, one server for this folder)


@pytest.fixture(scope="session")
def helm() -> Helm:
    """The helm binary from the test environment's cache (built from Go on first use)."""
    return Helm()


@pytest.fixture(scope="session")
def default_objects(helm: Helm) -> list[dict[str, Any]]:
    """charts/vibexp rendered with its default values (release "vibexp", namespace "vibexp")."""
    return helm.template()
