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
  authority=base_url, transport=...)`` with an ``AioHttpTransport(connection_verify=ca_file)``
  that counts POSTs. (The async credential posts straight to ``{authority}/{tenant}/oauth2/
  v2.0/token``; it does no instance discovery, so ``disable_instance_discovery`` changes
  nothing for it.)

Every adapter exposes the client-credentials flow as a zero-argument awaitable factory
(:meth:`Library.caller`) so that timing loops add no per-call overhead of their own. An
on-behalf-of variant would add a second factory (``obo_caller(scope, assertion)``) and its
own scenario functions, leaving these untouched.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import importlib
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiomsal import ConfidentialClientApplication
from aiomsal._application import MEMO_LIMIT
from aiomsal._scopes import target_key
from aiomsal._token_response import TokenResponse

from ._fake import CLIENT_ID, CLIENT_SECRET, TENANT, FakeEndpoint

__all__ = [
    "LIBRARIES",
    "AiomsalLibrary",
    "AzureIdentityLibrary",
    "Caller",
    "Library",
    "MsalLibrary",
    "PeerError",
    "SecretFor",
    "open_library",
]

Caller = Callable[[], Awaitable[Any]]
SecretFor = Callable[[int], str]

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
        result = await self.caller(scope)()
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

    def __init__(self, fake: FakeEndpoint) -> None:
        self.app = ConfidentialClientApplication(
            CLIENT_ID,
            CLIENT_SECRET,
            authority=fake.authority,
            instance_discovery=False,
            verify=fake.ca_file,
        )
        self._lifetime = fake.token_lifetime

    def caller(self, scope: str) -> Caller:
        return functools.partial(self.app.acquire_token_for_client, [scope])

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
                app._app_keys[(requested, None)] = key

    async def aclose(self) -> None:
        await self.app.aclose()


class _CountingHttpClient:
    """MSAL's ``http_client`` contract (``get``, ``post``, ``close``) over a requests.Session."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._lock = threading.Lock()
        self.posts = 0

    def post(self, url: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.posts += 1
        kwargs.setdefault("timeout", _HTTP_TIMEOUT)
        return self._session.post(url, *args, **kwargs)

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
    """An ``AioHttpTransport(connection_verify=ca_file)`` whose instances count POSTs."""
    from azure.core.pipeline.transport import AioHttpTransport

    async def send(self: Any, request: Any, **kwargs: Any) -> Any:
        if request.method == "POST":
            self.posts += 1
        return await AioHttpTransport.send(self, request, **kwargs)

    cls = type("CountingAioHttpTransport", (AioHttpTransport,), {"send": send, "posts": 0})
    return cls(connection_verify=ca_file)


class AzureIdentityLibrary(Library):
    key = "azure"

    def __init__(self, fake: FakeEndpoint) -> None:
        from azure.identity.aio import ClientSecretCredential

        self._fake = fake
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


async def open_library(key: str, fake: FakeEndpoint, *, msal_threads: int) -> Library:
    """A fresh instance of library ``key`` pointed at ``fake``."""
    if key == "aiomsal":
        return AiomsalLibrary(fake)
    if key == "msal":
        loop = asyncio.get_running_loop()
        build = functools.partial(MsalLibrary, fake, msal_threads)
        return await asyncio.wait_for(loop.run_in_executor(None, build), _HTTP_TIMEOUT)
    if key == "azure":
        library = AzureIdentityLibrary(fake)
        await library.open()
        return library
    raise ValueError(f"unknown library {key!r}")
