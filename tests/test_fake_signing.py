"""FakeAuthority's signing keys: rotation as Entra does it, outages, tokens made to order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest

from aiomsal import ConfidentialClientApplication, MsalServiceError
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET

pytestmark = pytest.mark.anyio

API = "orders-api"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=VirtualClock()) as authority:
        authority.add_client(API, secret=SECRET)
        authority.add_user("alice@contoso.com", tenant="contoso")
        yield authority


async def jwks(fake: FakeAuthority) -> tuple[int, list[str]]:
    async with aiohttp.ClientSession() as session:
        url = f"{fake.authority('contoso')}/discovery/v2.0/keys"
        async with session.get(url) as response:
            body = await response.json()
            return response.status, [k["kid"] for k in body.get("keys", [])]


async def test_publish_sign_retire(fake: FakeAuthority) -> None:
    first = fake.active_signing_key_id
    assert await jwks(fake) == (200, [first])
    second = fake.add_signing_key()
    assert await jwks(fake) == (200, [first, second])
    assert jwt.get_unverified_header(fake.issue_access_token(API, scopes="x"))["kid"] == first
    fake.use_signing_key(second)
    assert jwt.get_unverified_header(fake.issue_access_token(API, scopes="x"))["kid"] == second
    with pytest.raises(ValueError, match="active"):
        fake.retire_signing_key(second)
    fake.retire_signing_key(first)
    assert await jwks(fake) == (200, [second])
    old, new = fake.rotate_signing_key()
    assert old == second and fake.signing_key_ids == [new] == [fake.active_signing_key_id]
    assert fake.keys_requests == 3


async def test_the_keys_endpoint_can_be_taken_down(fake: FakeAuthority) -> None:
    fake.keys_outage = True
    assert await jwks(fake) == (503, [])
    fake.keys_outage = False
    assert (await jwks(fake))[0] == 200
    assert fake.keys_requests == 2


async def test_tokens_are_issued_for_any_audience_with_chosen_claims(fake: FakeAuthority) -> None:
    alice = fake.user("alice@contoso.com")
    now = int(fake.clock.time())
    v2 = jwt.decode(
        fake.issue_access_token(
            "https://graph.microsoft.com", user=alice, scopes=["User.Read"], claims={"acrs": ["c1"]}
        ),
        options={"verify_signature": False},
    )
    assert v2["aud"] == "https://graph.microsoft.com" and v2["scp"] == "User.Read"
    assert v2["iss"] == f"{fake.base_url}/{alice.tenant_id}/v2.0" and v2["oid"] == alice.oid
    assert (v2["iat"], v2["nbf"], v2["exp"]) == (now, now, now + 3600)
    assert v2["acrs"] == ["c1"] and v2["azp"] == "fake-client"
    v1 = jwt.decode(
        fake.issue_access_token(f"api://{API}", roles=["Jobs.Run"], version="1.0", omit=["nbf"]),
        options={"verify_signature": False},
    )
    assert v1["iss"] == f"{fake.base_url}/{fake.tenant_id('contoso')}/" and v1["ver"] == "1.0"
    assert v1["roles"] == ["Jobs.Run"] and "scp" not in v1 and "nbf" not in v1
    assert v1["appid"] == "fake-client"
    id_token = jwt.decode(fake.issue_id_token(API, alice), options={"verify_signature": False})
    assert id_token["aud"] == API and "scp" not in id_token and "roles" not in id_token


async def test_on_behalf_of_accepts_assertions_signed_by_any_published_key(
    fake: FakeAuthority,
) -> None:
    alice = fake.user("alice@contoso.com")
    by_first = fake.issue_access_token(f"api://{API}", user=alice)
    first = fake.active_signing_key_id
    fake.use_signing_key(fake.add_signing_key())
    by_second = fake.issue_access_token(f"api://{API}", user=alice)
    async with ConfidentialClientApplication(
        API, client_credential=SECRET, authority=fake.authority("contoso"), clock=fake.clock
    ) as app:
        for assertion in (by_first, by_second):
            await app.acquire_token_on_behalf_of(assertion, ["User.Read"])
        fake.retire_signing_key(first)
        with pytest.raises(MsalServiceError, match="not a token this authority issued"):
            # (a claims challenge skips the refresh token, straight to the grant)
            await app.acquire_token_on_behalf_of(
                by_first, ["Mail.Read"], claims_challenge='{"access_token":{}}'
            )
