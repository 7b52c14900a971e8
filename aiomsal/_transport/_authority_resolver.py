"""Learning an authority's endpoints: instance discovery and OIDC metadata.

Each authority's metadata is fetched once, on first use, by one request
however many callers need it at that moment, and then kept for the life of
the application. Failures are not kept: the next caller tries again.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._cache._environment import cache_environment
from .._concurrency._singleflight import SingleFlight
from .._concurrency._tasks import TaskRunner
from .._errors import MsalError, MsalServiceError
from .._protocol._authority import (
    Authority,
    AuthorityMetadata,
    build_metadata_request,
    parse_metadata_response,
)
from .._protocol._http import HttpRequest, Transport
from .._protocol._instance_discovery import (
    InstanceMetadata,
    build_instance_discovery_request,
    known_aliases,
    parse_instance_discovery_response,
)

__all__ = ["AuthorityResolver", "ResolvedAuthority"]


@dataclass(frozen=True, slots=True)
class ResolvedAuthority:
    """An authority with its endpoints and the host aliases its cache entries answer to."""

    authority: Authority
    metadata: AuthorityMetadata
    #: The cache environment: the host name, or its cloud's preferred alias (Entra),
    #: or the whole issuer URL (generic OpenID Connect; see ``cache_environment``).
    environment: str
    aliases: frozenset[str]


class AuthorityResolver:
    def __init__(
        self,
        transport: Transport,
        runner: TaskRunner,
        *,
        instance_discovery: bool,
        validate_authority: bool = True,
        timeout: float | None = None,
    ) -> None:
        self._transport = transport
        self._instance_discovery = instance_discovery
        #: False (MSAL's validate_authority=False): a host Entra does not know is used as is.
        self._validate_authority = validate_authority
        self._resolved: dict[str, ResolvedAuthority] = {}
        self._instances: dict[str, InstanceMetadata | None] = {}
        # ``timeout`` bounds each discovery flight as a whole (its callers have their own).
        self._flights: SingleFlight[str, ResolvedAuthority] = SingleFlight(runner, timeout=timeout)
        self._instance_flights: SingleFlight[str, InstanceMetadata | None] = SingleFlight(
            runner, timeout=timeout
        )

    def cached(self, authority: Authority) -> ResolvedAuthority | None:
        return self._resolved.get(authority.url)

    async def resolve(self, authority: Authority) -> ResolvedAuthority:
        resolved = self._resolved.get(authority.url)
        if resolved is not None:
            return resolved
        return await self._flights.run(authority.url, lambda: self._fetch(authority))

    def abort(self, error: MsalError) -> None:
        """Fail every discovery in progress (the application is closing)."""
        self._flights.abort(error)
        self._instance_flights.abort(error)

    async def _fetch(self, authority: Authority) -> ResolvedAuthority:
        instance = await self._instance(authority)
        response = await self._transport.send(build_metadata_request(authority))
        metadata = parse_metadata_response(authority, response)
        aliases = set(known_aliases(authority.host))
        if instance is not None:
            aliases |= instance.aliases
        environment = cache_environment(authority)
        resolved = ResolvedAuthority(authority, metadata, environment, frozenset(aliases))
        self._resolved[authority.url] = resolved
        return resolved

    async def _instance(self, authority: Authority) -> InstanceMetadata | None:
        """Instance metadata for the authority's host: one discovery per host, ever."""
        if not self._instance_discovery:
            return None
        if authority.host in self._instances:
            return self._instances[authority.host]
        request = build_instance_discovery_request(authority)
        if request is None:
            return None
        return await self._instance_flights.run(
            authority.host, lambda: self._discover(authority, request)
        )

    async def _discover(
        self, authority: Authority, request: HttpRequest
    ) -> InstanceMetadata | None:
        response = await self._transport.send(request)
        instance: InstanceMetadata | None
        try:
            instance = parse_instance_discovery_response(authority, response)
        except MsalServiceError as error:
            if self._validate_authority or error.error != "invalid_instance":
                raise
            instance = None
        self._instances[authority.host] = instance
        return instance
