"""SerializableTokenCache: the cache an application keeps its tokens in."""

from __future__ import annotations

import time

from ._msal_document import (
    Leftovers,
    LoadCount,
    build_document,
    load_document,
    partition_document,
    partition_expiry,
)
from ._msal_merge import dump_document, merge_documents, parse_document
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
        #: What documents held that the stores do not model, written back by serialize().
        self._leftovers = Leftovers()
        self._saved = self._version()

    @property
    def has_state_changed(self) -> bool:
        """Whether tokens changed since the last :meth:`serialize` or :meth:`deserialize`."""
        return self._version() != self._saved

    @has_state_changed.setter
    def has_state_changed(self, changed: bool) -> None:
        """``False`` marks the cache as saved (an application saved it its own way);
        ``True`` marks it as changed, so that the next save writes it."""
        self._saved = (-1, -1) if changed else self._version()

    def _version(self) -> tuple[int, int]:
        return (self._app.version, self._users.version)

    def __len__(self) -> int:
        """The number of access tokens held."""
        return len(self._app) + len(self._users)

    def __repr__(self) -> str:
        return f"SerializableTokenCache(access_tokens={len(self)})"

    # -- the whole cache ---------------------------------------------------------------

    def serialize(self) -> str:
        """The whole cache as MSAL's unified cache JSON, which every MSAL SDK reads.

        On-behalf-of entries carry MSAL.NET's ``user_assertion_hash``. What a
        :meth:`deserialize` read and aiomsal does not use (unknown sections and
        fields, entries of other kinds) is written back as it was.
        """
        document = build_document(self._app, self._users, self._leftovers)
        self._saved = self._version()
        return dump_document(document)

    def deserialize(self, state: str | bytes | None, *, now: float | None = None) -> None:
        """Replace the cache's content with a state an MSAL SDK (or :meth:`serialize`) wrote.

        Expired access tokens are left out. Raises :class:`MsalConfigurationError`
        (a ``ValueError``) when ``state`` is not a JSON object (or nests deeper
        than any cache document), leaving the cache exactly as it was. Otherwise
        it loads: an entry that cannot be used (malformed, of another kind) is
        skipped and kept as read, to be written back by :meth:`serialize`.
        ``now`` (epoch seconds) defaults to the system clock.
        """
        document = parse_document(state) if state else {}
        now = time.time() if now is None else now
        self._app.clear()
        self._users.clear()
        self._leftovers.clear()
        load_document(
            document, self._app, self._users, self._leftovers, now=now, keep_unusable=True
        )
        self._saved = self._version()

    # -- partitions (the unit of a cache storage) -------------------------------------

    def dump_partition(self, name: str, *, now: float | None = None) -> bytes | None:
        """The entries of one partition as an MSAL document (UTF-8 JSON).

        None when the partition holds neither an unexpired access token nor
        a refresh token. Costs what the partition holds, not what the cache holds.
        """
        document = partition_document(
            self._app, self._users, self._leftovers, name, time.time() if now is None else now
        )
        return None if document is None else dump_document(document).encode("utf-8")

    def load_partition(self, blob: bytes, *, now: float | None = None) -> int:
        """Merge a partition's entries into the cache; return how many were taken.

        Nothing is removed: an entry the cache already holds is replaced only
        by a newer one (a later ``expires_on`` or ``last_modification_time``).
        A malformed blob, or a malformed entry in it, is ignored.
        """
        return self._load_partition(blob, now=now).taken

    def _load_partition(self, blob: bytes, *, now: float | None = None) -> LoadCount:
        """:meth:`load_partition`, with the count of malformed entries skipped.

        A blob that is not a cache document at all counts as one skipped entry.
        """
        try:
            document = parse_document(blob)
        except ValueError:
            return LoadCount(0, 1)
        return load_document(
            document, self._app, self._users, self._leftovers,
            now=time.time() if now is None else now, keep_unusable=False,
        )

    @staticmethod
    def merge_partition_blobs(
        current: bytes | None, ours: bytes | None, *, now: float | None = None
    ) -> bytes | None:
        """The union of two partition documents per entry: the newer one wins.

        Expired access tokens are dropped; None when no token remains (the
        partition may be deleted). For storage writers, under their lock.
        """
        return merge_documents(current, ours, time.time() if now is None else now)

    def partition_expiry(self, name: str) -> float | None:
        """The latest ``expires_on`` of the partition's access tokens, for a storage TTL.

        None when the partition holds a refresh token (keep it) or nothing.
        """
        return partition_expiry(self._app, self._users, name)
