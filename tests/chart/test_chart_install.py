"""`helm install` / `helm upgrade` / `helm uninstall` of charts/vibexp into a real kube-apiserver.

The test server has no controllers (no pods ever run, no garbage collection), so these tests prove what the
server can prove: every object the chart renders is accepted, validated and stored as rendered (nothing pruned
by a schema, nothing dropped), upgrades add and remove objects, the migration hook Job is a valid Job, CRDs
survive an uninstall when `crds.keep` is on, and every pod template passes the `restricted` Pod Security Standard
as the server's own PodSecurity admission enforces it. Helm runs with `--no-hooks` (a hook Job would wait forever
for a Job controller) and without waiting for readiness.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kube_testenv import KubeEnv
from kubelib import create_namespace, differences, kubectl, live_objects, wait_until

from helmlib import CHART, MANIFESTS, Helm, by_kind, find

pytestmark = [pytest.mark.kube, pytest.mark.slow]

NS = "vibexp-install"
RELEASE = "vibexp"
FIXTURES = Path(__file__).parent / "fixtures"
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "vibexp-database"},
    "stringData": {"url": "postgresql+asyncpg://vibexp:vibexp@postgres:5432/vibexp", "secret-key": "x" * 40},
}
TOGGLES: dict[str, Any] = {
    "api": {
        "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "tls": [{"secretName": "tls", "hosts": ["vibexp.example.com"]}],
        },
        "podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": None},
    },
    "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
    "prometheusRule": {"enabled": True},
    "networkPolicy": {"enabled": True},
    "operator": {"watchNamespaces": ["vibexp-team-a", "vibexp-team-b"]},
}


@pytest.fixture(scope="module")
def cluster(kube_env: KubeEnv, kube_admin: httpx.Client) -> Iterator[Helm]:
    """The release namespace with its database Secret, the Prometheus Operator CRDs, and helm pointed at it."""
    for ns in (NS, "vibexp-team-a", "vibexp-team-b"):
        create_namespace(kube_admin, ns)
    resp = kube_admin.post(f"/api/v1/namespaces/{NS}/secrets", json=SECRET)
    assert resp.status_code in (201, 409), resp.text
    kubectl(kube_env, "apply", "-f", str(FIXTURES / "monitoring-crds.yaml"))
    for plural in ("servicemonitors", "podmonitors", "prometheusrules"):
        kubectl(kube_env, "wait", "--for=condition=Established", f"crd/{plural}.monitoring.coreos.com", "--timeout=60s")
    yield Helm(kubeconfig=kube_env.kubeconfig)


def assert_stored_as_rendered(env: KubeEnv, manifest: str) -> list[dict[str, Any]]:
    """Every object of the manifest exists on the server and holds every field the chart rendered."""
    rendered = [d for d in yaml.safe_load_all(manifest) if d]
    live = live_objects(env, manifest)
    assert len(live) == len(rendered)
    problems = []
    for want, have in zip(rendered, live, strict=True):
        assert (want["kind"], want["metadata"]["name"]) == (have["kind"], have["metadata"]["name"])
        problems += [f"{want['kind']}/{want['metadata']['name']}{d}" for d in differences(want, have)]
    assert not problems, "\n".join(problems)
    return rendered


def release_manifest(helm: Helm) -> str:
    return helm.run("get", "manifest", RELEASE, "--namespace", NS).stdout


def test_install_with_default_values(cluster: Helm, kube_env: KubeEnv) -> None:
    out = cluster.run("install", RELEASE, str(CHART), "--namespace", NS, "--no-hooks", "--timeout", "2m")
    assert "STATUS: deployed" in out.stdout, out.stdout + out.stderr
    rendered = assert_stored_as_rendered(kube_env, release_manifest(cluster))
    assert {o["kind"] for o in rendered} == {
        "ClusterRole", "ClusterRoleBinding", "ConfigMap", "CustomResourceDefinition", "Deployment",
        "PodDisruptionBudget", "Service", "ServiceAccount",
    }  # fmt: skip
    status = cluster.run("status", RELEASE, "--namespace", NS, "-o", "json").stdout
    assert '"status":"deployed"' in status.replace(" ", "")
    # The CRDs the chart installed are served: the operator's kinds exist in the API.
    for crd in ("apikeys.vibexp.io", "vibexptenants.vibexp.io"):
        kubectl(kube_env, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    resources = kubectl(kube_env, "api-resources", "--api-group=vibexp.io", "-o", "name").stdout.split()
    assert sorted(resources) == ["apikeys.vibexp.io", "vibexptenants.vibexp.io"]


def test_migration_hook_job_is_accepted_by_the_server(cluster: Helm, kube_env: KubeEnv) -> None:
    """--no-hooks skipped it; create the rendered hook Job for real and read it back."""
    job_yaml = cluster.template_text(namespace=NS, extra=["--show-only", "templates/migrate-job.yaml"])
    kubectl(kube_env, "create", "-f", "-", stdin=job_yaml)
    try:
        (job,) = assert_stored_as_rendered(kube_env, job_yaml)
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    finally:
        kubectl(kube_env, "delete", "-f", "-", stdin=job_yaml)


def test_upgrade_turns_every_toggle_on(cluster: Helm, kube_env: KubeEnv) -> None:
    args = ["upgrade", RELEASE, str(CHART), "--namespace", NS, "--no-hooks", "--timeout", "2m"]
    out = cluster.run(*args, *cluster.values_file(TOGGLES))
    assert "STATUS: deployed" in out.stdout and "REVISION: 2" in out.stdout, out.stdout + out.stderr
    rendered = assert_stored_as_rendered(kube_env, release_manifest(cluster))
    assert {
        "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy", "PodMonitor", "PrometheusRule", "Role", "RoleBinding",
        "ServiceMonitor",
    } <= {o["kind"] for o in rendered}  # fmt: skip
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in by_kind(rendered, "Role")}
    assert ("vibexp-team-a", "vibexp-operator") in roles and ("vibexp-team-b", "vibexp-operator") in roles
    # Cluster-wide Secret access is gone from the ClusterRole on the server.
    cluster_role = kubectl(kube_env, "get", "clusterrole", "vibexp-operator", "-o", "yaml").stdout
    assert "secrets" not in yaml.safe_load(cluster_role)["rules"].__repr__()


def test_upgrade_back_to_defaults_removes_what_the_toggles_added(cluster: Helm, kube_env: KubeEnv) -> None:
    out = cluster.run("upgrade", RELEASE, str(CHART), "--namespace", NS, "--no-hooks", "--reset-values")
    assert "REVISION: 3" in out.stdout, out.stdout + out.stderr
    assert_stored_as_rendered(kube_env, release_manifest(cluster))
    for kind, ns, name in (
        ("ingress", NS, "vibexp-api"),
        ("hpa", NS, "vibexp-api"),
        ("networkpolicy", NS, "vibexp-api"),
        ("servicemonitor", NS, "vibexp-api"),
        ("prometheusrule", NS, "vibexp"),
        ("role", "vibexp-team-a", "vibexp-operator"),
        ("rolebinding", "vibexp-team-b", "vibexp-operator"),
    ):
        gone = kubectl(kube_env, "get", kind, name, "-n", ns, "--ignore-not-found", "-o", "name").stdout
        assert gone == "", f"{kind}/{name} in {ns} is still there after the upgrade"
    history = cluster.run("history", RELEASE, "--namespace", NS, "-o", "yaml").stdout
    assert [h["revision"] for h in yaml.safe_load(history)] == [1, 2, 3]


def test_uninstall_keeps_the_crds_and_a_reinstall_adopts_them(
    cluster: Helm, kube_env: KubeEnv, kube_admin: httpx.Client
) -> None:
    out = cluster.run("uninstall", RELEASE, "--namespace", NS, "--timeout", "2m")
    assert "kept due to the resource policy" in out.stdout + out.stderr, out.stdout + out.stderr
    for crd in ("apikeys.vibexp.io", "vibexptenants.vibexp.io"):
        assert kube_admin.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}").status_code == 200
    wait_until(
        lambda: kube_admin.get(f"/apis/apps/v1/namespaces/{NS}/deployments/vibexp-api").status_code == 404,
        "the API Deployment to be deleted",
    )
    assert kube_admin.get("/apis/rbac.authorization.k8s.io/v1/clusterroles/vibexp-operator").status_code == 404

    # As with cert-manager: installing the same release again takes the kept CRDs back under its management.
    out = cluster.run("install", RELEASE, str(CHART), "--namespace", NS, "--no-hooks")
    assert "STATUS: deployed" in out.stdout, out.stdout + out.stderr
    assert_stored_as_rendered(kube_env, release_manifest(cluster))
    cluster.run("uninstall", RELEASE, "--namespace", NS)


def test_plain_manifests_apply_with_kubectl(kube_env: KubeEnv, kube_admin: httpx.Client) -> None:
    """manifests/vibexp.yaml as the README says: `kubectl apply -f` into namespace vibexp, then server-checked."""
    create_namespace(kube_admin, "vibexp")
    secret = {**SECRET, "metadata": {"name": "vibexp-database", "namespace": "vibexp"}}
    assert kube_admin.post("/api/v1/namespaces/vibexp/secrets", json=secret).status_code in (201, 409)
    text = MANIFESTS.read_text()
    out = kubectl(kube_env, "apply", "-f", str(MANIFESTS)).stdout  # exactly as the README and the file's header say
    assert "deployment.apps/vibexp-api created" in out, out
    docs = assert_stored_as_rendered(kube_env, text)
    job = find(docs, "Job", "vibexp-migrate")  # an ordinary Job here, applied with everything else
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    # Left in place: deleting the CRDs here would race the next module's re-apply of them.


def test_pods_pass_the_restricted_pod_security_standard(kube_env: KubeEnv, kube_admin: httpx.Client) -> None:
    """The API server's PodSecurity admission, enforcing `restricted`, admits a Pod of every pod template."""
    ns = "vibexp-restricted"
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
    resp = kube_admin.post("/api/v1/namespaces", json={"metadata": {"name": ns, "labels": labels}})
    assert resp.status_code in (201, 409), resp.text
    objects = Helm().template(namespace=ns)
    templates = [(o["metadata"]["name"], o["spec"]["template"]) for o in objects if o["kind"] in ("Deployment", "Job")]
    assert len(templates) == 3
    for name, template in templates:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": template["metadata"]["labels"]}}
        pod["spec"] = template["spec"]
        created = kube_admin.post(f"/api/v1/namespaces/{ns}/pods", json=pod)
        assert created.status_code == 201, f"{name}: {created.text}"
        assert not created.headers.get("warning"), created.headers.get("warning")
    # The control: the same pod with privilege escalation allowed is refused, so the check above is real.
    name, template = templates[0]
    spec = copy.deepcopy(template["spec"])
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    refused = kube_admin.post(
        f"/api/v1/namespaces/{ns}/pods",
        json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-escalating"}, "spec": spec},
    )
    assert refused.status_code == 403 and "violates PodSecurity" in refused.text, refused.text
