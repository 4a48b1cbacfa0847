"""When and how long to wait before asking Neon again.

The policy only computes delays; ``transport.py`` decides what is safe to resend (see its docstring).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Statuses that mean "the request was not accepted, ask again", safe for every method: 423 (another
# operation holds the project), 429 (rate limit) and 503 (Neon says so in its spec).
RETRY_ANY_METHOD = frozenset({423, 429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, ``Retry-After`` honoured up to a cap, an overall deadline."""

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 20.0
    retry_after_cap: float = 60.0
    deadline: float = 180.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base·2^(attempt-1))]."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(attempt - 1, 0)))
        return rng.uniform(0, ceiling)

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        return self.backoff(attempt, rng)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
