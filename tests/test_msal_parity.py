"""Parity with the real ``msal`` package: the same scenarios through MSAL Python (sync,
in a worker thread) and through ``aiomsal.msal`` (awaited), against one FakeAuthority.

Result dicts must have the same keys and the same values apart from tokens, ids
and times; error dicts the same ``error``, ``error_description`` shape and
``suberror`` / ``claims`` / ``classification``. The one key only aiomsal gives is
``refresh_on``: aiomsal plans a refresh for every token, MSAL only when the
authority sends ``refresh_in``.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import anyio
import anyio.to_thread
import msal
import pytest
import requests

import aiomsal.msal as compat
from aiomsal import PublicClientApplication as TypedPublic
from aiomsal.testing import FakeAuthority, VirtualClock
from tests.helpers import SECRET, NoUserRealm, wait_until

pytestmark = pytest.mark.anyio

DAEMON = "nightly-daemon"
WEB = "web-app"
API = "orders-api"
DESKTOP = "desktop-tool"
CALLBACK = "http://localhost/callback"
ALICE = "alice@contoso.com"
PASSWORD = "alice-pw"
GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]
USER_READ = ["User.Read"]
GRAPH_READ = ["https://graph.microsoft.com/User.Read"]



#: Values that differ from one request to the next: tokens, ids, times.
VOLATILE = frozenset(
    {
        "access_token", "refresh_token", "id_token", "expires_in", "ext_expires_in",
        "refresh_on", "correlation_id", "trace_id", "timestamp", "expires_at",
        "device_code", "user_code", "auth_uri", "state", "nonce", "code_verifier",
        "message",
        # An account's realm: the tenant's id here, the authority's tenant segment in MSAL.
        "realm",
    }
)
#: ID token claims that differ per token.
VOLATILE_CLAIMS = frozenset({"iat", "nbf", "exp", "nonce", "uti", "aio"})
#: Keys only aiomsal's dicts have (see the module docstring), or only MSAL's private ones.
AIOMSAL_ONLY = frozenset({"refresh_on"})
MSAL_ONLY = frozenset({"_correlation_id"})


@pytest.fixture
async def opened() -> AsyncIterator[list[Any]]:
    """aiomsal.msal applications a test made, closed after it."""
    apps: list[Any] = []
    yield apps
    for app in apps:
        await app.aclose()


@pytest.fixture
async def fake(opened: list[Any]) -> AsyncIterator[FakeAuthority]:
    # Real time: MSAL checks ID tokens against the system clock.
    async with FakeAuthority(tls=True, clock=VirtualClock(start=time.time())) as authority:
        authority.add_client(DAEMON, secret=SECRET)
        authority.add_client(API, secret=SECRET)
        authority.add_client(WEB, secret=SECRET, redirect_uris=[CALLBACK])
        authority.add_client(DESKTOP, redirect_uris=["http://localhost"])
        authority.add_user(ALICE, password=PASSWORD, tenant="contoso")
        authority.device_code_interval = 1
        authority.opened = opened  # type: ignore[attr-defined]
        yield authority


class Face:
    """Calls one application's methods: MSAL's in a thread, aiomsal.msal's awaited."""

    def __init__(self, app: Any, threaded: bool) -> None:
        self.app = app
        self.threaded = threaded

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        bound = getattr(self.app, method)
        if self.threaded:
            return await anyio.to_thread.run_sync(lambda: bound(*args, **kwargs))
        return await bound(*args, **kwargs)


def http_for(fake: FakeAuthority) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    assert fake.ca_file is not None
    session.verify = fake.ca_file
    session.mount("https://127.0.0.1/common/userrealm/", NoUserRealm())
    return session


