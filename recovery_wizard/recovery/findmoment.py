"""Find the last good moment: bisect a canary query over the branch's history.

A canary is a read-only query that is true while the data is healthy (``SELECT count(*) >= 10 FROM "User"``).
Between a moment where it holds (``good``, by default the oldest restorable moment) and one where it does not
(``bad``, by default now), there is a last moment where it still holds: the restore point. Bisection finds it
to ``precision`` in ceil(log2(window / precision)) probes.

The two ends must be checked too (a canary already false at the good end, or still true at the bad end,
means the question is wrong, and the search refuses to answer it). Those two probes run at the same time as
the first midpoint, so the search costs at most ceil(log2(window / precision)) + 2 probes and about
ceil(log2(window / precision)) probe round trips of wall time. Each probe looks at the past without
restoring (peek.py); every probe is recorded in the run's journal.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from recovery_wizard.recovery.outcome import UsageError
from recovery_wizard.recovery.peek import Lens, PeekError, peek
from recovery_wizard.recovery.sqlguard import require_read_only
from recovery_wizard.recovery.verify import truthy

# Stay this far inside the window's old edge: it moves on while the search runs.
EDGE_MARGIN = timedelta(minutes=2)


@dataclass(frozen=True)
class Probe:
    at: datetime
    holds: bool | None  # None: the probe failed (error)
    value: str | None
    error: str | None
    seconds: float
    lens: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "holds": self.holds,
            "value": self.value,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "lens": self.lens,
        }


@dataclass
class MomentFound:
    last_good: datetime
    first_bad: datetime
    probes: list[Probe] = field(default_factory=list)
    budget: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_good": self.last_good,
            "first_bad": self.first_bad,
            "precision_seconds": (self.first_bad - self.last_good).total_seconds(),
            "probes": [p.to_dict() for p in self.probes],
            "probe_count": len(self.probes),
            "probe_budget": self.budget,
            "seconds": round(self.seconds, 3),
        }


def probe_budget(good: datetime, bad: datetime, precision: timedelta) -> int:
    steps = max((bad - good) / precision, 1.0)
    return math.ceil(math.log2(steps)) + 2


async def probe(lens: Lens, canary: str, at: datetime) -> Probe:
    began = time.perf_counter()
    try:
        result = await peek(lens, at, canary)
    except PeekError as exc:
        return Probe(at, None, None, str(exc), time.perf_counter() - began, "error")
    raw = result.first_value()
    value = None if raw is None else str(raw)  # psycopg gives bool/int/…; the verdict reads text
    return Probe(at, truthy(value), value, None, time.perf_counter() - began, result.lens)


async def together(*probes: Coroutine[Any, Any, Probe]) -> list[Probe]:
    """Run ``probes`` at once. If one fails (or we are cancelled), stop the others and let them clean up
    (delete their branches) before passing the error on: ``asyncio.gather`` alone would leave them running."""
    tasks = [asyncio.ensure_future(p) for p in probes]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def find_moment(
    lens: Lens,
    canary: str,
    *,
    good: datetime,
    bad: datetime,
    precision: timedelta = timedelta(seconds=1),
    on_probe: Callable[[Probe], None] | None = None,
) -> MomentFound:
    """The latest moment in [good, bad) at which ``canary`` holds, to within ``precision``."""
    require_read_only(canary, what="canary")
    if precision <= timedelta(0):
        raise UsageError("--precision must be positive.")
    if good >= bad:
        raise UsageError(
            f"The good moment ({good:%Y-%m-%d %H:%M:%S} UTC) must come before the bad one ({bad:%Y-%m-%d %H:%M:%S} UTC)."
        )
    began = time.perf_counter()
    found = MomentFound(good, bad, budget=probe_budget(good, bad, precision))

    def record(p: Probe) -> Probe:
        found.probes.append(p)
        if on_probe is not None:
            on_probe(p)
        return p

    async def check(at: datetime) -> Probe:
        result = record(await probe(lens, canary, at))
        if result.holds is None:
            raise PeekError(f"The probe at {at:%Y-%m-%d %H:%M:%S} UTC failed: {result.error}")
        return result

    lo, hi = good, bad
    mid = lo + (hi - lo) / 2
    # The two ends and the first midpoint at once: the ends validate the question, the midpoint starts the search.
    at_good, at_bad, at_mid = await together(check(lo), check(hi), check(mid))
    if not at_good.holds:
        raise UsageError(
            f"The canary is already false at the good end ({lo:%Y-%m-%d %H:%M:%S} UTC, value {at_good.value}).",
            hint="Pass an earlier --good moment, or check the canary: it must be true while the data is healthy.",
        )
    if at_bad.holds:
        raise UsageError(
            f"The canary still holds at the bad end ({hi:%Y-%m-%d %H:%M:%S} UTC, value {at_bad.value}): "
            "by this canary the data is healthy there.",
            hint="Pass a later --bad moment, or a canary that fails on the damaged data.",
        )
    if at_mid.holds:
        lo = mid
    else:
        hi = mid
    while hi - lo > precision:
        mid = lo + (hi - lo) / 2
        if (await check(mid)).holds:
            lo = mid
        else:
            hi = mid
    found.last_good, found.first_bad = lo, hi
    found.seconds = time.perf_counter() - began
    return found
