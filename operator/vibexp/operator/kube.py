"""The operator's own Kubernetes calls (Secrets, reading ApiKeys and tenants, status), on ``kubernetes_asyncio``.

Kopf watches and patches with its own client; this one is the official client's async twin with its typed models
(``V1Secret``, ``V1ObjectMeta``, ``V1DeleteOptions``). Configuration comes from the library: the pod's service
account (``load_incluster_config``, which re-reads the projected token as it rotates) or, outside a cluster,
``$KUBECONFIG``/``~/.kube/config``. Every request is counted by verb and resource
(``vibexp_operator_kube_requests_total``) so the cost of a reconcile is visible.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiException, V1DeleteOptions, V1Preconditions, V1Secret

from vibexp.operator.metrics import OperatorMetrics
from vibexp.operator.resources import APIKEYS, GROUP, TENANTS, VERSION

__all__ = ["KubeApiError", "KubeClient"]

T = TypeVar("T")

JSON_MERGE = "application/merge-patch+json"


class KubeApiError(Exception):
    """A Kubernetes API call that failed: ``status`` is the HTTP status (0 when the server was unreachable)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def temporary(self) -> bool:
        """Worth retrying: unreachable, conflicts, throttling and server errors."""
        return self.status in (0, 409, 429) or self.status >= 500

    @property
    def refused(self) -> bool:
        """The apiserver refused the object (invalid 400/422, or forbidden 403: quota, admission, RBAC)."""
        return self.status in (400, 403, 422)


def _error(exc: ApiException) -> KubeApiError:
    status = int(exc.status or 0)
    try:
        decoded = json.loads(exc.body or "")
        return KubeApiError(status, str(decoded.get("reason", exc.reason)), str(decoded.get("message", "")))
    except (TypeError, ValueError, AttributeError):
        return KubeApiError(status, str(exc.reason or ""), str(exc.body or "")[:500])


async def load_configuration() -> client.Configuration:
    """In a pod: the service account (token refreshed by the library); elsewhere: the kubeconfig."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        await config.load_kube_config(client_configuration=configuration)
    return configuration


class KubeClient:
    def __init__(self, api: client.ApiClient, *, request_timeout: float, metrics: OperatorMetrics) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._timeout = request_timeout
        self._metrics = metrics
        # Custom objects take JSON merge patches (the generated client would pick JSON Patch for a dict body).
        self._merge: dict[str, Any] = {"_content_type": JSON_MERGE, "_request_timeout": request_timeout}

    @classmethod
    async def connect(cls, *, request_timeout: float, metrics: OperatorMetrics) -> KubeClient:
        return cls(client.ApiClient(await load_configuration()), request_timeout=request_timeout, metrics=metrics)

    async def close(self) -> None:
        await self._api.close()

    async def _call(
        self, verb: str, resource: str, call: Callable[[], Awaitable[T]], *, missing_ok: bool = False
    ) -> T | None:
        """One request, counted; a 404 is None when ``missing_ok``; failures become :class:`KubeApiError`."""
        self._metrics.kube_requests.labels(verb, resource).inc()
        try:
            return await call()
        except ApiException as exc:
            if exc.status == 404 and missing_ok:
                return None
            raise _error(exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeApiError(0, "Unreachable", f"{verb} {resource}: {exc!r}") from exc

    # -- Secrets ----------------------------------------------------------------------------------------------
    async def read_secret(self, namespace: str, name: str) -> V1Secret | None:
        return await self._call(
            "get",
            "secrets",
            lambda: self._core.read_namespaced_secret(name, namespace, _request_timeout=self._timeout),
            missing_ok=True,
        )

    async def create_secret(self, namespace: str, secret: V1Secret) -> None:
        await self._call(
            "create",
            "secrets",
            lambda: self._core.create_namespaced_secret(namespace, secret, _request_timeout=self._timeout),
        )

    async def replace_secret(self, namespace: str, name: str, secret: V1Secret) -> None:
        """Replace, guarded by ``secret.metadata.resource_version`` (a concurrent edit is a 409 and a retry)."""
        await self._call(
            "update",
            "secrets",
            lambda: self._core.replace_namespaced_secret(name, namespace, secret, _request_timeout=self._timeout),
        )

    async def patch_secret_metadata(
        self, namespace: str, name: str, *, labels: dict[str, str], annotations: dict[str, str]
    ) -> None:
        """Merge these labels and annotations into the Secret's (others' labels are left alone)."""
        body = {"metadata": {"labels": labels, "annotations": annotations}}
        await self._call(
            "patch",
            "secrets",
            lambda: self._core.patch_namespaced_secret(name, namespace, body, **self._merge),
            missing_ok=True,
        )

    async def delete_secret(self, namespace: str, name: str, *, uid: str) -> bool:
        """Delete this very Secret (a uid precondition); False when it was already gone."""
        options = V1DeleteOptions(preconditions=V1Preconditions(uid=uid))
        deleted = await self._call(
            "delete",
            "secrets",
            lambda: self._core.delete_namespaced_secret(name, namespace, body=options, _request_timeout=self._timeout),
            missing_ok=True,
        )
        return deleted is not None

    # -- ApiKeys and tenants (custom objects have no generated models: the operator parses them itself) ---------
    async def read_apikey(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._call(
            "get",
            APIKEYS,
            lambda: self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, APIKEYS, name, _request_timeout=self._timeout
            ),
            missing_ok=True,
        )

    async def list_apikeys(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            listed = await self._call(
                "list",
                APIKEYS,
                lambda: self._custom.list_cluster_custom_object(
                    GROUP, VERSION, APIKEYS, _request_timeout=self._timeout
                ),
            )
        else:
            listed = await self._call(
                "list",
                APIKEYS,
                lambda: self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, APIKEYS, _request_timeout=self._timeout
                ),
            )
        items: list[dict[str, Any]] = (listed or {}).get("items", [])
        return items

    async def patch_apikey_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self._call(
            "patch",
            f"{APIKEYS}/status",
            lambda: self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, APIKEYS, name, {"status": status}, **self._merge
            ),
            missing_ok=True,
        )

    async def read_tenant(self, name: str) -> dict[str, Any] | None:
        return await self._call(
            "get",
            TENANTS,
            lambda: self._custom.get_cluster_custom_object(
                GROUP, VERSION, TENANTS, name, _request_timeout=self._timeout
            ),
            missing_ok=True,
        )

    async def patch_tenant_status(self, name: str, status: dict[str, Any]) -> None:
        await self._call(
            "patch",
            f"{TENANTS}/status",
            lambda: self._custom.patch_cluster_custom_object_status(
                GROUP, VERSION, TENANTS, name, {"status": status}, **self._merge
            ),
            missing_ok=True,
        )
