"""TokenValidator: incoming bearer tokens checked against the authority's metadata and JWKS."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from aiomsal import (
    MsalClaimsChallengeError,
    MsalConfigurationError,
    MsalInsufficientScopeError,
    MsalInvalidTokenError,
    MsalMissingTokenError,
    MsalSigningKeysUnavailableError,
    TokenValidator,
    ValidatedToken,
)
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import advance_until, aiomsal_tasks, wait_until

pytestmark = pytest.mark.anyio

API = "orders-api"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def fake(clock: VirtualClock) -> AsyncIterator[FakeAuthority]:
    async with FakeAuthority(clock=clock) as authority:
        authority.add_user("alice@contoso.com", tenant="contoso")
        yield authority


@pytest.fixture
async def validator(fake: FakeAuthority, clock: VirtualClock) -> AsyncIterator[TokenValidator]:
    async with TokenValidator(API, authority=fake.authority("contoso"), clock=clock) as v:
        yield v


def user_token(fake: FakeAuthority, **options: object) -> str:
    return fake.issue_access_token(
        f"api://{API}",
        user=fake.user("alice@contoso.com"),
        **options,  # type: ignore[arg-type]
    )


async def test_a_v2_token_is_validated_into_a_frozen_value(
    fake: FakeAuthority, validator: TokenValidator
) -> None:
    token = user_token(fake, scopes=["Orders.Read", "Orders.Write"])
    validated = await validator.validate(token)
    alice = fake.user("alice@contoso.com")
    assert validated.scopes == {"Orders.Read", "Orders.Write"}
    assert validated.roles == frozenset()
    assert validated.tenant_id == fake.tenant_id("contoso")
    assert validated.object_id == alice.oid
    assert validated.client_id == "fake-client"
    assert validated.access_token == token
    assert validated.claims["aud"] == f"api://{API}"
    assert token not in repr(validated)
    assert token[20:60] not in repr(validated)
    with pytest.raises(AttributeError):
        validated.scopes = frozenset()  # type: ignore[misc]
    with pytest.raises(TypeError):
        validated.claims["aud"] = "x"  # type: ignore[index]


async def test_v1_tokens_and_both_default_audiences_are_accepted(
    fake: FakeAuthority, validator: TokenValidator
) -> None:
    v1 = fake.issue_access_token(f"api://{API}", user=fake.user("alice@contoso.com"), version="1.0")
    bare = fake.issue_access_token(API, roles=["Orders.Admin"])
    assert (await validator.validate(v1)).issuer == f"{fake.base_url}/{fake.tenant_id('contoso')}/"
    assert (await validator.validate(v1)).client_id == "fake-client"  # appid
    app = await validator.validate(bare)
    assert app.is_app_only and app.roles == {"Orders.Admin"}


async def test_a_custom_audience_replaces_the_defaults(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with TokenValidator(
        API,
        authority=fake.authority("contoso"),
        audiences=["https://orders.contoso.com"],
        clock=clock,
    ) as v:
        await v.validate(fake.issue_access_token("https://orders.contoso.com", scopes="x"))
        with pytest.raises(MsalInvalidTokenError, match="another audience"):
            await v.validate(fake.issue_access_token(API, scopes="x"))


async def test_a_multi_tenant_api_accepts_any_tenant_whose_issuer_is_its_own(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with TokenValidator(API, authority=fake.authority("organizations"), clock=clock) as v:
        for tenant in ("contoso", "fabrikam", "northwind"):
            token = fake.issue_access_token(API, tenant=tenant, scopes="Orders.Read")
            assert (await v.validate(token)).tenant_id == fake.tenant_id(tenant)
            v1 = fake.issue_access_token(API, tenant=tenant, scopes="x", version="1.0")
            await v.validate(v1)


async def test_the_tenant_allow_list_narrows_a_multi_tenant_api(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    allowed = [fake.tenant_id("contoso").upper()]
    async with TokenValidator(
        API, authority=fake.authority("common"), allowed_tenants=allowed, clock=clock
    ) as v:
        await v.validate(fake.issue_access_token(API, tenant="contoso", scopes="x"))
        with pytest.raises(MsalInvalidTokenError, match="not allowed"):
            await v.validate(fake.issue_access_token(API, tenant="fabrikam", scopes="x"))


async def test_a_single_tenant_api_refuses_other_tenants(
    fake: FakeAuthority, validator: TokenValidator
) -> None:
    with pytest.raises(MsalInvalidTokenError, match="issuer"):
        await validator.validate(fake.issue_access_token(API, tenant="fabrikam", scopes="x"))


async def test_any_openid_connect_issuer_is_checked_exactly(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with TokenValidator(
        API, oidc_authority=f"{fake.authority('contoso')}/v2.0", clock=clock
    ) as v:
        await v.validate(fake.issue_access_token(API, scopes="x", omit=["tid"]))
        with pytest.raises(MsalInvalidTokenError, match="issuer"):
            await v.validate(fake.issue_access_token(API, tenant="fabrikam", scopes="x"))


async def test_a_repeated_token_is_answered_from_the_cache_until_it_expires(
    fake: FakeAuthority, validator: TokenValidator, clock: VirtualClock
) -> None:
    token = user_token(fake, lifetime=600)
    first = await validator.validate(token)
    assert await validator.validate(token) is first
    stats = validator.statistics()
    assert (stats.validated, stats.cache_hits, stats.cached_tokens) == (1, 1, 1)
    await clock.advance(600 + 300)  # past exp and the clock skew
    with pytest.raises(MsalInvalidTokenError, match="expired"):
        await validator.validate(token)


async def test_the_cache_of_validated_tokens_is_bounded(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with TokenValidator(
        API, authority=fake.authority("contoso"), max_cached_tokens=3, clock=clock
    ) as v:
        tokens = [user_token(fake, claims={"n": n}) for n in range(10)]
        for token in tokens:
            await v.validate(token)
        assert v.statistics().cached_tokens == 3
        await v.validate(tokens[-1])
        assert v.statistics().cache_hits == 1


async def test_concurrent_first_validations_share_one_metadata_and_one_key_fetch(
    fake: FakeAuthority, validator: TokenValidator
) -> None:
    tokens = [user_token(fake, claims={"n": n}) for n in range(50)]
    async with anyio.create_task_group() as group:
        for token in tokens:
            group.start_soon(validator.validate, token)
    assert fake.keys_requests == 1
    assert fake.discovery_requests == 1
    assert validator.statistics().validated == 50


async def test_keys_are_refreshed_in_the_background(
    fake: FakeAuthority, validator: TokenValidator, clock: VirtualClock
) -> None:
    await validator.validate(user_token(fake))
    assert fake.keys_requests == 1
    await wait_until(lambda: clock.sleepers == 1)  # the refresh loop, started in the background
    for fetches in (2, 3):
        await clock.advance(3600 * 1.1)

        def refreshed(n: int = fetches) -> bool:
            return fake.keys_requests == n and clock.sleepers == 1

        await wait_until(refreshed)
    assert validator.statistics().key_fetches == 3
    assert fake.discovery_requests == 3  # the metadata is read again with the keys


async def test_a_failed_background_refresh_is_retried_after_the_cooldown(
    fake: FakeAuthority, validator: TokenValidator, clock: VirtualClock
) -> None:
    await validator.validate(user_token(fake))
    fake.keys_outage = True
    failures = validator.statistics
    await advance_until(clock, lambda: failures().key_fetch_failures == 1, step=30, limit=4000)
    fake.keys_outage = False
    await advance_until(clock, lambda: fake.keys_requests == 3, step=30, limit=330)  # not 1 h
    assert validator.statistics().key_fetch_failures == 1


async def test_a_new_key_is_learnt_on_first_sight_of_its_kid(
    fake: FakeAuthority, validator: TokenValidator, clock: VirtualClock
) -> None:
    await validator.validate(user_token(fake))
    new = fake.add_signing_key()
    fake.use_signing_key(new)
    await clock.advance(300)  # unknown kids refetch at most once per 5 minutes
    validated = await validator.validate(user_token(fake))
    assert validated.key_id == new
    assert fake.keys_requests == 2


async def test_rotation_publish_sign_retire(
    fake: FakeAuthority, validator: TokenValidator, clock: VirtualClock
) -> None:
    old_token = user_token(fake)
    await validator.validate(old_token)
    old, new = fake.rotate_signing_key()
    assert fake.signing_key_ids == [new] and old != new
    await wait_until(lambda: clock.sleepers == 1)  # the refresh loop, started in the background
    await clock.advance(3600 * 1.1)  # the background refresh learns the new set
    await wait_until(lambda: fake.keys_requests == 2 and clock.sleepers == 1)
    assert validator.statistics().cached_tokens == 0  # a retired key's tokens are dropped
    with pytest.raises(MsalInvalidTokenError, match="unknown key"):
        await validator.validate(old_token)
    assert (await validator.validate(user_token(fake))).key_id == new


async def test_scopes_and_roles_are_required_per_call(
    fake: FakeAuthority, validator: TokenValidator
) -> None:
    user = user_token(fake, scopes="Orders.Read")
    daemon = fake.issue_access_token(API, roles=["Orders.ReadAll"])
    await validator.validate(user, scopes=["Orders.Read"])
    await validator.validate(daemon, roles=["Orders.ReadAll"])
    await validator.validate(user, scopes=["Orders.Read"], roles=["Orders.ReadAll"])
    await validator.validate(daemon, scopes=["Orders.Read"], roles=["Orders.ReadAll"])
    with pytest.raises(MsalInsufficientScopeError) as caught:
        await validator.validate(user, scopes=["Orders.Read", "Orders.Write"])
    assert caught.value.status == 403
    assert caught.value.www_authenticate == (
        'Bearer error="insufficient_scope", error_description="the bearer token lacks a'
        ' required scope", scope="Orders.Read Orders.Write"'
    )
    with pytest.raises(MsalInsufficientScopeError):
        await validator.validate(daemon, scopes=["Orders.Read"])
    with pytest.raises(MsalInsufficientScopeError):  # from the cache as well
        await validator.validate(user, roles=["Orders.ReadAll"])


async def test_the_authorization_header_maps_to_rfc_6750_answers(
    fake: FakeAuthority, validator: TokenValidator
) -> None:
    token = user_token(fake)
    assert (await validator.validate_authorization(f"Bearer {token}")).access_token == token
    assert (await validator.validate_authorization(f"bearer  {token} ")).access_token == token
    for header in (None, "", "Basic dXNlcjpwYXNz"):
        with pytest.raises(MsalMissingTokenError) as missing:
            await validator.validate_authorization(header)
        assert missing.value.status == 401
        assert missing.value.www_authenticate == "Bearer"  # no error code without a token
    with pytest.raises(MsalInvalidTokenError) as invalid:
        await validator.validate_authorization("Bearer not-a-jwt")
    assert invalid.value.status == 401
    assert invalid.value.headers() == {
        "WWW-Authenticate": 'Bearer error="invalid_token",'
        ' error_description="the bearer token is not a JWT"'
    }


async def test_no_message_or_repr_shows_the_token(
    fake: FakeAuthority, validator: TokenValidator, clock: VirtualClock
) -> None:
    token = user_token(fake, lifetime=10)
    await clock.advance(1000)
    with pytest.raises(MsalInvalidTokenError) as caught:
        await validator.validate(token)
    shown = f"{caught.value} {caught.value!r} {caught.value.www_authenticate}"
    for piece in token.split("."):
        assert piece not in shown
    assert caught.value.__cause__ is None and caught.value.__context__ is None


async def test_the_claims_challenge_goes_to_cae_capable_clients_only(
    fake: FakeAuthority, validator: TokenValidator
) -> None:
    wanted = {"access_token": {"acrs": {"essential": True, "value": "c1"}}}
    capable = await validator.validate(user_token(fake, claims={"xms_cc": ["cp1"]}))
    challenge = validator.claims_challenge(capable, wanted)
    assert isinstance(challenge, MsalClaimsChallengeError)
    header = challenge.www_authenticate
    assert header is not None
    assert header.startswith('Bearer realm="", authorization_uri="')
    assert f'{fake.authority("contoso")}/oauth2/v2.0/authorize"' in header
    assert 'error="insufficient_claims"' in header
    encoded = header.split('claims="')[1].rstrip('"')
    assert json.loads(base64.b64decode(encoded)) == wanted
    plain = validator.claims_challenge(await validator.validate(user_token(fake)), wanted)
    assert type(plain) is MsalInvalidTokenError
    with pytest.raises(MsalConfigurationError):
        validator.claims_challenge(capable, "not json")


async def test_no_keys_ever_is_a_503_and_a_later_call_tries_again(
    fake: FakeAuthority, validator: TokenValidator, clock: VirtualClock
) -> None:
    fake.keys_outage = True
    with pytest.raises(MsalSigningKeysUnavailableError) as caught:
        await validator.validate(user_token(fake))
    assert caught.value.status == 503 and caught.value.headers() == {}
    fake.keys_outage = False
    with pytest.raises(MsalSigningKeysUnavailableError, match="retrying shortly"):
        await validator.validate(user_token(fake))  # not asked again at once
    assert fake.keys_requests == 1  # (a 503 with Retry-After is not retried at once)
    await clock.advance(5)
    await validator.validate(user_token(fake))
    assert fake.keys_requests == 2


async def test_configuration_errors_are_raised_at_construction(fake: FakeAuthority) -> None:
    authority = fake.authority("contoso")
    options: dict[str, Any]
    for options in (
        {"audiences": "api://x"},
        {"audiences": []},
        {"issuers": [""]},
        {"allowed_tenants": "contoso"},
        {"clock_skew": -1},
        {"key_refresh_interval": 1},
        {"unknown_key_cooldown": 0},
        {"max_cached_tokens": -1},
        {"max_cached_tokens": True},
        {"clock_skew": "300"},
        {"key_refresh_interval": None},
        {"allowed_tenants": [1]},
        {"allowed_tenants": []},
        {"allowed_tenants": 5},
    ):
        with pytest.raises(MsalConfigurationError):
            TokenValidator(API, authority=authority, **options)
    with pytest.raises(MsalConfigurationError):
        TokenValidator(API)
    with pytest.raises(MsalConfigurationError):
        TokenValidator("", authority=authority)
    with pytest.raises(MsalConfigurationError):
        TokenValidator(API, authority="https://login.microsoftonline.com/x", verify=False)


async def test_closing_ends_the_background_refresh(
    fake: FakeAuthority, clock: VirtualClock
) -> None:
    async with TokenValidator(API, authority=fake.authority("contoso"), clock=clock) as v:
        await v.validate(user_token(fake))
        assert aiomsal_tasks()
    assert aiomsal_tasks() == []
    await clock.advance(3600 * 2)
    assert fake.keys_requests == 1


def test_a_validated_token_is_exported() -> None:
    assert ValidatedToken.__dataclass_params__.frozen  # type: ignore[attr-defined]
