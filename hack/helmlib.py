"""Run the real `helm` (built from Go by tests/testenv, never downloaded) against charts/vibexp.

Shared by the chart tests and by `make manifests` (hack/manifests.py), so both render the chart the same way.
Helm's own state (repositories, cache, plugins) goes to a private directory, never the user's ~/.config.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "vibexp"
CRDS_SOURCE = REPO / "crds"
CRDS_IN_CHART = CHART / "files" / "crds"
MANIFESTS = REPO / "manifests" / "vibexp.yaml"
#: The release name and namespace the plain manifests are rendered for.
MANIFESTS_RELEASE = "vibexp"
MANIFESTS_NAMESPACE = "vibexp"

sys.path.insert(0, str(REPO / "tests" / "testenv"))
import kube_testenv  # noqa: E402  (stdlib-only module outside the configured pythonpath)

__all__ = [
    "CHART",
    "CRDS_IN_CHART",
    "CRDS_SOURCE",
    "MANIFESTS",
    "Helm",
    "HelmError",
    "by_kind",
    "find",
]


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} exited {returncode}:\n{stderr or stdout}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class Helm:
    """One helm binary plus an isolated HELM_* home; `kubeconfig` is used by install/upgrade/uninstall."""

    def __init__(self, binary: Path | None = None, *, kubeconfig: Path | None = None) -> None:
        self.binary = binary or kube_testenv.ensure_built() / "helm"
        self.kubeconfig = kubeconfig
        self._home = Path(tempfile.mkdtemp(prefix="vibexp-helm-home-"))

    def with_kubeconfig(self, kubeconfig: Path) -> Helm:
        other = Helm(self.binary, kubeconfig=kubeconfig)
        return other

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
        env.update(
            HELM_CACHE_HOME=str(self._home / "cache"),
            HELM_CONFIG_HOME=str(self._home / "config"),
            HELM_DATA_HOME=str(self._home / "data"),
        )
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        else:  # rendering must never depend on whatever cluster the caller's kubeconfig points at
            env["KUBECONFIG"] = str(self._home / "no-kubeconfig")
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=self.env(), timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise HelmError(args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    def values_file(self, values: Mapping[str, Any] | None) -> list[str]:
        """`-f file` arguments for a values mapping (written as YAML, so types survive, unlike --set)."""
        if not values:
            return []
        fd, path = tempfile.mkstemp(prefix="values-", suffix=".yaml", dir=self._home)
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(dict(values), fh)
        return ["-f", path]

    def template_text(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        release: str = MANIFESTS_RELEASE,
        namespace: str = MANIFESTS_NAMESPACE,
        extra: Iterable[str] = (),
    ) -> str:
        args = ["template", release, str(CHART), "--namespace", namespace, *self.values_file(values), *extra]
        return self.run(*args).stdout

    def template(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        release: str = MANIFESTS_RELEASE,
        namespace: str = MANIFESTS_NAMESPACE,
        extra: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        """Render and parse: every non-empty document, in helm's order."""
        text = self.template_text(values, release=release, namespace=namespace, extra=extra)
        return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(objects: Iterable[Mapping[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [dict(o) for o in objects if o.get("kind") == kind]


def find(objects: Iterable[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one rendered object of this kind and name (AssertionError naming what exists otherwise)."""
    matches = [dict(o) for o in objects if o.get("kind") == kind and o["metadata"]["name"] == name]
    names = sorted(f"{o.get('kind')}/{o['metadata']['name']}" for o in objects)
    assert len(matches) == 1, f"expected one {kind}/{name}, rendered: {names}"
    return matches[0]
