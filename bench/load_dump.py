"""Benchmark: loading a 1 M-row ``pg_dump -Fc`` with the backup-file loader vs bare ``pg_restore``.

Both load the same file into a fresh database on the same server with the same pg_restore; the loader adds
``--single-transaction --clean --if-exists --no-owner --no-acl --verbose``, the progress reader and the
server-version probe. Goal: within 1.2× of bare pg_restore.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import Context, Figure, median


def _conninfo(ctx: Context, db: str) -> tuple[str, dict[str, str]]:
    import os

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(ctx.pg.dsn(db))
    password = params.pop("password", None)
    env = {**os.environ, **({"PGPASSWORD": str(password)} if password else {})}
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env


async def _sql(ctx: Context, db: str, sql: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(ctx.pg.dsn(db), autocommit=True) as conn:
        await conn.execute(sql.encode())


async def run(ctx: Context) -> list[Figure]:
    from recovery_wizard.pgtools import PgTools, embedded_bin_dir, find_tools
    from recovery_wizard.recovery.files import detect
    from recovery_wizard.recovery.files.load import load
    from recovery_wizard.redact import Secret

    rows, runs = (50_000, 1) if ctx.quick else (1_000_000, 3)
    tools = find_tools(ctx.pg.major)
    source = f"bench_load_{uuid.uuid4().hex[:8]}"
    made = [source]
    await _sql(ctx, "postgres", f'CREATE DATABASE "{source}"')
    try:
        await _sql(
            ctx,
            source,
            "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL);"
            f"INSERT INTO users SELECT g, 'user' || g || '@example.test', now() - g * interval '1 minute' "
            f"FROM generate_series(1, {rows}) g;",
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "users.dump"
            conninfo, env = _conninfo(ctx, source)
            await asyncio.to_thread(
                subprocess.run,
                [str(tools.pg_dump), "-Fc", "-f", str(path), f"--dbname={conninfo}"],
                check=True,
                env=env,
            )
            info = detect.detect(path)
            ours: list[float] = []
            bare: list[float] = []
            piped: list[float] = []
            # pg_restore 17+ into an older server goes through psql (see load.py): measured when it applies.
            newer = PgTools(embedded_bin_dir(), 18) if ctx.pg.major < 17 else None
            variants = ("bare", "ours", "piped") if newer else ("bare", "ours")
            for _ in range(runs):
                for which in variants:
                    db = f"bench_load_{uuid.uuid4().hex[:8]}"
                    made.append(db)
                    await _sql(ctx, "postgres", f'CREATE DATABASE "{db}"')
                    began = time.perf_counter()
                    if which == "bare":
                        conninfo, env = _conninfo(ctx, db)
                        await asyncio.to_thread(
                            subprocess.run,
                            [str(tools.pg_restore), f"--dbname={conninfo}", str(path)],
                            check=True,
                            env=env,
                        )
                        bare.append(time.perf_counter() - began)
                    elif which == "ours":
                        await load(path, info, Secret(ctx.pg.dsn(db)), tools=tools)
                        ours.append(time.perf_counter() - began)
                    else:
                        await load(path, info, Secret(ctx.pg.dsn(db)), tools=newer)
                        piped.append(time.perf_counter() - began)
    finally:
        for db in made:
            await _sql(ctx, "postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    value, baseline = median(ours), median(bare)
    ctx.details["load_dump"] = {
        "rows": rows,
        "ours_s": ours,
        "bare_s": bare,
        "piped_s": piped,
        "pg_restore_major": tools.major,
    }
    figures = [
        Figure(
            "load_dump",
            f"load a {rows:,}-row pg_dump -Fc (single transaction)",
            value,
            "s",
            baseline,
            "bare pg_restore into a fresh database",
            "≤ 1.2× bare",
            value <= 1.2 * baseline,
            f"pg_restore {tools.major}; median of {runs}",
        )
    ]
    if piped:
        figures.append(
            Figure(
                "load_dump",
                f"same, pg_restore 18 piped to psql -1 into PostgreSQL {ctx.pg.major}",
                median(piped),
                "s",
                baseline,
                "bare pg_restore into a fresh database",
                "≤ 1.2× bare",
                median(piped) <= 1.2 * baseline,
                f"the path for a server older than the newest pg_restore; median of {runs}",
            )
        )
    return figures
