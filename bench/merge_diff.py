"""Benchmark: the merge-back diff (issue 14) against pulling both tables whole over the same connections.

A ``users``-like table (bigint key, email, name, password hash, timestamp, score) of ROWS rows in a "past"
database; the "live" one is a copy (``CREATE DATABASE … TEMPLATE``, as a branch is) in which 1 % of the rows
were deleted and 0.1 % updated, at random places (the worst case: each difference in its own bucket); then
the same damage in two stretches of keys (a migration deleting old rows, a batch job updating a later run). The tool: ``diff_connections`` (hashed buckets, both sides concurrently, keys
fetched only at the leaves). The baseline: ``SELECT *`` of both tables concurrently over the same two
connections, then a dict comparison in Python, which is what a script would do.

Bytes are counted client-side from the results (values, length words and row headers: about what the wire
carried), for the tool as it ran and for the baseline's results after its timing stopped.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from bench.common import Context, Figure, median, timed
from recovery_wizard.recovery.merge.diff import diff_connections
from recovery_wizard.recovery.merge.sqltext import wire_bytes


async def _admin(ctx: Context, sql: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(ctx.pg_dsn, autocommit=True) as admin:
        await admin.execute(sql)


async def _build(ctx: Context, past: str, live: str, rows: int) -> tuple[int, int]:
    import psycopg

    await _admin(ctx, f'CREATE DATABASE "{past}"')
    async with await psycopg.AsyncConnection.connect(ctx.pg.dsn(past), autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, "
            "password_hash text, created_at timestamptz NOT NULL, score int)"
        )
        await conn.execute(
            "INSERT INTO users SELECT g, 'user' || g || '@example.com', 'User number ' || g, "
            "'$2b$10$' || md5(g::text) || md5((g * 7)::text), '2025-01-01'::timestamptz + g * interval '37 s', "
            f"g % 1000 FROM generate_series(1, {rows}) g"
        )
        await conn.execute("ANALYZE users")
    return await _damage(ctx, past, live, rows, clustered=False)


async def _damage(ctx: Context, past: str, live: str, rows: int, *, clustered: bool) -> tuple[int, int]:
    """Make ``live`` a copy of ``past`` with 1 % deleted and 0.1 % updated, at random or in two stretches."""
    import psycopg

    await _admin(ctx, f'DROP DATABASE IF EXISTS "{live}" WITH (FORCE)')
    await _admin(ctx, f'CREATE DATABASE "{live}" TEMPLATE "{past}"')
    deleted, updated = max(1, rows // 100), max(1, rows // 1000)
    async with await psycopg.AsyncConnection.connect(ctx.pg.dsn(live), autocommit=True) as conn:
        if clustered:  # a migration that deleted a stretch of old rows; a batch job that touched a later one
            await conn.execute(
                "DELETE FROM users WHERE id > %s AND id <= %s", (rows // 10, rows // 10 + deleted)
            )
            await conn.execute(
                "UPDATE users SET score = score + 1 WHERE id > %s AND id <= %s",
                (rows // 2, rows // 2 + updated),
            )
            await conn.execute("ANALYZE users")
            return deleted, updated
        await conn.execute(
            "CREATE TEMP TABLE pick AS SELECT id FROM users ORDER BY hashint8(id # 14) LIMIT %s",
            (deleted + updated,),
        )
        await conn.execute(
            "DELETE FROM users WHERE id IN (SELECT id FROM pick ORDER BY id LIMIT %s)", (deleted,)
        )
        await conn.execute(
            "UPDATE users SET score = score + 1 WHERE id IN (SELECT id FROM pick ORDER BY id OFFSET %s)",
            (deleted,),
        )
        await conn.execute("ANALYZE users")
    return deleted, updated


async def _pull(conn: Any) -> Any:
    cur = conn.cursor()
    await cur.execute("SELECT * FROM users")
    rows = await cur.fetchall()
    return cur, rows


async def _naive(past: Any, live: Any) -> tuple[int, Any, Any]:
    (p_cur, p_rows), (l_cur, l_rows) = await asyncio.gather(_pull(past), _pull(live))
    p = {r[0]: r for r in p_rows}
    lv = {r[0]: r for r in l_rows}
    differ = sum(1 for k, r in p.items() if lv.get(k) != r) + sum(1 for k in lv if k not in p)
    return differ, p_cur, l_cur


async def run(ctx: Context) -> list[Figure]:
    import psycopg

    rows, runs = (20_000, 1) if ctx.quick else (1_000_000, 3)
    prefix = f"rwbench_merge_{secrets.token_hex(3)}"
    past_db, live_db = f"{prefix}_past", f"{prefix}_live"
    details: dict[str, Any] = {"rows": rows}
    try:
        build_s, (deleted, updated) = await timed(lambda: _build(ctx, past_db, live_db, rows))
        details.update(build_s=build_s, deleted=deleted, updated=updated)
        past = await psycopg.AsyncConnection.connect(ctx.pg.dsn(past_db), autocommit=True)
        live = await psycopg.AsyncConnection.connect(ctx.pg.dsn(live_db), autocommit=True)
        tool: list[float] = []
        naive: list[float] = []
        try:
            for _ in range(runs):
                t, diff = await timed(lambda: diff_connections(past, live))
                tool.append(t)
                n, (differ, p_cur, l_cur) = await timed(lambda: _naive(past, live))
                naive.append(n)
            found = diff.tables[("public", "users")]
            assert len(found.deleted) == deleted and len(found.changed) == updated, "the diff is wrong"
            assert differ == deleted + updated, "the baseline is wrong"
            tool_bytes = diff.bytes_fetched
            naive_bytes = wire_bytes(p_cur.pgresult) + wire_bytes(l_cur.pgresult)
        finally:
            await past.close()
            await live.close()
        details.update(
            tool_s=tool,
            naive_s=naive,
            tool_bytes=tool_bytes,
            naive_bytes=naive_bytes,
            levels=found.levels,
            buckets=found.buckets_compared,
        )
        # The same damage in two stretches of keys, as a migration deleting old rows would leave it.
        await _damage(ctx, past_db, live_db, rows, clustered=True)
        past = await psycopg.AsyncConnection.connect(ctx.pg.dsn(past_db), autocommit=True)
        live = await psycopg.AsyncConnection.connect(ctx.pg.dsn(live_db), autocommit=True)
        clustered: list[float] = []
        try:
            for _ in range(runs):
                t, cdiff = await timed(lambda: diff_connections(past, live))
                clustered.append(t)
            c_naive, _ = await timed(lambda: _naive(past, live))
            cfound = cdiff.tables[("public", "users")]
            assert len(cfound.deleted) == deleted and len(cfound.changed) == updated, "the diff is wrong"
        finally:
            await past.close()
            await live.close()
        details.update(clustered_s=clustered, clustered_naive_s=c_naive, clustered_bytes=cdiff.bytes_fetched)
    finally:
        await asyncio.gather(
            _admin(ctx, f'DROP DATABASE IF EXISTS "{live_db}" WITH (FORCE)'),
            _admin(ctx, f'DROP DATABASE IF EXISTS "{past_db}" WITH (FORCE)'),
        )
        ctx.details["merge_diff"] = details
    tool_s, naive_s = median(tool), median(naive)
    one_table = naive_bytes / 2
    scale = f"{rows:,} rows, {deleted:,} deleted and {updated:,} updated at random"
    clustered_s = median(clustered)
    cluster = f"{rows:,} rows, {deleted:,} deleted and {updated:,} updated in two stretches of keys"
    return [
        Figure(
            "merge_diff",
            f"merge-back diff: {cluster}",
            clustered_s,
            "s",
            c_naive,
            "SELECT * of both tables + compare (one run)",
            "≥ 10× faster",
            c_naive / clustered_s >= 10,
            f"{c_naive / clustered_s:.1f}× faster; {cfound.levels} levels ({cfound.layout}); median of {runs}",
        ),
        Figure(
            "merge_diff",
            f"bytes moved by the diff: {cluster}",
            cdiff.bytes_fetched / 1e6,
            "MB",
            naive_bytes / 1e6,
            "both tables whole",
            "≤ 1 % of the table",
            cdiff.bytes_fetched <= one_table / 100,
            f"{100 * cdiff.bytes_fetched / one_table:.2f} % of one table's bytes",
        ),
        Figure(
            "merge_diff",
            f"merge-back diff, both sides concurrently: {scale}",
            tool_s,
            "s",
            naive_s,
            "SELECT * of both tables + compare",
            "≥ 10× faster",
            naive_s / tool_s >= 10,
            f"{naive_s / tool_s:.1f}× faster; {found.levels} levels ({found.layout}), {found.buckets_compared:,} buckets; "
            f"median of {runs}; build {build_s:.1f} s",
        ),
        Figure(
            "merge_diff",
            f"bytes moved by the diff: {scale}",
            tool_bytes / 1e6,
            "MB",
            naive_bytes / 1e6,
            "both tables whole",
            "≤ 1 % of the table",
            tool_bytes <= one_table / 100,
            f"{100 * tool_bytes / one_table:.2f} % of one table's bytes ({one_table / 1e6:.1f} MB), "
            f"{100 * tool_bytes / naive_bytes:.2f} % of the baseline's",
        ),
    ]
