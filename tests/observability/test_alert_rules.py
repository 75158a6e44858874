"""The alert rules and the dashboard, checked by Prometheus's own ``promtool`` (Debian's ``prometheus`` package,
installed by ``make prometheus``) and against the metrics the code really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import vibexp.api.metrics
from vibexp.operator.metrics import OperatorMetrics

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "charts/vibexp/rules/vibexp-alerts.yaml"
RULE_TESTS = REPO / "tests/prometheus/alerts_test.yaml"
DASHBOARD = REPO / "charts/vibexp/dashboards/vibexp-usage.json"
METRICS_DOC = REPO / "docs/metrics.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: run `make prometheus` (Debian's prometheus package)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def alert_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def exported_families() -> dict[str, str]:
    """Every metric family the API and the operator export, by name, with its type."""
    assert vibexp.api.metrics.HTTP_REQUESTS  # the API's metrics are registered on import
    families: dict[str, str] = {}
    for registry in (REGISTRY, OperatorMetrics().registry):
        for family in registry.collect():
            if family.name.startswith("vibexp_"):
                families[family.name] = family.type
    return families


def sample_names(families: dict[str, str]) -> set[str]:
    """The names PromQL can use: ``_total`` for counters; ``_bucket``, ``_count``, ``_sum`` for histograms."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {name + suffix for name, kind in families.items() for suffix in suffixes[kind]}


def referenced_names(text: str) -> set[str]:
    return set(re.findall(r"\bvibexp_[a-z_]+\b", text))


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    checked: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            checked.add(check["alertname"])
            if check.get("exp_alerts"):
                firing.add(check["alertname"])
    assert firing == alert_names(), "every alert needs a case where it fires"
    assert checked == alert_names()


def test_promtool_catches_a_broken_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: the same cases against a rule file with a wrong threshold do."""
    rules = tmp_path / "charts/vibexp/rules/vibexp-alerts.yaml"
    rules.parent.mkdir(parents=True)
    rules.write_text(RULES.read_text().replace("> 0.8 < 1", "> 0.9 < 1"))
    cases = tmp_path / "tests/prometheus/alerts_test.yaml"
    cases.parent.mkdir(parents=True)
    cases.write_text(RULE_TESTS.read_text())
    result = promtool("test", "rules", str(cases))
    assert result.returncode != 0
    assert "VibeXPTenantNearLimit" in result.stdout + result.stderr


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    families = exported_families()
    used = referenced_names(RULES.read_text()) | referenced_names(DASHBOARD.read_text())
    assert used - sample_names(families) == set()
    # ... and docs/metrics.md documents every metric the code exports, by the name PromQL uses.
    documented = referenced_names(METRICS_DOC.read_text())
    promql_names = {name + ("_total" if kind == "counter" else "") for name, kind in families.items()}
    assert promql_names - documented == set()


def test_dashboard_is_a_grafana_dashboard_for_the_sidecar() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "vibexp-usage"
    assert "id" not in dashboard or dashboard["id"] is None  # provisioned dashboards carry no database id
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = {p["title"] for p in panels}
    for wanted in (
        "Requests by tenant",
        "Requests by key",
        "Requests by tool",
        "Last used per key",
        "Rate-limit hits (429)",
        "Authentication failures",
        "Latency p50 / p99",
        "Reconciles by result",
        "Reconcile errors",
        "Alerts opened by kind",
        "Keys expiring within 30 days",
    ):
        assert wanted in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # Per-key panels name the key (joined on vibexp_api_key_info), and keep keys with no info series by their id.
    for title in ("Requests by key", "Last used per key", "Tools per key", "Keys expiring within 30 days"):
        [panel] = [p for p in panels if p["title"] == title]
        for target in panel["targets"]:
            assert "group_left (name)" in target["expr"] and "vibexp_api_key_info" in target["expr"], title
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].strip()


def test_the_expiry_warning_cases_catch_a_wrong_window_or_a_missing_lower_bound(tmp_path: Path) -> None:
    """VibeXPKeyExpiringSoon's cases fail against a 5-day window (6 days left is missed) and without ``> 0`` (the
    expired key fires)."""
    text = RULES.read_text()
    rule = "max by (tenant, key_id) (vibexp_api_key_expiry_timestamp_seconds) - time() < 7 * 86400 > 0"
    assert rule in text
    for broken in (rule.replace("7 * 86400", "5 * 86400"), rule.removesuffix(" > 0")):
        rules = tmp_path / "charts/vibexp/rules/vibexp-alerts.yaml"
        rules.parent.mkdir(parents=True, exist_ok=True)
        rules.write_text(text.replace(rule, broken))
        cases = tmp_path / "tests/prometheus/alerts_test.yaml"
        cases.parent.mkdir(parents=True, exist_ok=True)
        cases.write_text(RULE_TESTS.read_text())
        result = promtool("test", "rules", str(cases))
        assert result.returncode != 0, broken
        assert "VibeXPKeyExpiringSoon" in result.stdout + result.stderr
