"""The dashboard's operator panels against the real operator: a real `vibexp operator` reconciles VibeXPTenants and
ApiKeys on the test kube-apiserver (one delete meets a real database outage, so some reconciles fail), a real Prometheus
(127.0.0.1 only, temporary data directory) scrapes the operator's metrics port, and every operator panel's query
must return data. The API's panels are covered by tests/observability/test_dashboard_prometheus.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from opkit import Operator, unique, wait_until
from test_outage import database_outage

from helpers.prometheus import panel_queries, panels_without_data, start_prometheus

pytestmark = [pytest.mark.kube, pytest.mark.slow]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_every_operator_panel_returns_data(operator: Operator, database_url: str, tmp_path: Path) -> None:
    prometheus = start_prometheus(tmp_path, {"vibexp-operator": operator.metrics_port})
    try:
        started = time.time()
        op = operator.start()
        tenant = unique("panels")
        op.create_tenant(tenant)
        op.create_apikey("one", tenant)
        op.create_apikey("two", tenant)
        op.wait_ready("one")
        op.wait_ready("two")
        # A real fault: the database refuses connections while key "two" is deleted, so the delete handler fails
        # (temporary errors, retried) until it is back.
        with database_outage(database_url):
            assert op.admin.delete(op.apikeys("two")).status_code == 200
            prometheus.wait_for(
                'sum by (resource, handler) (vibexp_operator_reconcile_errors_total{job="vibexp-operator"}) > 0',
                "a scraped reconcile error",
            )
        wait_until(lambda: op.get(op.apikeys("two")) is None, "ApiKey deleted after the database came back", 60)
        time.sleep(5)  # a few more scrapes

        queries = panel_queries(lambda expr: "vibexp_operator_" in expr)
        assert len(queries) >= 4
        empty = panels_without_data(prometheus, queries, started)
        assert empty == [], "operator panels without data:\n" + "\n".join(empty) + "\n" + op.log()[-3000:]
        rules = [r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
        operator_rule = next(r for r in rules if r["name"] == "VibeXPOperatorReconcileErrors")
        assert operator_rule["health"] == "ok", operator_rule.get("lastError")
    finally:
        assert prometheus.stop() is not None
