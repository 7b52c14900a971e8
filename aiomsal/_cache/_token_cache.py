"""SerializableTokenCache: the cache an application keeps its tokens in."""

from __future__ import annotations

from ._store import TokenStore
from ._user_store import UserTokenStore

__all__ = ["SerializableTokenCache"]


class SerializableTokenCache:
    """The tokens of one or more applications, readable and writable in MSAL's format.

    Pass it as ``token_cache=`` to an application (as in MSAL). It holds the
    application token cache (client credentials) and the user token cache
    (signed-in users and on-behalf-of assertions) apart from each other.
    :meth:`serialize` writes MSAL's unified cache format, which the MSAL SDKs
    read; :meth:`deserialize` reads what they wrote. Unknown sections and
    fields survive a round trip.
    """

    def __init__(self) -> None:
        self._app = TokenStore()
        self._users = UserTokenStore()
        self._saved = self._version()

    @property
    def has_state_changed(self) -> bool:
        """Whether tokens changed since the last :meth:`serialize` or :meth:`deserialize`."""
        return self._version() != self._saved

    def _version(self) -> tuple[int, int]:
        return (self._app.version, self._users.version)

    def __len__(self) -> int:
        """The number of access tokens held."""
        return len(self._app) + len(self._users)

    def __repr__(self) -> str:
        return f"SerializableTokenCache(access_tokens={len(self)})"
