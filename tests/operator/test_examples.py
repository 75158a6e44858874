"""manifests/examples/ applied exactly as a user would: `kubectl apply -f crds/` then `-f manifests/examples/`."""

from __future__ import annotations

import base64
import json

import pytest
from opkit import CRDS, EXAMPLES, Operator, call_api, kubectl, wait_status, wait_until

from helpers.servers import LiveServer

pytestmark = [pytest.mark.kube]


def test_examples_as_a_user_applies_them(operator: Operator, api: LiveServer) -> None:
    env = operator.env
    operator.ns = "team-a"  # the examples' namespace
    op = operator.start("team-a")
    kubectl(env, "apply", "-f", str(CRDS))
    out = kubectl(env, "apply", "-f", str(EXAMPLES)).stdout
    assert "apikey.vibexp.io/ci-pipeline" in out and "vibexptenant.vibexp.io/acme" in out

    obj = op.wait_ready("ci-pipeline", timeout=60)
    assert obj["status"]["secretName"] == "vibexp-ci-key" and obj["status"]["rotation"]["nextRotationAt"]
    secret = json.loads(kubectl(env, "get", "secret", "vibexp-ci-key", "-n", "team-a", "-o", "json").stdout)
    assert secret["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ci"
    assert secret["metadata"]["annotations"]["example.com/owner"] == "platform-team"
    key = base64.b64decode(secret["data"]["apiKey"]).decode()
    assert call_api(api.url, key) == 200
    [record] = op.keys_of(obj["metadata"]["uid"])
    assert (record.scopes, record.allowed_cidrs) == (["prompts:read", "artifacts:write"], [])

    listing = kubectl(env, "get", "apikeys", "-n", "team-a").stdout
    assert "ci-pipeline" in listing and "acme" in listing and obj["status"]["prefix"] in listing and "Active" in listing
    tenants = kubectl(env, "get", "vibexptenants").stdout
    assert "acme" in tenants and "pro" in tenants and "10000" in tenants

    # Tear down the key and the tenant as a user would (namespaces never finish deleting without a
    # controller-manager, so the namespace stays).
    kubectl(env, "delete", "-f", str(EXAMPLES / "20-apikey.yaml"), "-f", str(EXAMPLES / "10-tenant.yaml"))
    wait_status(api.url, key, 401)
    assert op.get(op.secrets("vibexp-ci-key")) is None
    wait_until(lambda: op.get(op.tenants("acme")) is None, "tenant deleted")
