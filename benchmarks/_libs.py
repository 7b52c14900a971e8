"""The three libraries behind one small interface, each configured for the fake authority.

* aiomsal: ``ConfidentialClientApplication(..., instance_discovery=False, verify=ca_file)``.
* MSAL Python: ``msal.ConfidentialClientApplication(..., instance_discovery=False)``, called
  from the event loop through ``loop.run_in_executor`` on a ``ThreadPoolExecutor``, as async
  services use it today. Its ``http_client`` is a ``requests.Session`` with
  ``verify=ca_file`` and ``trust_env=False`` (with ``trust_env`` on, requests lets a
  ``REQUESTS_CA_BUNDLE`` variable override ``verify=``, and msal's ``verify=`` would then not
  reach the fake's CA), one retry as msal's own session has, a connection pool as large as the
  thread pool, and a wrapper that counts POSTs (msal only POSTs to the token endpoint).
* azure-identity: ``azure.identity.aio.ClientSecretCredential(tenant, client, secret,
  authority=base_url, transport=...)`` with an ``AioHttpTransport`` that counts POSTs, over an
  aiohttp session whose connector trusts the fake's CA (one SSL context, made once). Not
  ``AioHttpTransport(connection_verify=ca_file)``: with a CA path, azure-core builds a new SSL
  context for every request, which aiohttp then pools apart, so every request opened a new
  TLS connection and kept it (~130 KB each): a handicap production (``verify=True``) does not
  have. (The async credential posts straight to ``{authority}/{tenant}/oauth2/v2.0/token``;
  it does no instance discovery, so ``disable_instance_discovery`` changes nothing for it.)

Every adapter exposes the client-credentials flow as a zero-argument awaitable factory
(:meth:`Library.caller`) so that timing loops add no per-call overhead of their own, and the
on-behalf-of flow as :meth:`Library.obo_caller`:

* aiomsal: ``await app.acquire_token_on_behalf_of(assertion, [scope])`` (cached per assertion).
* MSAL Python: ``app.acquire_token_on_behalf_of(assertion, [scope])`` through the executor (it
  never reads its cache there: a request on every call).
* azure-identity: one ``OnBehalfOfCredential(tenant, client, client_secret=...,
  user_assertion=assertion, authority=base_url, transport=...)`` per assertion (kept in a
  dict, as a service caching across requests must), ``await cred.get_token(scope)``. Every
  credential shares the library's one transport (azure-identity's lightest configuration;
  left to itself each credential opens its own aiohttp session).
"""

from __future__ import annotations

import abc
import asyncio
import base64
import copy
import functools
import importlib
import json
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiomsal import ConfidentialClientApplication
from aiomsal._apps._application import MEMO_LIMIT
from aiomsal._apps._confidential import user_assertion_hash
from aiomsal._protocol._http import HttpRequest, HttpResponse
from aiomsal._protocol._scopes import target_key
from aiomsal._protocol._token_response import TokenResponse

from ._fake import CLIENT_ID, CLIENT_SECRET, TENANT, FakeEndpoint

__all__ = [
    "LIBRARIES",
    "AiomsalLibrary",
    "AzureIdentityLibrary",
    "Caller",
    "Library",
    "MsalLibrary",
    "OboStore",
    "PeerError",
    "SecretFor",
    "open_library",
]

Caller = Callable[[], Awaitable[Any]]
SecretFor = Callable[[int], str]
#: Stores (incoming assertion, token response) as a fetched on-behalf-of answer is stored.
OboStore = Callable[[str, TokenResponse], None]

#: Library keys, in table order, and their labels.
LIBRARIES = {
    "aiomsal": "aiomsal",
    "msal": "msal (threads)",
    "azure": "azure-identity aio",
}

_HTTP_TIMEOUT = 30.0


class PeerError(RuntimeError):
    """A library answered with an error instead of a token."""


