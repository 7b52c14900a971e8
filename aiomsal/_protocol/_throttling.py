"""The throttling memory: throttled answers are replayed until their time has passed.

When the authority answers a token request with HTTP 429, or with a 5xx and a
``Retry-After`` header, it asks the client to stay away for a while. MSAL
honours that by remembering the answer for that exact request: sending the same
request again before the time is up fails at once, without touching the
network, and the parser raises :class:`aiomsal.MsalThrottledError` from the
replayed answer.

This module is sans-I/O: it never awaits, never reads a clock and never sends
anything. The transport passes it the time and the requests and responses.

Requests are identified by a SHA-256 digest of their throttle key (method, URL
and form). The form holds secrets and assertions, so the raw key is never kept.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import json
import math
import re
from collections import OrderedDict
from dataclasses import dataclass

from aiomsal._protocol._http import HttpRequest, HttpResponse

__all__ = ["MAX_RETRY_AFTER", "ThrottleMemory", "parse_retry_after"]

#: The longest wait a ``Retry-After`` may ask for, in seconds (MSAL's cap).
MAX_RETRY_AFTER = 3600.0

_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Return the seconds a ``Retry-After`` header value asks to wait, from ``now``.

    The value is either delta-seconds (``"30"``) or an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``), which is taken relative to ``now``
    (epoch seconds); a date in the past gives ``0.0``. Either is capped at
    :data:`MAX_RETRY_AFTER` (a year-9999 date asks for an hour, from the first
    answer on). Returns ``None`` when there is no value or it is neither form.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 100:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return min(seconds, MAX_RETRY_AFTER) if not math.isnan(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        # An HTTP-date is always GMT; a date without a zone is read as UTC.
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    try:
        at = moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return MAX_RETRY_AFTER  # a date beyond what the platform can represent
    if not math.isfinite(now):
        return None
    return min(max(0.0, at - now), MAX_RETRY_AFTER)


@dataclass(frozen=True, slots=True)
class _Entry:
    until: float
    response: HttpResponse


class ThrottleMemory:
    """Remembers throttled answers to requests until the time they name has passed.

    Only requests with ``throttle=True`` (token requests) are considered. An
    answer is remembered when it is a 429, or a 5xx with a ``Retry-After``
    header, for the time that header names (``default_retry_after`` when a 429
    names none or names it badly), never longer than ``max_retry_after``. At most
    ``max_entries`` requests are remembered; beyond that the oldest is
    forgotten. A later successful answer to the same request forgets it.

    Not thread-safe: use one memory from one event loop, as the transport does.
    """

    __slots__ = ("_default_retry_after", "_entries", "_max_entries", "_max_retry_after")

    def __init__(
        self,
        *,
        default_retry_after: float = 5.0,
        max_retry_after: float = MAX_RETRY_AFTER,
        max_entries: int = 4096,
    ) -> None:
        if not (math.isfinite(default_retry_after) and default_retry_after >= 0):
            raise ValueError("default_retry_after must be a non-negative number of seconds")
        if not (math.isfinite(max_retry_after) and max_retry_after >= 0):
            raise ValueError("max_retry_after must be a non-negative number of seconds")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._default_retry_after = float(default_retry_after)
        self._max_retry_after = float(max_retry_after)
        self._max_entries = max_entries
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __len__(self) -> int:
        """How many requests are remembered (expired ones included until looked at)."""
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ThrottleMemory(entries={len(self._entries)}, max_entries={self._max_entries})"

    def check(self, request: HttpRequest, now: float) -> HttpResponse | None:
        """Return a replay of the throttled answer still in force for ``request``, or ``None``.

        The replay's ``retry-after`` header holds the seconds that remain
        (rounded up, at least 1).
        """
        if not request.throttle or not self._entries:
            return None
        digest = _digest(request)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        remaining = entry.until - now
        if remaining <= 0:
            del self._entries[digest]
            return None
        headers = dict(entry.response.headers)
        headers["retry-after"] = str(max(1, math.ceil(remaining)))
        return HttpResponse(
            status=entry.response.status, headers=headers, body=entry.response.body, replayed=True
        )

    def record(self, request: HttpRequest, response: HttpResponse, now: float) -> None:
        """Take note of the answer to ``request``: remember it if it throttles, else forget."""
        if not request.throttle:
            return
        status = response.status
        if status < 400:
            if self._entries:
                self._entries.pop(_digest(request), None)
            return
        header = _header(response, "retry-after")
        if not (status == 429 or (status >= 500 and header is not None)):
            return
        seconds = parse_retry_after(header, now)
        if seconds is None:
            # A 429 naming no time, or a time that cannot be read.
            seconds = self._default_retry_after
        seconds = min(seconds, self._max_retry_after)
        digest = _digest(request)
        if seconds <= 0:
            self._entries.pop(digest, None)
            return
        self._entries.pop(digest, None)
        self._entries[digest] = _Entry(until=now + seconds, response=response)
        self._evict(now)

    def clear(self) -> None:
        """Forget every remembered answer."""
        self._entries.clear()

    def _evict(self, now: float) -> None:
        if len(self._entries) <= self._max_entries:
            return
        for digest in [d for d, e in self._entries.items() if e.until <= now]:
            del self._entries[digest]
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def _header(response: HttpResponse, name: str) -> str | None:
    value = response.headers.get(name)
    if value is not None:
        return value
    for key, candidate in response.headers.items():
        if key.lower() == name:
            return candidate
    return None


def _digest(request: HttpRequest) -> bytes:
    """SHA-256 of a canonical, unambiguous encoding of the request's throttle key."""
    method, url, form = request.throttle_key()
    canonical = json.dumps(
        [method, url, [list(pair) for pair in form]],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).digest()
