"""The attack table: forged, misdirected and stale tokens are refused, and nothing is cached."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from aiomsal import MsalInvalidTokenError, TokenValidator
from aiomsal.testing import FakeAuthority, VirtualClock
from aiomsal.testing._fake_tokens import TokenSigner
from tests.helpers import advance_until, wait_until

pytestmark = pytest.mark.anyio

API = "orders-api"
GRAPH = "https://graph.microsoft.com"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def private_key(signer: TokenSigner) -> Any:
    return serialization.load_pem_private_key(signer.certificate.private_key_pem, None)


def public_pem(signer: TokenSigner) -> bytes:
    pem: bytes = (
        private_key(signer)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pem


class Forge:
    """Builds the attacks against one fake authority."""

    def __init__(self, fake: FakeAuthority, attacker: TokenSigner) -> None:
        self.fake = fake
        self.attacker = attacker
        self.tid = fake.tenant_id("contoso")

    def claims(self, **changes: Any) -> dict[str, Any]:
        token = self.fake.issue_access_token(API, scopes="Orders.Read")
        body: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        body.update(changes)
        return body

    def signed(self, claims: dict[str, Any], signer: TokenSigner, **headers: Any) -> str:
        return jwt.encode(claims, private_key(signer), algorithm="RS256", headers=headers)

    def real_kid(self) -> str:
        return self.fake.active_signing_key_id


ATTACKS: dict[str, Callable[[Forge], str]] = {
    "alg=none": lambda f: f"{segment({'alg': 'none', 'kid': f.real_kid()})}.{segment(f.claims())}.",
    "alg=none with a signature": lambda f: (
        f"{segment({'alg': 'none', 'kid': f.real_kid()})}.{segment(f.claims())}.{b64(b'x' * 32)}"
    ),
    "HS256 signed with the public key": lambda f: _hs256(f),
    "RS256 token claiming ES256": lambda f: _realg(f, "ES256"),
    "kid naming another (published) key": lambda f: f.signed(
        f.claims(), f.attacker, kid=f.real_kid()
    ),
    "jku header pointing elsewhere": lambda f: f.signed(
        f.claims(), f.attacker, kid=f.attacker.kid, jku="https://evil.example/keys"
    ),
    "x5u header pointing elsewhere": lambda f: f.signed(
        f.claims(), f.attacker, kid=f.attacker.kid, x5u="https://evil.example/cert.pem"
    ),
    "embedded jwk header": lambda f: f.signed(
        f.claims(), f.attacker, kid=f.attacker.kid, jwk=f.attacker.jwk()
    ),
    "embedded jwk header with the real kid": lambda f: f.signed(
        f.claims(), f.attacker, kid=f.real_kid(), jwk=f.attacker.jwk()
    ),
    "a Graph token": lambda f: f.fake.issue_access_token(GRAPH, scopes="User.Read"),
    "an ID token": lambda f: f.fake.issue_id_token(API, f.fake.user("alice@contoso.com")),
    "an access token without scp or roles": lambda f: f.fake.issue_access_token(API),
    "expired": lambda f: f.fake.issue_access_token(
        API, scopes="x", claims={"exp": int(f.fake.clock.time()) - 301}
    ),
    "nbf in the future": lambda f: f.fake.issue_access_token(
        API, scopes="x", claims={"nbf": int(f.fake.clock.time()) + 3600}
    ),
    "iat in the future": lambda f: f.fake.issue_access_token(
        API, scopes="x", claims={"iat": int(f.fake.clock.time()) + 3600}
    ),
    "no exp": lambda f: f.fake.issue_access_token(API, scopes="x", omit=["exp"]),
    "no nbf": lambda f: f.fake.issue_access_token(API, scopes="x", omit=["nbf"]),
    "no iat": lambda f: f.fake.issue_access_token(API, scopes="x", omit=["iat"]),
    "exp not a number": lambda f: f.fake.issue_access_token(
        API, scopes="x", claims={"exp": "2099-01-01"}
    ),
    "wrong issuer": lambda f: f.fake.issue_access_token(
        API, scopes="x", claims={"iss": f"https://evil.example/{f.tid}/v2.0"}
    ),
    "issuer with a suffix": lambda f: f.fake.issue_access_token(
        API, scopes="x", claims={"iss": f"{f.fake.base_url}/{f.tid}/v2.0/x"}
    ),
    "tid not matching the issuer": lambda f: f.fake.issue_access_token(
        API, scopes="x", claims={"tid": f.fake.tenant_id("fabrikam")}
    ),
    "no tid": lambda f: f.fake.issue_access_token(API, scopes="x", omit=["tid"]),
    "a second, differently cased tid": lambda f: f.fake.issue_access_token(
        API, scopes="x", claims={"TID": f.fake.tenant_id("fabrikam")}
    ),
    "another tenant": lambda f: f.fake.issue_access_token(API, tenant="fabrikam", scopes="x"),
    "truncated signature": lambda f: f.fake.issue_access_token(API, scopes="x")[:-4],
    "signature with padding": lambda f: f.fake.issue_access_token(API, scopes="x") + "==",
    "non-canonical signature encoding": lambda f: _noncanonical(f),
    "signature in the standard base64 alphabet": lambda f: _standard_alphabet(f),
    "bit-flipped payload": lambda f: _flip_payload(f),
    "an encrypted token (JWE)": lambda f: ".".join(["eyJhbGciOiJSU0EtT0FFUCJ9"] + ["AAAA"] * 4),
    "not a JWT": lambda f: "not-a-jwt",
    "too long": lambda f: f.fake.issue_access_token(API, scopes="x", claims={"pad": "x" * 40_000}),
    "header not JSON": lambda f: f"{b64(b'{not json')}.{segment(f.claims())}.{b64(b'sig')}",
    "kid not a string": lambda f: _header(f, {"alg": "RS256", "kid": 7}),
    "no kid": lambda f: _header(f, {"alg": "RS256"}),
    "unknown crit header": lambda f: f.signed(
        f.claims(), f.fake.signer(), kid=f.real_kid(), crit=["exp"]
    ),
}

#: Why each attack is refused (a part of the error description).
REASONS = {
    "alg=none": "not base64url",
    "alg=none with a signature": "accepted algorithm",
    "HS256 signed with the public key": "accepted algorithm",
    "RS256 token claiming ES256": "does not match its signing key",
    "kid naming another (published) key": "signature of the bearer token is not valid",
    "jku header pointing elsewhere": "unknown key",
    "x5u header pointing elsewhere": "unknown key",
    "embedded jwk header": "unknown key",
    "embedded jwk header with the real kid": "signature of the bearer token is not valid",
    "a Graph token": "another audience",
    "an ID token": "neither scopes nor roles",
    "an access token without scp or roles": "neither scopes nor roles",
    "expired": "expired",
    "nbf in the future": "not valid yet",
    "iat in the future": "issued in the future",
    "no exp": "lacks the 'exp' claim",
    "no nbf": "lacks the 'nbf' claim",
    "no iat": "lacks the 'iat' claim",
    "exp not a number": "not a number",
    "wrong issuer": "issuer this API does not trust",
    "issuer with a suffix": "issuer this API does not trust",
    "tid not matching the issuer": "not its issuer's",
    "no tid": "no tenant id",
    "a second, differently cased tid": "more than one tenant id",
    "another tenant": "issuer this API does not trust",
    "truncated signature": "signature of the bearer token is not",
    "signature with padding": "not base64url",
    "non-canonical signature encoding": "not canonically encoded",
    "signature in the standard base64 alphabet": "not base64url",
    "bit-flipped payload": "signature of the bearer token is not valid",
    "an encrypted token (JWE)": "encrypted token",
    "not a JWT": "not a JWT",
    "too long": "too long",
    "header not JSON": "not JSON",
    "kid not a string": "no signing key",
    "no kid": "no signing key",
    "unknown crit header": "could not be decoded",
}


def _hs256(f: Forge) -> str:
    header = segment({"alg": "HS256", "typ": "JWT", "kid": f.real_kid()})
    payload = segment(f.claims())
    mac = hmac.new(public_pem(f.fake.signer()), f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{b64(mac.digest())}"


def _realg(f: Forge, alg: str) -> str:
    token = f.fake.issue_access_token(API, scopes="x")
    _, payload, signature = token.split(".")
    return f"{segment({'alg': alg, 'kid': f.real_kid()})}.{payload}.{signature}"


def _header(f: Forge, header: dict[str, Any]) -> str:
    token = f.fake.issue_access_token(API, scopes="x")
    _, payload, signature = token.split(".")
    return f"{segment(header)}.{payload}.{signature}"


def _noncanonical(f: Forge) -> str:
    token = f.fake.issue_access_token(API, scopes="x")
    head, payload, signature = token.split(".")
    # A 256-byte signature ends in a character with 2 unused bits: set them.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(signature[-1]) | 0b01]
    assert last != signature[-1] or signature[-1] in alphabet
    if last == signature[-1]:
        last = alphabet[alphabet.index(signature[-1]) ^ 0b10]
    return f"{head}.{payload}.{signature[:-1]}{last}"


def _standard_alphabet(f: Forge) -> str:
    while True:
        token = f.fake.issue_access_token(API, scopes="x")
        head, payload, signature = token.split(".")
        if "-" in signature or "_" in signature:
            swapped = signature.replace("-", "+").replace("_", "/")
            return f"{head}.{payload}.{swapped}"


def _flip_payload(f: Forge) -> str:
    token = f.fake.issue_access_token(API, scopes="x")
    head, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["scp"] = "Orders.Admin"
    return f"{head}.{segment(body)}.{signature}"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock) as authority:
        authority.add_user("alice@contoso.com", tenant="contoso")
        # A second published key, so "a kid naming another key" has one to name.
        authority.add_signing_key()
        yield authority


@pytest.fixture(scope="module")
def attacker() -> TokenSigner:
    return TokenSigner.generate()


@pytest.fixture
async def validator(fake: FakeAuthority, clock: VirtualClock) -> AsyncIterator[TokenValidator]:
    async with TokenValidator(API, authority=fake.authority("contoso"), clock=clock) as v:
        await v.validate(fake.issue_access_token(API, scopes="warm-up"))  # keys loaded
        yield v


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_the_attack_is_refused_and_nothing_is_cached(
    attack: str, fake: FakeAuthority, validator: TokenValidator, attacker: TokenSigner
) -> None:
    token = ATTACKS[attack](Forge(fake, attacker))
    for _ in range(2):  # and again: a refusal is not remembered as an acceptance
        with pytest.raises(MsalInvalidTokenError, match=REASONS[attack]) as caught:
            await validator.validate(token)
        assert caught.value.status == 401
        header = caught.value.www_authenticate or ""
        assert header.startswith('Bearer error="invalid_token", error_description="')
        for piece in token.split("."):
            assert len(piece) < 8 or piece not in f"{caught.value} {header}"
    stats = validator.statistics()
    assert (stats.validated, stats.cached_tokens, stats.rejected) == (1, 1, 2)


async def test_a_tenant_off_the_allow_list_is_refused(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with TokenValidator(
        API,
        authority=fake.authority("organizations"),
        allowed_tenants=[fake.tenant_id("contoso")],
        clock=clock,
    ) as v:
        token = fake.issue_access_token(API, tenant="fabrikam", scopes="x")
        with pytest.raises(MsalInvalidTokenError, match="not allowed"):
            await v.validate(token)
        forged_tid = fake.issue_access_token(
            API, tenant="fabrikam", scopes="x", claims={"tid": fake.tenant_id("contoso")}
        )
        with pytest.raises(MsalInvalidTokenError, match="issuer"):
            await v.validate(forged_tid)
        assert v.statistics().cached_tokens == 0


async def test_a_token_signed_by_a_rotated_out_key_is_refused(
    fake: FakeAuthority, validator: TokenValidator, clock: VirtualClock
) -> None:
    stale = fake.issue_access_token(API, scopes="x")
    fake.rotate_signing_key()
    await clock.advance(3600 * 1.1)
    await wait_until(lambda: fake.keys_requests == 2 and clock.sleepers == 1)
    with pytest.raises(MsalInvalidTokenError, match="unknown key"):
        await validator.validate(stale)
    assert validator.statistics().cached_tokens == 0


async def test_an_unknown_kid_flood_costs_one_refetch_then_is_rate_limited(
    fake: FakeAuthority, validator: TokenValidator, attacker: TokenSigner, clock: VirtualClock
) -> None:
    forge = Forge(fake, attacker)
    await clock.advance(300)
    tokens = [forge.signed(forge.claims(), attacker, kid=f"random-{n}") for n in range(200)]

    async def attack(token: str) -> None:
        with pytest.raises(MsalInvalidTokenError, match="unknown key"):
            await validator.validate(token)

    async with anyio.create_task_group() as group:
        for token in tokens:
            group.start_soon(attack, token)
    for token in tokens[:20]:
        await attack(token)
    assert fake.keys_requests == 2  # the first load, then one refetch for all of them
    await clock.advance(300)
    await attack(tokens[0])
    assert fake.keys_requests == 3  # the cooldown has passed: one more
    assert validator.statistics().cached_tokens == 1


async def test_while_the_keys_endpoint_is_down_the_cached_keys_keep_validating(
    fake: FakeAuthority, validator: TokenValidator, clock: VirtualClock, attacker: TokenSigner
) -> None:
    fake.keys_outage = True
    stats = validator.statistics
    await advance_until(clock, lambda: stats().key_fetch_failures == 1, step=30, limit=4000)
    await validator.validate(fake.issue_access_token(API, scopes="still-good"))
    forge = Forge(fake, attacker)
    await clock.advance(300)
    with pytest.raises(MsalInvalidTokenError, match="unknown key"):
        await validator.validate(forge.signed(forge.claims(), attacker, kid="unknown"))
    assert stats().key_fetch_failures >= 2  # the retry in the background, or this refetch
    await validator.validate(fake.issue_access_token(API, scopes="still-good-2"))
    assert stats().signing_keys == 2