class Library(abc.ABC):
    """One library, configured for one fake authority, with a fresh (empty) cache."""

    key: str = ""

    @property
    def label(self) -> str:
        return LIBRARIES[self.key]

    @abc.abstractmethod
    def caller(self, scope: str) -> Caller:
        """A zero-argument factory of awaitables acquiring an app token for ``scope``."""

    def failure(self, result: Any) -> str | None:
        """The error a caller's result carries, if the library reports errors as values."""
        return None

    async def get(self, scope: str) -> str:
        """Acquire a token for ``scope`` and return it; raise on any error."""
        return self._checked(await self.caller(scope)())

    @abc.abstractmethod
    def obo_caller(self, scope: str, assertion: str) -> Caller:
        """A zero-argument factory of awaitables acquiring a token on behalf of ``assertion``."""

    async def get_obo(self, scope: str, assertion: str) -> str:
        """Acquire a token for ``scope`` on behalf of ``assertion``; raise on any error."""
        return self._checked(await self.obo_caller(scope, assertion)())

    def _checked(self, result: Any) -> str:
        error = self.failure(result)
        if error is not None:
            raise PeerError(error)
        return self._token_of(result)

    @staticmethod
    @abc.abstractmethod
    def _token_of(result: Any) -> str: ...

    @abc.abstractmethod
    def requests_sent(self) -> int:
        """Token requests sent so far (POSTs to the token endpoint)."""

    @abc.abstractmethod
    def cached_tokens(self) -> int:
        """Access tokens in the library's cache now."""

    def cache_entries(self) -> dict[str, int]:
        """What the library holds, by kind (access and refresh tokens, accounts, ...)."""
        return {"access_tokens": self.cached_tokens()}

    @abc.abstractmethod
    def seed(self, scopes: Sequence[str], secret_for: SecretFor) -> None:
        """Put one valid app token per scope in the cache, without requests.

        Needs one token fetched normally first (for the cache's environment and realm).
        """

    def counters(self) -> dict[str, int]:
        """Extra counters the library itself keeps (aiomsal's statistics)."""
        return {}

    async def aclose(self) -> None:
        return None


class AiomsalLibrary(Library):
    key = "aiomsal"

    def __init__(self, fake: FakeEndpoint, **options: Any) -> None:
        # ``options``: extra constructor keywords (max_cache_entries for the bounded scenario).
        self.app = ConfidentialClientApplication(
            CLIENT_ID,
            CLIENT_SECRET,
            authority=fake.authority,
            instance_discovery=False,
            verify=fake.ca_file,
            **options,
        )
        self._lifetime = fake.token_lifetime

    def caller(self, scope: str) -> Caller:
        return functools.partial(self.app.acquire_token_for_client, [scope])

    def obo_caller(self, scope: str, assertion: str) -> Caller:
        return functools.partial(self.app.acquire_token_on_behalf_of, assertion, [scope])

    def cache_entries(self) -> dict[str, int]:
        users = self.app._users
        return {
            "access_tokens": self.cached_tokens(),
            "user_access_tokens": len(users),
            "refresh_tokens": len(users.refresh_tokens()),
            "accounts": len(users.identities()),
        }

    def record_answers(self) -> dict[str, Any]:
        """From now on, keep every on-behalf-of answer, by assertion (see :meth:`replay`)."""
        transport = _ReplayTransport(self.app._transport)
        setattr(self.app, "_transport", transport)  # noqa: B010 - wraps the app's transport
        return transport.answers

    def replay(self, answers: dict[str, Any]) -> None:
        """From now on, answer on-behalf-of requests with ``answers`` instead of the network.

        The request is still built and sent to a transport, and the answer parsed and
        stored: the whole path of a call but the socket.
        """
        transport: Any = self.app._transport
        if not isinstance(transport, _ReplayTransport):
            transport = _ReplayTransport(transport)
            setattr(self.app, "_transport", transport)  # noqa: B010
        transport.replaying = answers

    async def capture_obo_response(self, scope: str, assertion: str) -> TokenResponse:
        """Make one on-behalf-of call (a miss) and return the token response it stored."""
        app = self.app
        original = app._send_token_request
        captured: list[TokenResponse] = []

        async def spy(request: HttpRequest) -> TokenResponse:
            response = await original(request)
            captured.append(response)
            return response

        setattr(app, "_send_token_request", spy)  # noqa: B010 - an instance-level spy
        try:
            await self.get_obo(scope, assertion)
        finally:
            delattr(app, "_send_token_request")
        if not captured:
            raise RuntimeError("the on-behalf-of call sent no request (the token was cached)")
        return captured[-1]

    async def obo_store(self, scope: str) -> OboStore:
        """Store on-behalf-of answers for ``scope`` without requests, as a fetch stores them.

        The same call the fetch path makes after its request (``_store_user_tokens``,
        keyed by ``user_assertion_hash`` of the assertion, with the request shape and the
        resolved authority that ``acquire_token_on_behalf_of`` uses), so that every
        bound and index of the cache applies.
        """
        app = self.app
        prefix = await app._shape((scope,), None)
        resolved = await app._resolver.resolve(app._target_authority(None))
        wanted, clock, store = prefix.wanted, app._clock, app._store_user_tokens

        def put(assertion: str, response: TokenResponse) -> None:
            store(
                response,
                resolved=resolved,
                wanted=wanted,
                requested_at=clock.time(),
                nonce=None,
                assertion_hash=user_assertion_hash(assertion),
            )

        return put

    @staticmethod
    def _token_of(result: Any) -> str:
        return str(result.access_token)

    def requests_sent(self) -> int:
        return self.app.statistics().requests_sent

    def cached_tokens(self) -> int:
        return self.app.statistics().cached_tokens

    def counters(self) -> dict[str, int]:
        s = self.app.statistics()
        return {
            "hits": s.hits,
            "misses": s.misses,
            "coalesced": s.coalesced,
            "requests_sent": s.requests_sent,
            "background_refreshes": s.background_refreshes,
            "refresh_failures": s.refresh_failures,
        }

    def seed(self, scopes: Sequence[str], secret_for: SecretFor) -> None:
        # Exactly what a fetch stores: the key _acquire_for_client builds (same environment,
        # client and realm as a token fetched normally, the target from target_key), and the
        # record _fetch_client_token makes of a token response (_new_token) and puts in the
        # app store. The memo from a call's (scopes, tenant) to its key is filled too while
        # it stays under its bound.
        app = self.app
        if not app._app_keys:
            raise RuntimeError("seed() needs one token fetched normally first")
        template = next(iter(app._app_keys.values()))
        memo = len(app._app_keys) + len(scopes) < MEMO_LIMIT
        now = time.time()
        lifetime = self._lifetime
        for i, scope in enumerate(scopes):
            requested = (scope,)
            key = template._replace(target=target_key(requested))
            response = TokenResponse(
                access_token=secret_for(i),
                token_type="Bearer",
                expires_in=lifetime,
                ext_expires_in=lifetime,
                refresh_in=None,
                scope=requested,
            )
            token = app._new_token(key, response, requested_at=now, scopes=requested)
            app._app_tokens.put(token)
            if memo:
                app._remember_app_key(requested, None, key)

    async def aclose(self) -> None:
        await self.app.aclose()


