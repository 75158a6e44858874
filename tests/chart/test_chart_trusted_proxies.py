"""`api.trustedProxies`: the chart turns it into the API's VIBEXP_TRUSTED_PROXIES (what the API's own settings
parse, so X-Forwarded-For from the ingress controller names the client), its schema refuses what is not a CIDR; an
Ingress without it trusts the private ranges pod networks come from (`api.ingress.trustedProxies`), and the install
notes say so."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from helmlib import CHART, Helm, HelmError, find
from vibexp.core.client_address import ClientAddressResolver
from vibexp.core.config import Settings

pytestmark = pytest.mark.kube  # needs the helm binary of the test environment

INGRESS = {"enabled": True, "hosts": [{"host": "vibexp.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}]}
CONTROLLER_PODS = ["10.244.0.0/16", "fd00:10:244::/56"]
NOTE = "NOTE: api.trustedProxies is empty"
PRIVATE_RANGES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"


def api_env(helm: Helm, values: dict[str, Any] | None = None) -> dict[str, str]:
    deployment = find(helm.template(values), "Deployment", "vibexp-api")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def notes(helm: Helm, values: dict[str, Any]) -> str:
    """The install notes as `helm install` prints them (a client-side dry run: no cluster involved)."""
    args = ["install", "vibexp", str(CHART), "--namespace", "vibexp", "--dry-run=client", *helm.values_file(values)]
    output = helm.run(*args).stdout
    return output.partition("NOTES:")[2]


def test_no_trusted_proxies_by_default(default_objects: list[dict[str, Any]]) -> None:
    container = find(default_objects, "Deployment", "vibexp-api")["spec"]["template"]["spec"]["containers"][0]
    assert "VIBEXP_TRUSTED_PROXIES" not in {e["name"] for e in container["env"]}


def test_the_ingress_path_gets_the_controllers_network(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    env = api_env(helm, {"api": {"ingress": INGRESS, "trustedProxies": CONTROLLER_PODS}})
    assert env["VIBEXP_TRUSTED_PROXIES"] == "10.244.0.0/16,fd00:10:244::/56"

    # The API reads the rendered value with its own settings; a request the controller forwards is the client's.
    monkeypatch.setenv("VIBEXP_TRUSTED_PROXIES", env["VIBEXP_TRUSTED_PROXIES"])
    settings = Settings()
    assert settings.trusted_proxies == CONTROLLER_PODS
    resolver = ClientAddressResolver(settings.trusted_proxies)
    assert resolver.resolve("10.244.3.7", "203.0.113.5") == "203.0.113.5"
    assert resolver.resolve("fd00:10:244::9", "2001:db8::5") == "2001:db8::5"
    # Anyone else's X-Forwarded-For is ignored: the peer is the client.
    assert resolver.resolve("198.51.100.7", "203.0.113.5") == "198.51.100.7"


def test_a_host_bit_network_passes_the_schema_but_the_api_refuses_it(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schema checks the shape; host bits are checked where they mean something, at the API's start."""
    env = api_env(helm, {"api": {"trustedProxies": ["10.244.0.1/16"]}})
    monkeypatch.setenv("VIBEXP_TRUSTED_PROXIES", env["VIBEXP_TRUSTED_PROXIES"])
    with pytest.raises(ValidationError, match=r"has host bits set: did you mean 10\.244\.0\.0/16\?"):
        Settings()


@pytest.mark.parametrize(
    "proxies",
    [
        "10.244.0.0/16",  # a string, not a list
        ["10.244.0.0"],  # no prefix length
        ["10.244.0.0/33"],
        ["fe80::1%eth0/64"],  # an IPv6 zone
        ["2001:db8::/129"],
        ["ingress-nginx"],
        ["10.244.0.0/16", "10.244.0.0/16"],
    ],
)
def test_schema_refuses_what_is_not_a_list_of_cidrs(helm: Helm, proxies: object) -> None:
    with pytest.raises(HelmError) as info:
        helm.template({"api": {"trustedProxies": proxies}})
    assert "trustedProxies" in info.value.stderr, info.value.stderr


def test_the_ingress_path_trusts_the_private_ranges_by_default(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    env = api_env(helm, {"api": {"ingress": INGRESS}})
    assert env["VIBEXP_TRUSTED_PROXIES"] == PRIVATE_RANGES
    monkeypatch.setenv("VIBEXP_TRUSTED_PROXIES", env["VIBEXP_TRUSTED_PROXIES"])
    resolver = ClientAddressResolver(Settings().trusted_proxies)
    # An ingress controller pod, wherever the cluster puts its pods, names the client; the internet does not.
    for controller in ("10.244.3.7", "172.20.0.4", "100.96.1.2", "fd00:10:244::9"):
        assert resolver.resolve(controller, "203.0.113.5") == "203.0.113.5"
    assert resolver.resolve("198.51.100.7", "203.0.113.5") == "198.51.100.7"
    # api.trustedProxies, when set, replaces the default; without an Ingress nothing is trusted.
    narrowed = api_env(helm, {"api": {"ingress": INGRESS, "trustedProxies": CONTROLLER_PODS}})
    assert narrowed["VIBEXP_TRUSTED_PROXIES"] == "10.244.0.0/16,fd00:10:244::/56"
    assert "VIBEXP_TRUSTED_PROXIES" not in api_env(helm, {"api": {"ingress": {**INGRESS, "enabled": False}}})


def test_an_ingress_without_trusted_proxies_is_called_out(helm: Helm) -> None:
    assert NOTE in notes(helm, {"api": {"ingress": INGRESS}})
    assert NOTE not in notes(helm, {"api": {"ingress": INGRESS, "trustedProxies": CONTROLLER_PODS}})
    assert NOTE not in notes(helm, {})  # no Ingress: nothing to say
    assert "Outside the cluster" in notes(helm, {"api": {"ingress": INGRESS, "trustedProxies": CONTROLLER_PODS}})
