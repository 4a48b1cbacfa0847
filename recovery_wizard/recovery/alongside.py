"""A read started beside the work that needs it later, and never left running when that work fails.

The runbook overlaps a request or two with what it waits on anyway (the record's timeline while the data is
measured, the pooled URI with verify's, the snapshot list with the project): one round trip fewer each. If
the work fails, the read beside it is cancelled and waited for before the error goes on: otherwise it would
outlive the step (and the client it uses), and its own late failure would print as an unretrieved task's
traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

T = TypeVar("T")


@contextlib.asynccontextmanager
async def alongside(work: Awaitable[T]) -> AsyncIterator[asyncio.Future[T]]:
    """Start ``work`` now; the block awaits the future it yields when it needs the answer. If the block
    fails, ``work`` is cancelled and waited for, then the block's error goes on."""
    task = asyncio.ensure_future(work)
    try:
        yield task
    except BaseException:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