class _ReplayTransport:
    """aiomsal's transport, recording token answers by assertion, or replaying them."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.answers: dict[str, HttpResponse] = {}
        self.replaying: dict[str, Any] | None = None

    async def send(self, request: HttpRequest) -> HttpResponse:
        assertion = (request.form or {}).get("assertion")
        if assertion is not None and self.replaying is not None:
            answer = self.replaying[assertion]  # fresh bytes, as if read from a socket
            return HttpResponse(answer.status, dict(answer.headers), bytes(bytearray(answer.body)))
        response: HttpResponse = await self.inner.send(request)
        if assertion is not None:
            self.answers[assertion] = response
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _ReplayedResponse:
    """What MSAL reads of a ``requests.Response``."""

    def __init__(self, status_code: int, text: str, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.text = text
        self.headers = headers

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}")


class _CountingHttpClient:
    """MSAL's ``http_client`` contract (``get``, ``post``, ``close``) over a requests.Session.

    With ``answers`` set (a dict), on-behalf-of answers are recorded into it by assertion;
    with ``replaying`` set, they are answered from it instead of the network.
    """

    def __init__(self, session: Any) -> None:
        self._session = session
        self._lock = threading.Lock()
        self.posts = 0
        self.answers: dict[str, tuple[int, str, dict[str, str]]] | None = None
        self.replaying: dict[str, tuple[int, str, dict[str, str]]] | None = None

    def post(self, url: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.posts += 1
        data = kwargs.get("data")
        assertion = data.get("assertion") if isinstance(data, dict) else None
        if assertion is not None and self.replaying is not None:
            status, text, headers = self.replaying[assertion]
            return _ReplayedResponse(status, text.encode().decode(), dict(headers))
        kwargs.setdefault("timeout", _HTTP_TIMEOUT)
        response = self._session.post(url, *args, **kwargs)
        if assertion is not None and self.answers is not None:
            self.answers[assertion] = (
                response.status_code, response.text, dict(response.headers)
            )
        return response

    def get(self, url: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", _HTTP_TIMEOUT)
        return self._session.get(url, *args, **kwargs)

    def close(self) -> None:
        self._session.close()


class MsalLibrary(Library):
    key = "msal"

    def __init__(self, fake: FakeEndpoint, threads: int) -> None:
        import msal

        requests = importlib.import_module("requests")
        session = requests.Session()
        session.verify = fake.ca_file
        session.trust_env = False
        adapter = requests.adapters.HTTPAdapter(
            max_retries=1, pool_connections=1, pool_maxsize=threads
        )
        session.mount("https://", adapter)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="msal")
        self.http = _CountingHttpClient(session)
        self._fake = fake
        # The constructor fetches the OpenID configuration (blocking I/O): callers build
        # this object in a worker thread (see open_library).
        self.app: Any = msal.ConfidentialClientApplication(
            CLIENT_ID,
            client_credential=CLIENT_SECRET,
            authority=fake.authority,
            instance_discovery=False,
            http_client=self.http,
        )

    def caller(self, scope: str) -> Caller:
        loop = asyncio.get_running_loop()
        return functools.partial(
            loop.run_in_executor, self.pool, self.app.acquire_token_for_client, [scope]
        )

    def obo_caller(self, scope: str, assertion: str) -> Caller:
        loop = asyncio.get_running_loop()
        return functools.partial(
            loop.run_in_executor, self.pool, self.app.acquire_token_on_behalf_of, assertion,
            [scope],
        )

    def record_answers(self) -> dict[str, Any]:
        """From now on, keep every on-behalf-of answer, by assertion (see :meth:`replay`)."""
        answers: dict[str, Any] = {}
        self.http.answers = answers
        return answers

    def replay(self, answers: dict[str, Any]) -> None:
        """From now on, answer on-behalf-of requests with ``answers`` instead of the network."""
        self.http.replaying = answers

    def cache_entries(self) -> dict[str, int]:
        return {section: len(entries) for section, entries in self.app.token_cache._cache.items()}

    async def capture_obo_event(self, scope: str, assertion: str) -> dict[str, Any]:
        """Make one on-behalf-of call and return (a copy of) the event it added to the cache."""
        cache = self.app.token_cache
        events: list[dict[str, Any]] = []
        original = cache.add

        def spy(event: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            events.append(copy.deepcopy(event))
            return original(event, *args, **kwargs)

        cache.add = spy
        try:
            await self.get_obo(scope, assertion)
        finally:
            del cache.add
        if not events:
            raise RuntimeError("the on-behalf-of call added nothing to MSAL's cache")
        return events[-1]

    def seed_obo(self, event: dict[str, Any], count: int) -> None:
        """Add ``count`` more users' on-behalf-of answers through ``TokenCache.add``.

        The event a real call added, with a distinct ``client_info`` (so a distinct
        home account) per user: what ``count`` other users' calls would have added.
        """
        cache = self.app.token_cache
        response = event["response"]
        for i in range(count):
            client_info = json.dumps({"uid": f"seeded-{i:07d}", "utid": "bench-tenant"})
            encoded = base64.urlsafe_b64encode(client_info.encode()).rstrip(b"=").decode()
            cache.add({**event, "response": {**response, "client_info": encoded}})

    def direct_caller(self, scope: str) -> Callable[[], Any]:
        """The same call made directly on the calling thread (no executor hop)."""
        return functools.partial(self.app.acquire_token_for_client, [scope])

    def failure(self, result: Any) -> str | None:
        if isinstance(result, dict) and "access_token" in result:
            return None
        if isinstance(result, dict):
            return f"{result.get('error')}: {result.get('error_description')}"
        return f"unexpected result {type(result).__name__}"

    @staticmethod
    def _token_of(result: Any) -> str:
        return str(result["access_token"])

    def requests_sent(self) -> int:
        return self.http.posts

    def cached_tokens(self) -> int:
        return len(self.app.token_cache._cache.get("AccessToken", {}))

    def seed(self, scopes: Sequence[str], secret_for: SecretFor) -> None:
        _seed_msal_cache(
            self.app.token_cache,
            scopes,
            secret_for,
            token_endpoint=self._fake.token_endpoint,
            environment=self.app.authority.instance,
            lifetime=self._fake.token_lifetime,
        )

    async def aclose(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.http.close()


def _seed_msal_cache(
    cache: Any,
    scopes: Sequence[str],
    secret_for: SecretFor,
    *,
    token_endpoint: str,
    environment: str | None,
    lifetime: int,
) -> None:
    """Add app tokens through ``TokenCache.add`` with the event a client-credentials fetch makes."""
    for i, scope in enumerate(scopes):
        event: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "scope": [scope],
            "token_endpoint": token_endpoint,
            "response": {
                "access_token": secret_for(i),
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
            },
            "data": {},
            "grant_type": "client_credentials",
        }
        if environment is not None:
            event["environment"] = environment
        cache.add(event)


def _counting_transport(ca_file: str) -> Any:
    """An ``AioHttpTransport`` trusting ``ca_file``, whose instances count POSTs.

    The session is the one ``AioHttpTransport`` makes for itself (no cookies, no
    decompression), with a connector whose SSL context trusts ``ca_file``, made once;
    ``connection_verify`` stays True (see the module docstring). Needs a running loop.
    """
    import aiohttp
    from azure.core.pipeline.transport import AioHttpTransport

    async def send(self: Any, request: Any, **kwargs: Any) -> Any:
        if request.method == "POST":
            self.posts += 1
        return await AioHttpTransport.send(self, request, **kwargs)

    cls = type("CountingAioHttpTransport", (AioHttpTransport,), {"send": send, "posts": 0})
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca_file)),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )
    return cls(session=session, session_owner=True)


class AzureIdentityLibrary(Library):
    key = "azure"

    def __init__(self, fake: FakeEndpoint) -> None:
        from azure.identity.aio import ClientSecretCredential

        self._fake = fake
        self._obo: dict[str, Any] = {}
        self.transport = _counting_transport(fake.ca_file)
        self.credential = ClientSecretCredential(
            TENANT,
            CLIENT_ID,
            CLIENT_SECRET,
            authority=fake.base_url,
            transport=self.transport,
            disable_instance_discovery=True,
        )

    async def open(self) -> None:
        await self.credential.__aenter__()

    def caller(self, scope: str) -> Caller:
        return functools.partial(self.credential.get_token, scope)

    def obo_credential(self, assertion: str) -> Any:
        """The ``OnBehalfOfCredential`` of ``assertion`` (one per user, made on first use)."""
        credential = self._obo.get(assertion)
        if credential is None:
            from azure.identity.aio import OnBehalfOfCredential

            credential = OnBehalfOfCredential(
                TENANT,
                CLIENT_ID,
                client_secret=CLIENT_SECRET,
                user_assertion=assertion,
                authority=self._fake.base_url,
                transport=self.transport,
                disable_instance_discovery=True,
            )
            self._obo[assertion] = credential
        return credential

    def obo_caller(self, scope: str, assertion: str) -> Caller:
        return functools.partial(self.obo_credential(assertion).get_token, scope)

    def cache_entries(self) -> dict[str, int]:
        return {"access_tokens": self.cached_tokens(), "obo_credentials": len(self._obo)}

    @staticmethod
    def _token_of(result: Any) -> str:
        return str(result.token)

    def requests_sent(self) -> int:
        return int(self.transport.posts)

    def _cache(self) -> Any:
        return self.credential._client._get_cache()

    def cached_tokens(self) -> int:
        return len(self._cache()._cache.get("AccessToken", {}))

    def seed(self, scopes: Sequence[str], secret_for: SecretFor) -> None:
        # The credential keeps its tokens in an msal TokenCache and adds them with this event.
        _seed_msal_cache(
            self._cache(),
            scopes,
            secret_for,
            token_endpoint=self._fake.token_endpoint,
            environment=None,
            lifetime=self._fake.token_lifetime,
        )

    async def aclose(self) -> None:
        await self.credential.close()


async def open_library(
    key: str,
    fake: FakeEndpoint,
    *,
    msal_threads: int,
    aiomsal_options: dict[str, Any] | None = None,
) -> Library:
    """A fresh instance of library ``key`` pointed at ``fake``.

    ``aiomsal_options``: extra keywords for aiomsal's ``ConfidentialClientApplication``.
    """
    if key == "aiomsal":
        return AiomsalLibrary(fake, **(aiomsal_options or {}))
    if key == "msal":
        loop = asyncio.get_running_loop()
        build = functools.partial(MsalLibrary, fake, msal_threads)
        return await asyncio.wait_for(loop.run_in_executor(None, build), _HTTP_TIMEOUT)
    if key == "azure":
        library = AzureIdentityLibrary(fake)
        await library.open()
        return library
    raise ValueError(f"unknown library {key!r}")
