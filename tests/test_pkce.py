from __future__ import annotations

import hashlib
import string

from aiomsal._protocol._pkce import (
    Pkce,
    new_nonce,
    new_pkce,
    new_state,
    nonce_claim,
    s256_challenge,
)

UNRESERVED = set(string.ascii_letters + string.digits + "-._~")


def test_s256_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_new_pkce_is_well_formed() -> None:
    pkce = new_pkce()
    assert 43 <= len(pkce.verifier) <= 128
    assert set(pkce.verifier) <= UNRESERVED
    assert pkce.challenge == s256_challenge(pkce.verifier)
    assert "=" not in pkce.challenge
    assert pkce.method == "S256"


def test_new_pkce_is_fresh_each_time() -> None:
    assert len({new_pkce().verifier for _ in range(20)}) == 20


def test_verifier_not_in_repr() -> None:
    pkce = Pkce(verifier="the-secret-verifier-value", challenge="abc")
    assert "the-secret-verifier-value" not in repr(pkce)
    assert "abc" in repr(pkce)


def test_state_and_nonce_are_fresh_and_url_safe() -> None:
    values = {new_state() for _ in range(10)} | {new_nonce() for _ in range(10)}
    assert len(values) == 20
    for value in values:
        assert len(value) >= 20
        assert set(value) <= UNRESERVED


def test_nonce_claim_is_hex_sha256() -> None:
    assert nonce_claim("abc") == hashlib.sha256(b"abc").hexdigest()
