"""A cold miss: the callers with the same arguments share one flight from their first step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from .._concurrency._singleflight import SingleFlight
    from ._application import ClientApplication

__all__ = ["join_call"]

T = TypeVar("T")


def join_call(
    app: ClientApplication,
    call: Hashable,
    tenant: str | None,
    realm: str | None,
    start: Callable[..., Awaitable[T]],
    *args: Any,
) -> Awaitable[T]:
    """What a caller that missed the cache awaits: the flight of its call's arguments.

    The first caller starts ``start(*args)`` as the call's flight (``call`` is its key),
    which carries that caller's deadline (``timeout=``), resolves the authority, derives
    the cache key and enters the key's flight. A caller that joins gets a future (no
    cancel scope, no timer, no coroutine), wakes once, and fails, if the flight does,
    with its own copy of the error. A joined miss counts for ``realm`` (the call's shape's,
    when known) or for ``tenant``. A call that is not hashable runs on its own, under
    ``timeout=``, for the validation to say what is wrong.
    """
    calls = cast("SingleFlight[Hashable, T]", app._calls)
    try:
        joined = calls.join(call)
    except TypeError:  # not hashable
        return app._bounded(lambda: start(*args))
    if realm is None:
        realm = app._default_realm if tenant is None else tenant
    if joined is not None:  # counted as a miss by statistics(), from _calls.coalesced
        counters = app._counters.tenant(realm)
        counters.misses += 1
        counters.coalesced += 1
    waiting = joined or calls.run(call, start, *args)
    if app._counters.observer is None:
        return waiting
    return app._observed(waiting, realm, coalesced=joined is not None)
