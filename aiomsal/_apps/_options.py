"""The options every application takes, named once for the type checker and for ``help()``.

:class:`ClientApplication.__init__` declares them as keyword-only parameters
with their defaults; a subclass that adds parameters of its own takes
``**options: Unpack[ApplicationOptions]`` and is decorated with
:func:`with_application_options`, so that editors, ``mypy`` and ``help()``
show the complete, typed signature without a third copy of it.
"""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from .._cache._storage import CacheStorage
from .._cache._token_cache import SerializableTokenCache
from .._concurrency._clock import Clock

if TYPE_CHECKING:
    import aiohttp

__all__ = ["ApplicationOptions", "with_application_options"]


class ApplicationOptions(TypedDict, total=False):
    """The keyword options of every application (see :class:`ClientApplication`)."""

    oidc_authority: str | None
    instance_discovery: bool | None
    http_session: aiohttp.ClientSession | None
    timeout: float | None
    verify: bool | str | ssl.SSLContext
    clock: Clock | None
    expiry_margin: float
    refresh_fraction: float
    client_capabilities: Sequence[str] | None
    token_cache: SerializableTokenCache | None
    cache_storage: CacheStorage | None
    max_cache_entries: int | None
    validate_authority: bool
    proxies: Mapping[str, str] | None
    trust_env: bool
    app_name: str | None
    app_version: str | None
    exclude_scopes: Sequence[str] | None
    client_claims: Mapping[str, Any] | None
    azure_region: str | bool | None
    http_cache: object
    enable_pii_log: bool | None


_F = TypeVar("_F", bound=Callable[..., None])


def with_application_options(base_init: Callable[..., None]) -> Callable[[_F], _F]:
    """Give a subclass ``__init__`` taking ``**options`` the base's keyword-only parameters.

    Only ``__signature__`` changes (what ``help()`` and :mod:`inspect` show);
    the call itself goes through unchanged.
    """
    options = [
        p
        for p in inspect.signature(base_init).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]

    def decorate(init: _F) -> _F:
        own = [
            p
            for p in inspect.signature(init).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        signature = inspect.signature(init).replace(parameters=[*own, *options])
        init.__signature__ = signature  # type: ignore[attr-defined]
        return init

    return decorate

