"""OAuth secrets: their shape, that logs and the audit trail mask them like keys, and the PKCE S256 check."""

from __future__ import annotations

import re

from oauth.flow import Pkce
from vibexp.core.oauth.tokens import hash_secret, new_access_token, new_code, new_refresh_token, pkce_matches
from vibexp.core.redaction import mask_keys


def test_tokens_are_prefixed_random_hex_and_hashed() -> None:
    for make, prefix in ((new_access_token, "vibo_"), (new_refresh_token, "vibr_"), (new_code, "vibc_")):
        one, two = make(), make()
        assert re.fullmatch(prefix + "[0-9a-f]{64}", one) and one != two
        assert hash_secret(one) != one and len(hash_secret(one)) == 64


def test_redaction_masks_tokens_and_codes_down_to_their_display_prefix() -> None:
    access, refresh, code = new_access_token(), new_refresh_token(), new_code()
    masked = mask_keys(f"Bearer {access} refresh={refresh}&code={code}")
    for secret in (access, refresh, code):
        assert secret not in masked and secret[:13] + "…" in masked


def test_pkce_s256_only_matches_its_verifier() -> None:
    pair, other = Pkce.new(), Pkce.new()
    assert pkce_matches(pair.verifier, pair.challenge)
    assert not pkce_matches(other.verifier, pair.challenge)
    assert not pkce_matches(pair.challenge, pair.challenge)  # "plain": the challenge itself is no verifier
    assert not pkce_matches("short", pair.challenge)  # outside RFC 7636's 43-128 characters
