"""Merge back: bring back only the rows lost since a moment, and keep every write made since (issue 14).

The past is a materialized source branch (read-only here); the live branch is the damaged one the app
still points at. The strategy calls, in order:

    plan = await plan_merge(past_url, live_url, MergeOptions(...))   # read-only on both sides
    print(plan.render())                                             # --dry-run / review; plan.to_dict()
    await check_rights(live_url, plan)                               # pre-flight, before any write
    result = await apply_merge(live_url, plan, run_id)               # one transaction; idempotent per run
    check = await verify_merge(live_url, plan)                       # every row back, every new row kept

and, on resume, ``await merged(live_url, run_id)``: the :class:`MergeResult` when that run's merge committed
(the ledger row written in the same transaction), else None (nothing was written: plan and apply again).

Modules: ``catalog`` (what the tables look like), ``diff`` (hashed buckets, both sides at once),
``conflicts`` and ``plan`` (what would be written and what the live branch would refuse), ``apply`` (the
one transaction and its ledger), ``verifyafter``. psycopg is imported only when a function runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from recovery_wizard.recovery.merge.apply import MergeResult
from recovery_wizard.recovery.merge.diff import DataDiff, SkippedTable, TableDiff
from recovery_wizard.recovery.merge.errors import MergeChangedError, MergeError, MergeRefusedError
from recovery_wizard.recovery.merge.plan import RULES, MergeOptions, MergePlan, TablePlan, parse_table
from recovery_wizard.recovery.merge.verifyafter import MergeCheck

if TYPE_CHECKING:
    import psycopg

    from recovery_wizard.redact import Secret

__all__ = [
    "RULES",
    "DataDiff",
    "MergeChangedError",
    "MergeCheck",
    "MergeError",
    "MergeOptions",
    "MergePlan",
    "MergeRefusedError",
    "MergeResult",
    "SkippedTable",
    "TableDiff",
    "TablePlan",
    "apply_merge",
    "check_rights",
    "merged",
    "parse_table",
    "plan_merge",
    "verify_merge",
]


@contextlib.asynccontextmanager
async def _connected(
    url: Secret, role: str, connect_timeout: float
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    from recovery_wizard.recovery.merge.sqltext import session_sql
    from recovery_wizard.recovery.verify import _connect

    conn = await _connect(url, connect_timeout, f"recovery-wizard merge ({role})")
    try:
        for statement in session_sql():
            await conn.execute(statement)
        yield conn
    finally:
        await conn.close()


async def plan_merge(
    past_url: Secret, live_url: Secret, options: MergeOptions | None = None, *, connect_timeout: float = 30.0
) -> MergePlan:
    """Diff the past and live branches and make the plan the user reviews; writes nothing anywhere."""
    import asyncio

    from recovery_wizard.recovery.merge.diff import diff_connections
    from recovery_wizard.recovery.merge.plan import build_plan, parse_table

    options = options or MergeOptions()
    async with (
        _connected(past_url, "past", connect_timeout) as past,
        _connected(live_url, "live", connect_timeout) as live,
    ):
        await asyncio.gather(
            past.execute("SET default_transaction_read_only = on"),
            live.execute("SET default_transaction_read_only = on"),
        )
        only = {parse_table(n) for n in options.tables} if options.tables is not None else None
        diff = await diff_connections(past, live, tables=only)
        return await build_plan(diff, past, live, options)


async def check_rights(live_url: Secret, plan: MergePlan, *, connect_timeout: float = 30.0) -> None:
    """Pre-flight: raises :class:`MergeRefusedError` naming the table the role may not write."""
    from recovery_wizard.recovery.merge.apply import preflight

    async with _connected(live_url, "live", connect_timeout) as live:
        await preflight(live, plan)


async def apply_merge(
    live_url: Secret,
    plan: MergePlan,
    run_id: str,
    *,
    before_commit: Callable[[], Awaitable[None]] | None = None,
    connect_timeout: float = 30.0,
) -> MergeResult:
    """Write the plan in one transaction; a second call for the same run returns the first's result."""
    from recovery_wizard.recovery.merge.apply import apply_plan

    async with _connected(live_url, "live", connect_timeout) as live:
        return await apply_plan(live, plan, run_id, before_commit=before_commit)


async def merged(live_url: Secret, run_id: str, *, connect_timeout: float = 30.0) -> MergeResult | None:
    """Did ``run_id``'s merge commit? (The ledger row is written in the merge's own transaction.)"""
    from recovery_wizard.recovery.merge.apply import read_ledger

    async with _connected(live_url, "live", connect_timeout) as live:
        return await read_ledger(live, run_id)


async def verify_merge(live_url: Secret, plan: MergePlan, *, connect_timeout: float = 30.0) -> MergeCheck:
    """Every re-inserted row is in live and every row added since is still there."""
    from recovery_wizard.recovery.merge.verifyafter import verify_after

    async with _connected(live_url, "live", connect_timeout) as live:
        return await verify_after(live, plan)
