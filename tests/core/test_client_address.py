"""The client address resolver: always an IP literal in its normal form, whatever ``X-Forwarded-For`` holds."""

from __future__ import annotations

from vibexp.core.client_address import ClientAddressResolver, address_literal

PROXY = "10.0.0.0/8"


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header() -> None:
    resolver = ClientAddressResolver()
    assert resolver.resolve("127.0.0.1", "203.0.113.5") == "127.0.0.1"
    assert resolver.resolve("::ffff:127.0.0.1", None) == "127.0.0.1"
    assert resolver.resolve(None, "203.0.113.5") is None


def test_a_garbage_hop_falls_back_to_the_nearest_address_a_trusted_proxy_vouched_for() -> None:
    resolver = ClientAddressResolver([PROXY])
    garbage = "x" * 300
    assert resolver.resolve("10.1.2.3", garbage) == "10.1.2.3"
    assert resolver.resolve("10.1.2.3", f"{garbage}, {garbage}") == "10.1.2.3"
    assert resolver.resolve("10.1.2.3", f"198.51.100.7, {garbage}, 10.9.9.9") == "10.9.9.9"
    assert resolver.resolve("10.1.2.3", "fe80::1%eth0") == "10.1.2.3"  # a zone id names nothing elsewhere
    assert resolver.resolve("10.1.2.3", "1" * 60) == "10.1.2.3"
    assert resolver.resolve("10.1.2.3", "") == "10.1.2.3"
    # Good hops as before: the first untrusted one from the right, normalised.
    assert resolver.resolve("10.1.2.3", f"{garbage}, ::ffff:198.51.100.7") == "198.51.100.7"
    assert resolver.resolve("10.1.2.3", "2001:DB8::0:1, 10.9.9.9") == "2001:db8::1"
    assert resolver.resolve("10.1.2.3", "10.8.8.8, 10.9.9.9") == "10.8.8.8"  # every hop trusted: the first


def test_a_peer_that_is_no_address_gives_none() -> None:
    assert ClientAddressResolver([PROXY]).resolve("not-an-ip", "198.51.100.7") is None
    assert address_literal("a" * 100) is None
    assert address_literal("::ffff:10.0.0.1") == "10.0.0.1"
    assert address_literal(None) is None
