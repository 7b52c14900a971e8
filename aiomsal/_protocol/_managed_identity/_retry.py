"""How long to wait before asking a managed identity endpoint again (sans-I/O).

IMDS gets exponential backoff on 404 (updating, or an identity not yet
visible), 429, 5xx and failed connections; a 410 (IMDS upgrading, back
"within 70 seconds") is retried every 10 s for up to 70 s. A ``Retry-After``
the endpoint sends wins (bounded). Other sources are retried once by the
transport. These are waits on the network: real seconds, not the injected
clock's token time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..._errors import MsalConfigurationError

__all__ = ["ImdsRetryPolicy"]

_RETRYABLE = frozenset({404, 408, 410, 429})


@dataclass(frozen=True, slots=True)
class ImdsRetryPolicy:
    """The retry schedule of IMDS token requests.

    ``max_retries`` retries with delays ``first_delay * 2**n`` (capped at
    ``max_delay``) for 404/408/429/5xx and connection failures; 410 is retried
    every ``gone_delay`` seconds until ``gone_window`` seconds have passed since
    the first 410. All of them are real seconds, and a call's ``timeout=``
    bounds them (:meth:`longest_backoff` is what the default allows for).
    """

    max_retries: int = 5
    first_delay: float = 1.0
    max_delay: float = 60.0
    gone_delay: float = 10.0
    gone_window: float = 70.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or not (
            0 <= self.max_retries <= 1000
        ):
            raise MsalConfigurationError("max_retries must be an integer from 0 to 1000")
        for name in ("first_delay", "max_delay", "gone_delay", "gone_window"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value < math.inf
            ):
                raise MsalConfigurationError(f"{name} must be a non-negative number of seconds")

    def longest_backoff(self) -> float:
        """Seconds this schedule may wait in all when no ``Retry-After`` says otherwise.

        The longer of the exponential delays (1 + 2 + 4 + 8 + 16 = 31 s by
        default) and the 410 window (70 s by default).
        """
        exponential = sum(self._exponential(n) for n in range(self.max_retries))
        return max(exponential, self.gone_window)

    def _exponential(self, retry: int) -> float:
        # 2**64 is past any useful delay: the cap applies long before the float overflows.
        return float(min(self.max_delay, self.first_delay * 2.0 ** min(retry, 64)))

    @staticmethod
    def retryable(status: int | None) -> bool:
        """Whether an answer with ``status`` (None: no answer) is worth asking again."""
        return status is None or status in _RETRYABLE or status >= 500

    def delay(
        self,
        retry: int,
        status: int | None,
        *,
        retry_after: float | None = None,
        gone_for: float | None = None,
    ) -> float | None:
        """Seconds to wait before retry number ``retry`` (0-based), or None to give up.

        ``gone_for``: seconds since the first 410 of this request, if any.
        """
        if not self.retryable(status):
            return None
        if status == 410 or gone_for is not None:
            elapsed = gone_for or 0.0
            wait = self.gone_delay if retry_after is None else min(retry_after, self.max_delay)
            return wait if elapsed + wait <= self.gone_window else None
        if retry >= self.max_retries:
            return None
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        return self._exponential(retry)
