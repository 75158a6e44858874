"""`vibexp operator` without -n serves every namespace, including ones created after it started."""

from __future__ import annotations

import pytest
from opkit import Operator, call_api, unique

from helpers.servers import LiveServer

pytestmark = [pytest.mark.kube]


def test_clusterwide_operator_serves_any_namespace(operator: Operator, api: LiveServer) -> None:
    op = operator.start(clusterwide=True)
    tenant = unique("everywhere")
    op.create_tenant(tenant, allowedNamespaces=["*"])
    first_ns = op.ns
    op.create_apikey("here", tenant)

    later_ns = unique("later")
    assert op.admin.post("/api/v1/namespaces", json={"metadata": {"name": later_ns}}).status_code == 201
    op.ns = later_ns
    op.create_apikey("there", tenant)
    op.wait_ready("there", timeout=90)  # a cluster-wide operator also resumes what earlier tests left behind
    there = op.secret_key("there")
    op.ns = first_ns
    op.wait_ready("here", timeout=90)
    here = op.secret_key("here")
    assert here and there and here != there
    assert call_api(api.url, here) == 200 and call_api(api.url, there) == 200
