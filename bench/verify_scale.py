"""Benchmark 3, verification at scale: ``verify.measure`` on two databases against naive per-table counts.

Two databases on the benchmark's PostgreSQL, "damaged" and "restored", with TABLES tables each and ROWS rows
over both (half each), sized by a Zipf-like law so a few tables are big and most are small, as in real apps.
The damaged side lost a tenth of the rows of every tenth table. Tables are built with one
``CREATE TABLE … AS SELECT … generate_series`` each (fast: no per-row client work), then ANALYZEd so the
planner's estimates, which ``measure`` reads first, are current.

The tool measures both sides at once, as the runner does (``asyncio.gather``). The baseline is what a person
would script: ``SELECT count(*)`` per table, one after another, damaged side then restored side. Note the
tool counts exactly only the tables estimated below ``exact_below`` (200,000 rows) and keeps the estimate for
bigger ones; the baseline counts every table exactly. Both run over loopback, where a round trip is ~0.1 ms:
the tool's saving in round trips would be larger against a remote Neon compute.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from bench.common import Context, Figure, median, timed
from recovery_wizard.recovery import verify
from recovery_wizard.redact import Secret


def sizes(tables: int, rows: int) -> list[int]:
    """Zipf-like (s = 1.1) table sizes summing to ``rows``, every table at least one row."""
    weights = [1 / (i + 1) ** 1.1 for i in range(tables)]
    total = sum(weights)
    return [max(1, round(rows * w / total)) for w in weights]


async def _build(ctx: Context, dbname: str, table_sizes: list[int]) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(ctx.pg_dsn, autocommit=True) as admin:
        await admin.execute(f'CREATE DATABASE "{dbname}"')
    async with await psycopg.AsyncConnection.connect(ctx.pg.dsn(dbname), autocommit=True) as conn:
        for i, n in enumerate(table_sizes):
            await conn.execute(f"CREATE TABLE t_{i} AS SELECT g FROM generate_series(1, {n}) g")
        await conn.execute("ANALYZE")


async def _drop(ctx: Context, dbname: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(ctx.pg_dsn, autocommit=True) as admin:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


async def _naive(ctx: Context, dbname: str, tables: int) -> int:
    import psycopg

    total = 0
    async with await psycopg.AsyncConnection.connect(ctx.pg.dsn(dbname), autocommit=True) as conn:
        for i in range(tables):
            row = await (await conn.execute(f"SELECT count(*) FROM t_{i}")).fetchone()
            assert row is not None
            total += int(row[0])
    return total


async def run(ctx: Context) -> list[Figure]:
    tables, rows, runs = (20, 50_000, 2) if ctx.quick else (200, 5_000_000, 5)
    restored_sizes = sizes(tables, rows // 2)
    damaged_sizes = [n - n // 10 if i % 10 == 0 else n for i, n in enumerate(restored_sizes)]
    prefix = f"rwbench_{secrets.token_hex(3)}"
    damaged, restored = f"{prefix}_damaged", f"{prefix}_restored"
    details: dict[str, Any] = {"tables": tables, "rows": rows, "largest_table": restored_sizes[0]}
    try:
        build_s, _ = await timed(
            lambda: asyncio.gather(_build(ctx, damaged, damaged_sizes), _build(ctx, restored, restored_sizes))
        )
        details["build_s"] = build_s
        urls = (Secret(ctx.pg.dsn(damaged)), Secret(ctx.pg.dsn(restored)))
        tool: list[float] = []
        naive: list[float] = []
        measured: Any = None
        for _ in range(runs):
            # Alternated, so cache warmth and background noise fall on both alike.
            t, measured = await timed(lambda: asyncio.gather(*(verify.measure(u, []) for u in urls)))
            tool.append(t)
            n, _ = await timed(lambda: asyncio.gather(_naive(ctx, damaged, tables)))
            m, _ = await timed(lambda: asyncio.gather(_naive(ctx, restored, tables)))
            naive.append(n + m)
        comparison = verify.compare(measured[0], measured[1], [])
        exact = sum(1 for t in measured[1].tables.values() if t.exact)
        details.update(tool_s=tool, naive_s=naive, exact_tables=exact, changed=len(comparison.tables))
    finally:
        await asyncio.gather(_drop(ctx, damaged), _drop(ctx, restored))
        ctx.details["verify"] = details
    tool_s, naive_s = median(tool), median(naive)
    speedup = naive_s / tool_s
    scale = f"{tables} tables × 2 databases, {rows:,} rows in all (largest {restored_sizes[0]:,})"
    return [
        Figure(
            "verify",
            f"verify.measure on both sides, concurrently: {scale}",
            tool_s,
            "s",
            naive_s,
            "sequential count(*) per table per side",
            "< 2 s and ≥ 5× faster",
            tool_s < 2 and speedup >= 5,
            f"{speedup:.1f}× faster; {exact}/{tables} tables counted exactly per side, the rest estimated; "
            f"median of {runs}; build {build_s:.1f} s",
        )
    ]