async def pair(
    fake: FakeAuthority, kind: str, client_id: str, tenant: str = "contoso", **kwargs: Any
) -> tuple[Face, Face]:
    """The same application twice: MSAL Python's, and aiomsal.msal's."""
    authority = fake.authority(tenant)

    def build() -> Any:
        cls = getattr(msal, kind)
        return cls(
            client_id, authority=authority, http_client=http_for(fake),
            instance_discovery=False, token_cache=msal.SerializableTokenCache(), **kwargs,
        )

    theirs = await anyio.to_thread.run_sync(build)
    ours = getattr(compat, kind)(
        client_id, authority=authority, verify=fake.ssl_context(), clock=fake.clock, **kwargs
    )
    fake.opened.append(ours)  # type: ignore[attr-defined]
    return Face(theirs, threaded=True), Face(ours, threaded=False)


def shape(value: Any) -> Any:
    """``value`` with tokens, ids and times replaced by their type."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in MSAL_ONLY or key in AIOMSAL_ONLY:
                continue
            if key == "id_token_claims":
                out[key] = {k: (type(v).__name__ if k in VOLATILE_CLAIMS else v)
                            for k, v in item.items()}
            elif key == "error_description":
                out[key] = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d{4}-\d\d-\d\d[ T][\d:.Z]+",
                                  "*", item)
            elif key == "scope" and isinstance(item, (str, list)):
                # MSAL keeps its scopes in set order.
                out[key] = sorted(item.split() if isinstance(item, str) else item)
            elif key in VOLATILE:
                out[key] = type(item).__name__
            else:
                out[key] = shape(item)
        return out
    if isinstance(value, list):
        return [shape(v) for v in value]
    return value


def same(theirs: Any, ours: Any) -> None:
    assert shape(ours) == shape(theirs)
    if isinstance(ours, dict) and "access_token" in ours and "error" not in ours:
        assert "refresh_on" in ours


async def browser(url: str) -> dict[str, str]:
    connector = aiohttp.TCPConnector(ssl=False)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, allow_redirects=False) as response,
    ):
        assert response.status == 302, await response.text()
        return dict(parse_qsl(urlsplit(response.headers["Location"]).query))


# -- scenarios ----------------------------------------------------------------------------


async def test_client_credentials(fake: FakeAuthority) -> None:
    theirs, ours = await pair(fake, "ConfidentialClientApplication", DAEMON,
                              client_credential=SECRET)
    for _ in range(2):  # from the authority, then from the cache
        same(await theirs("acquire_token_for_client", GRAPH_DEFAULT),
             await ours("acquire_token_for_client", GRAPH_DEFAULT))


async def test_wrong_secret(fake: FakeAuthority) -> None:
    theirs, ours = await pair(fake, "ConfidentialClientApplication", DAEMON,
                              client_credential="wrong")
    mine = await ours("acquire_token_for_client", GRAPH_DEFAULT)
    same(await theirs("acquire_token_for_client", GRAPH_DEFAULT), mine)
    assert mine["error"] == "invalid_client" and mine["error_codes"]


async def test_throttled(fake: FakeAuthority) -> None:
    theirs, ours = await pair(fake, "ConfidentialClientApplication", DAEMON,
                              client_credential=SECRET)
    for face in (theirs, ours):
        fake.fail_next(1, status=429, retry_after=30)
        sent = len(fake.token_requests)
        first = await face("acquire_token_for_client", GRAPH_DEFAULT)
        again = await face("acquire_token_for_client", GRAPH_DEFAULT)
        assert "error" in first and shape(again) == shape(first)
        assert len(fake.token_requests) == sent + 1  # the repeat is answered from memory
        face.result = first  # type: ignore[attr-defined]
    same(theirs.result, ours.result)  # type: ignore[attr-defined]


async def test_on_behalf_of(fake: FakeAuthority) -> None:
    async with TypedPublic(DESKTOP, fake.authority("contoso"), verify=fake.ssl_context()) as pca:
        incoming = await pca.acquire_token_by_username_password(
            ALICE, PASSWORD, [f"api://{API}/access_as_user"]
        )
    theirs, ours = await pair(fake, "ConfidentialClientApplication", API,
                              client_credential=SECRET)
    same(await theirs("acquire_token_on_behalf_of", incoming.access_token, GRAPH_READ),
         await ours("acquire_token_on_behalf_of", incoming.access_token, GRAPH_READ))


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
async def test_auth_code_flow(fake: FakeAuthority) -> None:
    theirs, ours = await pair(fake, "ConfidentialClientApplication", WEB,
                              tenant="organizations", client_credential=SECRET)
    results = []
    flows = []
    for face in (theirs, ours):
        flow = await face("initiate_auth_code_flow", USER_READ, redirect_uri=CALLBACK,
                          login_hint=ALICE)
        flows.append(flow)
        results.append(await face("acquire_token_by_auth_code_flow", flow,
                                  await browser(flow["auth_uri"])))
    same(*flows)
    same(*results)
    assert results[1]["id_token_claims"]["preferred_username"] == ALICE


@pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning")
async def test_password_then_silent_then_refresh_token_then_migration(
    fake: FakeAuthority,
) -> None:
    theirs, ours = await pair(fake, "PublicClientApplication", DESKTOP)
    same(await theirs("acquire_token_by_username_password", ALICE, PASSWORD, USER_READ),
         await ours("acquire_token_by_username_password", ALICE, PASSWORD, USER_READ))
    [their_account] = await theirs("get_accounts")
    [our_account] = await ours("get_accounts")
    same({k: v for k, v in their_account.items() if k != "account_source"}, our_account)
    same(await theirs("acquire_token_silent", USER_READ, their_account),
         await ours("acquire_token_silent", USER_READ, our_account))
    same(await theirs("acquire_token_silent", USER_READ, their_account, force_refresh=True),
         await ours("acquire_token_silent", USER_READ, our_account, force_refresh=True))
    # Migration: a refresh token from elsewhere.
    async with TypedPublic(DESKTOP, fake.authority("contoso"), verify=fake.ssl_context()) as pca:
        old = await pca.acquire_token_by_username_password(ALICE, PASSWORD, USER_READ)
        other = await pca.acquire_token_by_username_password(ALICE, PASSWORD, USER_READ)
    assert old.refresh_token and other.refresh_token
    same(await theirs("acquire_token_by_refresh_token", old.refresh_token, USER_READ),
         await ours("acquire_token_by_refresh_token", other.refresh_token, USER_READ))


@pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning")
async def test_revoked_refresh_token_and_interaction_required(fake: FakeAuthority) -> None:
    theirs, ours = await pair(fake, "PublicClientApplication", DESKTOP)
    await theirs("acquire_token_by_username_password", ALICE, PASSWORD, USER_READ)
    await ours("acquire_token_by_username_password", ALICE, PASSWORD, USER_READ)
    [their_account] = await theirs("get_accounts")
    [our_account] = await ours("get_accounts")
    fake.revoke_refresh_tokens(ALICE)
    revoked = [
        await face("acquire_token_silent_with_error", USER_READ, account, force_refresh=True)
        for face, account in ((theirs, their_account), (ours, our_account))
    ]
    same(*revoked)
    assert revoked[1]["error"] == "invalid_grant"
    assert await ours("acquire_token_silent", USER_READ, our_account, force_refresh=True) is None
    assert await theirs("acquire_token_silent", USER_READ, their_account,
                        force_refresh=True) is None
    # A conditional access challenge: suberror, claims and MSAL's classification.
    await theirs("acquire_token_by_username_password", ALICE, PASSWORD, USER_READ)
    await ours("acquire_token_by_username_password", ALICE, PASSWORD, USER_READ)
    fake.require_interaction(ALICE, suberror="basic_action", claims='{"access_token":{}}')
    challenged = [
        await face("acquire_token_silent_with_error", USER_READ, account, force_refresh=True)
        for face, account in ((theirs, their_account), (ours, our_account))
    ]
    same(*challenged)
    assert challenged[1]["suberror"] == "basic_action"
    assert challenged[1]["classification"] == "basic_action"
    assert challenged[1]["claims"] == '{"access_token":{}}'


async def test_device_code_flow(fake: FakeAuthority) -> None:
    theirs, ours = await pair(fake, "PublicClientApplication", DESKTOP)
    flows, results = [], []
    for face in (theirs, ours):
        flow = await face("initiate_device_flow", scopes=USER_READ)
        flows.append(dict(flow))  # MSAL writes its polling times into the flow
        fake.approve_device_code(flow["user_code"], ALICE)
        if face.threaded:
            results.append(await face("acquire_token_by_device_flow", flow))
            continue
        async with anyio.create_task_group() as group:

            async def poll(face: Face = face, flow: dict[str, Any] = flow) -> None:
                results.append(await face("acquire_token_by_device_flow", flow))

            group.start_soon(poll)
            await wait_until(lambda: fake.clock.sleepers == 1)  # type: ignore[attr-defined]
            await fake.clock.advance(flow["interval"])  # type: ignore[attr-defined]
    # aiomsal's flow dict also keeps the scopes and claims (MSAL's has no place for them).
    same(flows[0], {k: v for k, v in flows[1].items() if k not in ("scope", "claims_challenge")})
    same(*results)


@pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning")
async def test_cache_serialize_deserialize(fake: FakeAuthority) -> None:
    theirs, ours = await pair(fake, "PublicClientApplication", DESKTOP)
    for face in (theirs, ours):
        await face("acquire_token_by_username_password", ALICE, PASSWORD, USER_READ)
    state = [face.app.token_cache.serialize() for face in (theirs, ours)]
    again_theirs, again_ours = await pair(fake, "PublicClientApplication", DESKTOP)
    again_theirs.app.token_cache.deserialize(state[0])
    again_ours.app.token_cache.deserialize(state[1])
    sent = len(fake.token_requests)
    hits = []
    for face in (again_theirs, again_ours):
        [account] = await face("get_accounts")
        hits.append(await face("acquire_token_silent", USER_READ, account))
    same(*hits)
    assert hits[1]["token_source"] == "cache" and len(fake.token_requests) == sent




# -- signatures ---------------------------------------------------------------------------




def _params(fn: Any) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    import inspect

    positional, keyword = [], {}
    for p in list(inspect.signature(fn).parameters.values())[1:]:  # skip self
        if p.kind is p.VAR_KEYWORD:
            continue
        if p.kind is p.KEYWORD_ONLY:
            keyword[p.name] = p.default
        else:
            positional.append((p.name, p.default))
    return positional, keyword


@pytest.mark.parametrize("kind", ["ConfidentialClientApplication", "PublicClientApplication"])
def test_names_positional_orders_and_defaults_are_msals(kind: str) -> None:
    theirs, ours = getattr(msal, kind), getattr(compat, kind)
    methods = ["__init__"] + [
        name for name in dir(theirs)
        if not name.startswith("_") and callable(getattr(theirs, name))
    ]
    for name in methods:
        assert hasattr(ours, name), name
        their_pos, their_kw = _params(getattr(theirs, name))
        our_pos, our_kw = _params(getattr(ours, name))
        if name == "__init__" and kind == "ConfidentialClientApplication":
            # MSAL's subclass takes (client_id, client_credential, **kwargs): the base's order.
            their_pos, their_kw = _params(msal.ClientApplication.__init__)
        if name == "__init__" and kind == "PublicClientApplication":
            base_pos, base_kw = _params(msal.ClientApplication.__init__)
            their_kw = {**dict(base_pos[2:]), **base_kw, **their_kw}
        assert our_pos[: len(their_pos)] == their_pos, name
        assert all(
            our_kw.get(k, dict(our_pos).get(k, "missing")) == v for k, v in their_kw.items()
        ), name


@pytest.mark.skipif(sys.platform != "linux", reason="the broker flag of this platform")
async def test_a_broker_for_this_platform_fails_alike(fake: FakeAuthority) -> None:
    def theirs() -> Any:
        return msal.PublicClientApplication(
            DESKTOP, authority=fake.authority("contoso"), http_client=http_for(fake),
            instance_discovery=False, enable_broker_on_linux=True,
        )

    with pytest.raises(ImportError):
        await anyio.to_thread.run_sync(theirs)
    with pytest.raises(ImportError):
        compat.PublicClientApplication(
            DESKTOP, authority=fake.authority("contoso"), enable_broker_on_linux=True
        )
