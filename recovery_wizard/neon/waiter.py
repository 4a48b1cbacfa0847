"""Wait for Neon operations to finish.

A mutation answers at once with ``operations[]``; the branch or compute is usable only when each is terminal.
We poll each unfinished operation, starting fast (most finish in a second or two) and slowing to a cap (a
large restore can take minutes), until all are done, one fails, or the deadline passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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
) -> list[Operation]:
    """Poll until every operation is terminal; return their final states in the order given."""
    started = clock()
    latest = list(operations)
    interval = policy.first_interval

    def report() -> None:
        if on_progress is not None:
            on_progress(WaitProgress(tuple(latest), clock() - started))

    _check_failed(latest)
    report()
    while True:
        pending = [i for i, op in enumerate(latest) if not op.terminal]
        if not pending:
            return latest
        remaining = policy.deadline - (clock() - started)
        if remaining <= 0:
            raise OperationTimeoutError([latest[i] for i in pending], clock() - started)
        await sleep(min(interval, remaining))
        fresh = await asyncio.gather(*(client.operation(project_id, latest[i].id) for i in pending))
        for i, op in zip(pending, fresh, strict=True):
            latest[i] = op
        _check_failed(latest)
        report()
        interval = min(interval * policy.growth, policy.max_interval)
