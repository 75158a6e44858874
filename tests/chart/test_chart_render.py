"""`helm lint` and `helm template` of charts/vibexp: the default rendering and every toggle, asserted object by object.

Rendering needs only the helm binary; what the API server makes of these objects is in test_chart_install.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from helmlib import CHART, CRDS_IN_CHART, CRDS_SOURCE, MANIFESTS, Helm, HelmError, by_kind, find
from manifests import crd_copies_stale, expected_manifests

pytestmark = pytest.mark.kube  # the helm binary comes from the test environment's build

NS = "vibexp"
EXAMPLES = CHART.parents[1] / "manifests" / "examples"
API, OPERATOR = "vibexp-api", "vibexp-operator"
NAMESPACED_KINDS = {
    "Deployment", "Service", "ServiceAccount", "ConfigMap", "Job", "Role", "RoleBinding", "Ingress",
    "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "PodMonitor",
    "PrometheusRule",
}  # fmt: skip
ALL_TOGGLES: dict[str, Any] = {
    "api": {
        "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "tls": [{"secretName": "tls", "hosts": ["vibexp.example.com"]}],
        },
    },
    "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
    "prometheusRule": {"enabled": True},
    "networkPolicy": {"enabled": True},
    "operator": {"watchNamespaces": ["team-a", "team-b"]},
}


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)


# -- lint -------------------------------------------------------------------------------------------------------
def test_helm_lint_strict_default_values(helm: Helm) -> None:
    out = helm.run("lint", "--strict", str(CHART)).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out


def test_helm_lint_strict_every_toggle_on(helm: Helm) -> None:
    out = helm.run("lint", "--strict", str(CHART), *helm.values_file(ALL_TOGGLES)).stdout
    assert "0 chart(s) failed" in out, out


# -- the default rendering --------------------------------------------------------------------------------------
def test_default_rendering_has_exactly_the_expected_objects(default_objects: list[dict[str, Any]]) -> None:
    assert kinds(default_objects) == sorted(
        [
            "ClusterRole/vibexp-operator",
            "ClusterRoleBinding/vibexp-operator",
            "ConfigMap/vibexp-dashboard",
            "CustomResourceDefinition/apikeys.vibexp.io",
            "CustomResourceDefinition/vibexptenants.vibexp.io",
            "Deployment/vibexp-api",
            "Deployment/vibexp-operator",
            "Job/vibexp-migrate",
            "PodDisruptionBudget/vibexp-api",
            "Service/vibexp-api",
            "ServiceAccount/vibexp-api",
            "ServiceAccount/vibexp-operator",
        ]
    )
    for obj in default_objects:
        meta = obj["metadata"]
        assert meta["labels"]["app.kubernetes.io/instance"] == "vibexp"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "vibexp"
        if obj["kind"] in NAMESPACED_KINDS:
            assert meta["namespace"] == NS, f"{obj['kind']}/{meta['name']} lacks its namespace"
        else:
            assert "namespace" not in meta


def test_pods_are_hardened(default_objects: list[dict[str, Any]]) -> None:
    pod_specs = [d["spec"]["template"]["spec"] for d in by_kind(default_objects, "Deployment")]
    pod_specs += [j["spec"]["template"]["spec"] for j in by_kind(default_objects, "Job")]
    assert len(pod_specs) == 3
    for spec in pod_specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["enableServiceLinks"] is False
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"]
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["privileged"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsNonRoot"] is True
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
            assert c["image"] == "ghcr.io/vibexp/vibexp:0.1.0"  # the chart's appVersion
            env = env_of(c)
            assert env["VIBEXP_DATABASE_URL"] == {"secretKeyRef": {"name": "vibexp-database", "key": "url"}}
            assert env["VIBEXP_SECRET_KEY"] == {"secretKeyRef": {"name": "vibexp-database", "key": "secret-key"}}
            assert env["VIBEXP_ENVIRONMENT"] == "production"
            assert env["VIBEXP_AUTO_MIGRATE"] == "false"  # only the hook Job migrates


def test_api_deployment(default_objects: list[dict[str, Any]]) -> None:
    deployment = find(default_objects, "Deployment", API)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == API and pod["automountServiceAccountToken"] is False
    api = container(deployment, "api")
    assert api["args"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert {(p["name"], p["containerPort"]) for p in api["ports"]} == {("http", 8000), ("metrics", 9090)}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    env = env_of(api)
    assert env["VIBEXP_METRICS_PORT"] == "9090"
    assert env["VIBEXP_METRICS_ON_MAIN_PORT"] == "false"
    hosts = env["VIBEXP_MCP_ALLOWED_HOSTS"].split(",")
    for name in (API, f"{API}.{NS}", f"{API}.{NS}.svc", f"{API}.{NS}.svc.cluster.local"):
        assert name in hosts and f"{name}:*" in hosts
    assert "vibexp.example.com" not in hosts  # the Ingress is off
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    assert selector["app.kubernetes.io/component"] == "api"


def test_api_service_and_pdb(default_objects: list[dict[str, Any]]) -> None:
    service = find(default_objects, "Service", API)
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"http": (80, "http"), "metrics": (9090, "metrics")}
    api_pods = find(default_objects, "Deployment", API)["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == api_pods
    pdb = find(default_objects, "PodDisruptionBudget", API)
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": api_pods}}


def test_operator_deployment_is_one_replica_recreate(default_objects: list[dict[str, Any]]) -> None:
    deployment = find(default_objects, "Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == OPERATOR
    operator = container(deployment, "operator")
    assert operator["args"] == ["operator"]  # no --namespace: every namespace
    assert {(p["name"], p["containerPort"]) for p in operator["ports"]} == {("metrics", 9090), ("health", 8080)}
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    env = env_of(operator)
    assert env["VIBEXP_OPERATOR_METRICS_PORT"] == "9090" and env["VIBEXP_OPERATOR_HEALTH_PORT"] == "8080"
    sa = find(default_objects, "ServiceAccount", OPERATOR)
    assert sa["metadata"]["namespace"] == NS
    api_sa = find(default_objects, "ServiceAccount", API)
    assert api_sa["automountServiceAccountToken"] is False


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {
        (group, resource, tuple(sorted(rule["verbs"])))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


NAMESPACED_RULES = {
    ("vibexp.io", "apikeys", ("get", "list", "patch", "watch")),
    ("vibexp.io", "apikeys/status", ("patch",)),
    ("vibexp.io", "apikeys/finalizers", ("update",)),
    ("", "secrets", ("create", "delete", "get", "list", "patch", "update", "watch")),
    ("", "events", ("create",)),
}
CLUSTER_RULES = {
    ("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch")),
    ("vibexp.io", "vibexptenants", ("get", "list", "patch", "watch")),
    ("vibexp.io", "vibexptenants/status", ("patch",)),
}


def test_operator_rbac_cluster_wide_is_exactly_what_it_needs(default_objects: list[dict[str, Any]]) -> None:
    role = find(default_objects, "ClusterRole", OPERATOR)
    assert rules_of(role) == CLUSTER_RULES | NAMESPACED_RULES
    binding = find(default_objects, "ClusterRoleBinding", OPERATOR)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": OPERATOR}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": NS}]
    assert not by_kind(default_objects, "Role") and not by_kind(default_objects, "RoleBinding")


def test_every_rbac_rule_says_why(helm: Helm) -> None:
    """Each rule in the rendered text is preceded by a comment (the reason it exists)."""
    for values in (None, {"operator": {"watchNamespaces": ["team-a"]}}):
        text = helm.template_text(values, extra=["--show-only", "templates/operator-clusterrole.yaml"])
        text += helm.template_text(values, extra=["--show-only", "templates/operator-role.yaml"]) if values else ""
        lines = text.splitlines()
        rule_lines = [i for i, line in enumerate(lines) if line.lstrip().startswith("- apiGroups:")]
        assert rule_lines
        for i in rule_lines:
            assert lines[i - 1].lstrip().startswith("#"), f"rule without a reason: {lines[i]}"


def test_migration_job_is_a_pre_install_pre_upgrade_hook(default_objects: list[dict[str, Any]]) -> None:
    job = find(default_objects, "Job", "vibexp-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod  # the chart's ServiceAccounts do not exist yet at pre-install
    assert container(job, "migrate")["args"] == ["db", "upgrade"]
    assert job["spec"]["backoffLimit"] == 3 and job["spec"]["activeDeadlineSeconds"] == 600


def test_crds_are_the_repository_crds_kept_on_uninstall(default_objects: list[dict[str, Any]]) -> None:
    rendered = {c["metadata"]["name"]: c for c in by_kind(default_objects, "CustomResourceDefinition")}
    source = {}
    for path in CRDS_SOURCE.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                source[doc["metadata"]["name"]] = doc
    assert rendered.keys() == source.keys() == {"apikeys.vibexp.io", "vibexptenants.vibexp.io"}
    for name, crd in rendered.items():
        assert crd["spec"] == source[name]["spec"], f"{name}: the chart changed the CRD's spec"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert source[name]["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_chart_copy_of_the_crds_is_identical_to_crds_folder() -> None:
    assert sorted(p.name for p in CRDS_IN_CHART.glob("*.yaml")) == sorted(p.name for p in CRDS_SOURCE.glob("*.yaml"))
    assert crd_copies_stale() == [], "charts/vibexp/files/crds differs from crds/: run `make manifests`"


def test_dashboard_configmap_carries_the_dashboard_json(default_objects: list[dict[str, Any]]) -> None:
    cm = find(default_objects, "ConfigMap", "vibexp-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = (CHART / "dashboards" / "vibexp-usage.json").read_text()
    assert json.loads(cm["data"]["vibexp-usage.json"]) == json.loads(shipped)


def test_plain_manifests_are_fresh(helm: Helm) -> None:
    assert MANIFESTS.exists(), "manifests/vibexp.yaml is missing: run `make manifests`"
    assert MANIFESTS.read_text() == expected_manifests(helm), "manifests/vibexp.yaml is stale: run `make manifests`"
    docs = [d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d]
    assert find(docs, "Deployment", API)["metadata"]["namespace"] == NS


# -- toggles ----------------------------------------------------------------------------------------------------
def test_autoscaling_adds_an_hpa_and_drops_fixed_replicas(helm: Helm) -> None:
    objects = helm.template({"api": {"autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80}}})
    hpa = find(objects, "HorizontalPodAutoscaler", API)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": API}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
    assert targets == {"cpu": 70, "memory": 80}
    assert "replicas" not in find(objects, "Deployment", API)["spec"]


def test_pdb_toggles(helm: Helm) -> None:
    assert not by_kind(helm.template({"api": {"podDisruptionBudget": {"enabled": False}}}), "PodDisruptionBudget")
    pdb = find(helm.template({"api": {"podDisruptionBudget": {"minAvailable": 1}}}), "PodDisruptionBudget", API)
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"]


def test_ingress_routes_the_http_port_only_and_allows_its_hosts_for_mcp(helm: Helm) -> None:
    values = {
        "api": {
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                "hosts": [
                    {"host": "vibexp.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]},
                    {"host": "mcp.example.com", "paths": [{"path": "/mcp", "pathType": "Prefix"}]},
                ],
                "tls": [{"secretName": "vibexp-tls", "hosts": ["vibexp.example.com", "mcp.example.com"]}],
            }
        }
    }
    objects = helm.template(values)
    ingress = find(objects, "Ingress", API)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    backends = [p["backend"]["service"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert backends == [{"name": API, "port": {"name": "http"}}] * 2  # never the `metrics` port
    api = container(find(objects, "Deployment", API), "api")
    env = env_of(api)
    hosts = env["VIBEXP_MCP_ALLOWED_HOSTS"].split(",")
    assert {"vibexp.example.com", "mcp.example.com"} <= set(hosts)
    assert env["VIBEXP_SECURE_COOKIES"] == "true"  # TLS in front


def test_service_monitors(helm: Helm) -> None:
    objects = helm.template({"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}})
    api_sm = find(objects, "ServiceMonitor", API)
    assert api_sm["metadata"]["labels"]["release"] == "kps"
    assert api_sm["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert api_sm["spec"]["selector"]["matchLabels"] == find(objects, "Service", API)["spec"]["selector"]
    assert api_sm["spec"]["namespaceSelector"] == {"matchNames": [NS]}
    op_sm = find(objects, "ServiceMonitor", OPERATOR)
    op_svc = find(objects, "Service", f"{OPERATOR}-metrics")
    assert op_svc["spec"]["clusterIP"] == "None"
    assert op_svc["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    assert op_sm["spec"]["selector"]["matchLabels"] == op_svc["spec"]["selector"]
    assert not by_kind(objects, "PodMonitor")


def test_pod_monitors(helm: Helm) -> None:
    objects = helm.template({"metrics": {"podMonitor": {"enabled": True, "interval": "15s"}}})
    for name, component in ((API, "api"), (OPERATOR, "operator")):
        pm = find(objects, "PodMonitor", name)
        assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
        assert pm["spec"]["podMetricsEndpoints"][0]["interval"] == "15s"
        pods = find(objects, "Deployment", name)["spec"]["selector"]["matchLabels"]
        assert pm["spec"]["selector"]["matchLabels"] == pods
        assert pods["app.kubernetes.io/component"] == component
    assert not by_kind(objects, "ServiceMonitor")


def test_prometheus_rule_carries_the_alert_rules_file(helm: Helm) -> None:
    objects = helm.template({"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}})
    rule = find(objects, "PrometheusRule", "vibexp")
    shipped = yaml.safe_load((CHART / "rules" / "vibexp-alerts.yaml").read_text())
    assert rule["spec"]["groups"] == shipped["groups"]
    assert rule["metadata"]["labels"]["release"] == "kps"
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts, "no alert in the PrometheusRule"


def test_network_policies_keep_metrics_ports_for_prometheus(helm: Helm) -> None:
    objects = helm.template({"networkPolicy": {"enabled": True}})
    api_np = find(objects, "NetworkPolicy", API)
    assert api_np["spec"]["policyTypes"] == ["Ingress"]
    http_rule, metrics_rule = api_np["spec"]["ingress"]
    assert http_rule == {"ports": [{"port": "http", "protocol": "TCP"}]}  # anyone (no `from`)
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    prometheus = [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]
    assert metrics_rule["from"] == prometheus
    op_np = find(objects, "NetworkPolicy", OPERATOR)
    assert op_np["spec"]["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}], "from": prometheus}]

    custom = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    ingress_ctl = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    objects = helm.template({"networkPolicy": {"enabled": True, "metricsFrom": custom, "httpFrom": ingress_ctl}})
    http_rule, metrics_rule = find(objects, "NetworkPolicy", API)["spec"]["ingress"]
    assert http_rule["from"] == ingress_ctl and metrics_rule["from"] == custom


def test_alert_secrets_are_readable_by_name_only(helm: Helm) -> None:
    """spec.alerts.webhookSecretRef Secrets in the release namespace: get, by name, nothing else there."""
    objects = helm.template({"operator": {"watchNamespaces": ["team-a"], "alertSecrets": ["acme-webhook"]}})
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in by_kind(objects, "Role")}
    rules = roles[(NS, f"{OPERATOR}-events")]["rules"]
    secret_rules = [r for r in rules if "secrets" in r["resources"]]
    assert secret_rules == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["acme-webhook"], "verbs": ["get"]}
    ]


def test_watch_namespaces_confine_secrets_to_those_namespaces(helm: Helm) -> None:
    objects = helm.template({"operator": {"watchNamespaces": ["team-a", "team-b"]}})
    cluster_role = find(objects, "ClusterRole", OPERATOR)
    namespaces_rule = ("", "namespaces", ("list", "watch"))
    assert rules_of(cluster_role) == CLUSTER_RULES | {namespaces_rule}  # no Secrets, no ApiKeys cluster-wide
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in by_kind(objects, "Role")}
    assert set(roles) == {("team-a", OPERATOR), ("team-b", OPERATOR), (NS, f"{OPERATOR}-events")}
    for ns in ("team-a", "team-b"):
        assert rules_of(roles[(ns, OPERATOR)]) == NAMESPACED_RULES
    assert rules_of(roles[(NS, f"{OPERATOR}-events")]) == {("", "events", ("create",))}  # no Secret of its own ns
    bindings = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in by_kind(objects, "RoleBinding")}
    assert set(bindings) == set(roles)
    for (_ns, name), binding in bindings.items():
        assert binding["roleRef"]["name"] == name
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": NS}]
    args = container(find(objects, "Deployment", OPERATOR), "operator")["args"]
    assert args == ["operator", "--namespace=team-a", "--namespace=team-b"]

    # Serving its own namespace too: no separate events Role there.
    objects = helm.template({"operator": {"watchNamespaces": [NS]}})
    assert [(r["metadata"]["namespace"], r["metadata"]["name"]) for r in by_kind(objects, "Role")] == [(NS, OPERATOR)]


def test_operator_disabled_renders_no_operator_objects(helm: Helm) -> None:
    objects = helm.template({"operator": {"enabled": False}, "metrics": {"serviceMonitor": {"enabled": True}}})
    components = {o["metadata"]["labels"].get("app.kubernetes.io/component") for o in objects}
    assert "operator" not in components
    assert not by_kind(objects, "ClusterRole") and not by_kind(objects, "ClusterRoleBinding")
    find(objects, "ServiceMonitor", API)


def test_crds_toggles(helm: Helm) -> None:
    assert not by_kind(helm.template({"crds": {"enabled": False}}), "CustomResourceDefinition")
    crds = by_kind(helm.template({"crds": {"keep": False}}), "CustomResourceDefinition")
    assert len(crds) == 2
    assert all("helm.sh/resource-policy" not in (c["metadata"].get("annotations") or {}) for c in crds)


def test_migrations_and_dashboard_toggles(helm: Helm) -> None:
    objects = helm.template({"migrations": {"enabled": False}, "dashboard": {"enabled": False}})
    assert not by_kind(objects, "Job") and not by_kind(objects, "ConfigMap")
    cm = find(
        helm.template({"dashboard": {"namespace": "monitoring", "annotations": {"grafana_folder": "VibeXP"}}}),
        "ConfigMap",
        "vibexp-dashboard",
    )
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "VibeXP"}


def test_secrets_image_env_and_names_are_configurable(helm: Helm) -> None:
    values = {
        "fullnameOverride": "vx",
        "image": {"repository": "registry.local/vibexp", "tag": "1.2.3", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "database": {"existingSecret": "pg", "existingSecretKey": "dsn"},
        "secretKey": {"existingSecret": "session", "existingSecretKey": "key"},
        "extraEnv": [{"name": "VIBEXP_USAGE_RETENTION_DAYS", "value": "90"}],
        "api": {"serviceAccount": {"create": False}, "replicaCount": 5},
    }
    objects = helm.template(values)
    api = find(objects, "Deployment", "vx-api")
    assert api["spec"]["replicas"] == 5
    pod = api["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["serviceAccountName"] == "default"
    assert not [sa for sa in by_kind(objects, "ServiceAccount") if sa["metadata"]["name"] == "vx-api"]
    for workload in (api, find(objects, "Deployment", "vx-operator"), find(objects, "Job", "vx-migrate")):
        c = workload["spec"]["template"]["spec"]["containers"][0]
        assert c["image"] == "registry.local/vibexp:1.2.3" and c["imagePullPolicy"] == "Always"
        env = env_of(c)
        assert env["VIBEXP_DATABASE_URL"] == {"secretKeyRef": {"name": "pg", "key": "dsn"}}
        assert env["VIBEXP_SECRET_KEY"] == {"secretKeyRef": {"name": "session", "key": "key"}}
        assert env["VIBEXP_USAGE_RETENTION_DAYS"] == "90"
    hosts = env_of(container(api, "api"))["VIBEXP_MCP_ALLOWED_HOSTS"].split(",")
    assert "vx-api.vibexp.svc.cluster.local" in hosts


def test_release_name_containing_vibexp_is_not_repeated(helm: Helm) -> None:
    objects = helm.template(release="my-vibexp", namespace="apps")
    find(objects, "Deployment", "my-vibexp-api")
    objects = helm.template(release="prod", namespace="apps")
    find(objects, "Deployment", "prod-vibexp-api")


# -- the schema refuses bad values ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"database": {"existingSecret": ""}}, "existingSecret"),
        ({"environment": "staging"}, "environment"),
        ({"operator": {"watchNamespaces": "team-a"}}, "watchNamespaces"),
        ({"operator": {"watchNamespaces": ["Team_A"]}}, "watchNamespaces"),
        ({"api": {"replicas": 3}}, "replicas"),  # a typo of replicaCount
        ({"api": {"port": 70000}}, "port"),
        ({"metrics": {"serviceMonitor": {"enabled": "yes"}}}, "enabled"),
        (
            {
                "api": {
                    "ingress": {
                        "hosts": [{"host": "x.example.com", "paths": [{"path": "no-slash", "pathType": "Prefix"}]}]
                    }
                }
            },
            "path",
        ),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ],
)
def test_schema_rejects_bad_values(helm: Helm, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmError) as info:
        helm.template(values)
    assert "schema" in info.value.stderr.lower() and complaint in info.value.stderr, info.value.stderr


def test_every_value_is_documented() -> None:
    """Every value has a `# --` comment right above it, or sits inside a documented block (e.g. a probe)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip(" -"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        above = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            above.append(lines[j].strip())
            j -= 1
        documented = any(c.startswith("# --") for c in above) or any(doc for _, doc in stack)
        key, _, rest = stripped.lstrip("- ").partition(":")
        if rest.strip() and not documented:  # a leaf value
            undocumented.append(f"values.yaml:{i + 1}: {key}")
        stack.append((indent, documented))
    assert not undocumented, "\n".join(undocumented)


def test_schema_describes_every_default_value() -> None:
    """values.schema.json knows every key of values.yaml (additionalProperties is false where it matters)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict) or "properties" not in node:
            return
        for key, sub in value.items():
            assert key in node["properties"], f"{path}{key} is not in values.schema.json"
            walk(node["properties"][key], sub, f"{path}{key}.")

    walk(schema, values, "")


def test_rendered_yaml_has_no_empty_documents_or_tabs(helm: Helm) -> None:
    text = helm.template_text(ALL_TOGGLES)
    assert "\t" not in text
    for doc in text.split("\n---"):
        body = [line for line in doc.splitlines() if line.strip() and not line.startswith("#")]
        assert body, "an empty YAML document was rendered"


def test_chart_files_exist() -> None:
    for name in ("Chart.yaml", "values.yaml", "values.schema.json", "templates/_helpers.tpl"):
        assert (CHART / name).is_file(), name
    assert Path(CHART / "dashboards" / "vibexp-usage.json").is_file()
    assert Path(CHART / "rules" / "vibexp-alerts.yaml").is_file()


def test_examples_reach_the_api_through_the_charts_service(default_objects: list[dict[str, Any]]) -> None:
    """URLs in manifests/examples name the API Service that `helm install vibexp -n vibexp` creates, on its port."""
    service = find(default_objects, "Service", API)
    http_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    hosts = env_of(container(find(default_objects, "Deployment", API), "api"))["VIBEXP_MCP_ALLOWED_HOSTS"].split(",")
    urls = re.findall(r"https?://[^\s\"'$]+", "\n".join(p.read_text() for p in EXAMPLES.glob("*.yaml")))
    cluster_urls = [u for u in urls if ".svc" in u]
    assert cluster_urls, "no in-cluster URL in manifests/examples"
    for url in cluster_urls:
        parsed = urlsplit(url)
        assert parsed.hostname == f"{API}.{NS}.svc.cluster.local", url
        assert (parsed.port or 80) == http_port, url
        assert parsed.hostname in hosts  # the MCP endpoint accepts that Host header too


def test_api_workers_run_in_prometheus_multiprocess_mode(helm: Helm) -> None:
    """`api.workers` > 1: `vibexp serve --workers N`, metrics files on the /tmp emptyDir; 1 (the default) adds
    neither (test_api_deployment checks the default arguments)."""
    api = container(find(helm.template({"api": {"workers": 3}}), "Deployment", API), "api")
    assert api["args"] == ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "3"]
    assert env_of(api)["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert any(m["mountPath"] == "/tmp" for m in api["volumeMounts"])
    default = container(find(helm.template({}), "Deployment", API), "api")
    assert "PROMETHEUS_MULTIPROC_DIR" not in env_of(default)
    with pytest.raises(HelmError):
        helm.template({"api": {"workers": 0}})
