"""Wait for Neon operations to finish.

A mutation answers at once with ``operations[]``; the branch or compute is usable only when each is terminal.
We poll each unfinished operation until all are done, one fails, or the deadline passes.

When is a poll worth making? The client remembers how long this project's finished operations of each
``action`` took (:class:`Durations`, fed by every operation it reads: the pre-flight's list, each poll). If
every operation still running has such a history, the first poll waits for the soonest typical end (the
median of that action's recent durations): a 1 s ``create_timeline`` is seen finished by one poll at ~1 s,
not by the third of a curve (0.25, 0.58, 1.0, 1.55 s). Without a history, or once an operation is past its
typical end, polling follows the curve: fast at first, slowing to a cap (a large restore can take minutes).
"""

from __future__ import annotations

import asyncio
import statistics
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from recovery_wizard.neon.errors import OperationFailedError, OperationTimeoutError
from recovery_wizard.neon.models import Operation

if TYPE_CHECKING:
    from recovery_wizard.neon.client import NeonClient


@dataclass(frozen=True)
class WaitPolicy:
    # Polls at 0.25, 0.58, 1.0, 1.55, 2.3, 3.2 s…: an operation that ends at age t is seen by t × 1.3 + 0.25 s
    # at the latest (at 0.5 s ×1.5 it was t × 1.5 + 0.5 s). A 10 s operation costs ten polls, a long one one
    # poll per 5 s: well inside Neon's rate limit.
    first_interval: float = 0.25
    max_interval: float = 5.0
    growth: float = 1.3
    deadline: float = 900.0


# How many recent durations of an action are kept per project: enough for a stable median, few enough to
# follow a project that got slower (a bigger branch takes longer to create).
RECENT = 20


@dataclass
class Durations:
    """How long each project's finished operations took, by action: what the client has seen."""

    recent: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    def record(self, operations: Iterable[Operation]) -> None:
        for op in operations:
            if not op.done or op.total_duration_ms <= 0 or op.id in self._seen:
                continue
            self._seen.add(op.id)
            key = (op.project_id, op.action)
            self.recent.setdefault(key, deque(maxlen=RECENT)).append(op.total_duration_ms / 1000)

    def typical(self, project_id: str, action: str) -> float | None:
        """The median of this action's recent durations in the project, in seconds; None: none seen."""
        found = self.recent.get((project_id, action))
        return statistics.median(found) if found else None


@dataclass(frozen=True)
class WaitProgress:
    """A snapshot for progress displays: every operation's latest state and the time spent so far."""

    operations: tuple[Operation, ...]
    elapsed: float

    @property
    def total(self) -> int:
        return len(self.operations)

    @property
    def finished(self) -> int:
        return sum(1 for op in self.operations if op.terminal)

    @property
    def done(self) -> bool:
        return self.finished == self.total


def _check_failed(operations: Sequence[Operation]) -> None:
    for op in operations:
        if op.failed:
            raise OperationFailedError(op)


async def wait_for_operations(
    client: NeonClient,
    project_id: str,
    operations: Sequence[Operation],
    *,
    policy: WaitPolicy,
    on_progress: Callable[[WaitProgress], None] | None,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
    durations: Durations | None = None,
) -> list[Operation]:
    """Poll until every operation is terminal; return their final states in the order given.

    ``durations``: the project's history (see the module's docstring); the operations given are taken as
    just started (they come from the answer to the request that made them).
    """
    started = clock()
    latest = list(operations)
    interval = policy.first_interval

    def typical_end(op: Operation) -> float | None:
        return durations.typical(project_id, op.action) if durations is not None else None

    def report() -> None:
        if on_progress is not None:
            on_progress(WaitProgress(tuple(latest), clock() - started))

    _check_failed(latest)
    report()
    while True:
        pending = [i for i, op in enumerate(latest) if not op.terminal]
        if not pending:
            return latest
        elapsed = clock() - started
        remaining = policy.deadline - elapsed
        if remaining <= 0:
            raise OperationTimeoutError([latest[i] for i in pending], elapsed)
        ends = [typical_end(latest[i]) for i in pending]
        known = [end for end in ends if end is not None]
        on_curve = len(known) < len(ends) or min(known) <= elapsed
        # Every one has a typical end still ahead: nothing is likely to be done before the soonest of them.
        # (Capped like the curve: a history of 10-minute restores must not leave progress unread for 10 minutes.)
        wait = interval if on_curve else min(min(known) - elapsed, policy.max_interval)
        await sleep(min(wait, remaining))
        fresh = await asyncio.gather(*(client.operation(project_id, latest[i].id) for i in pending))
        for i, op in zip(pending, fresh, strict=True):
            latest[i] = op
        _check_failed(latest)
        report()
        if on_curve:
            interval = min(interval * policy.growth, policy.max_interval)
