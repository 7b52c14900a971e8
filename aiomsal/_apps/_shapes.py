"""What a call's scopes and tenant make: read once, validated once, memoized as a shape."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .._concurrency._refresher import Refresh
from .._protocol._scopes import UserScopes

__all__ = ["RequestShape", "scopes_once"]


def scopes_once(scopes: Iterable[str]) -> object:
    """The scopes as a tuple, read once (a generator, ``iter`` or ``map`` is consumed here).

    A string, or anything that is not iterable, is passed on unchanged for the
    scope validation to refuse with a clear error.
    """
    if isinstance(scopes, (str, bytes)):
        return scopes
    try:
        return tuple(scopes)
    except TypeError:
        return scopes


@dataclasses.dataclass(slots=True, eq=False)
class RequestShape:
    """What a user-token call's cache key needs besides the account or assertion.

    One per (scopes, tenant) of the calls made, memoized: ``renew`` is the
    background renewal of the on-behalf-of tokens of this shape
    (``renew(token, assertion)``), made once, so that a token's schedule
    holds no per-user tuple.
    """

    environment: str
    realm: str
    wanted: UserScopes
    tenant: str | None = None
    renew: Refresh | None = None
