"""``backup``'s file layer against bare ``pg_dump -Fc`` of the same database, in the same run.

The database is the verify benchmark's (200 tables, 5 M rows Zipf-distributed; ``--quick``: 20 tables, 50 k
rows). Measured: ``take_file_backup`` (what ``recovery-wizard backup --to file`` runs after the API calls:
snapshot export, pg_dump through it, exact row counts of every table in the same snapshot, sha256, fsync,
atomic rename, manifest) against the same pg_dump binary writing ``-Fc`` to a file, alternated, medians.
Goal: within 1.1×.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Context, Figure, median, timed
from bench.verify_scale import _build, _drop, sizes


def _bare_pg_dump(pg_dump: Path, dsn: str, out: Path) -> float:
    began = time.perf_counter()
    subprocess.run([str(pg_dump), "--format=custom", f"--dbname={dsn}", f"--file={out}"], check=True)
    return time.perf_counter() - began


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink()


async def run(ctx: Context) -> list[Figure]:
    from recovery_wizard.pgtools import find_tools
    from recovery_wizard.recovery.backup.dump import take_file_backup
    from recovery_wizard.redact import Secret

    tables, rows, runs = (20, 50_000, 2) if ctx.quick else (200, 5_000_000, 5)
    dbname = f"rwbench_{secrets.token_hex(3)}_backup"
    details: dict[str, Any] = {"tables": tables, "rows": rows}
    tool: list[float] = []
    bare: list[float] = []
    size = 0
    sizes_seen: list[int] = []
    try:
        build_s, _ = await timed(lambda: _build(ctx, dbname, sizes(tables, rows)))
        details["build_s"] = build_s
        dsn = ctx.pg.dsn(dbname)
        version = int(ctx.pg_version.split(".")[0])
        pg_dump = find_tools(version).pg_dump
        with tempfile.TemporaryDirectory(prefix="rwbench-backup-") as tmp:
            directory = Path(tmp)

            async def ours() -> float:
                t, taken = await timed(
                    lambda: take_file_backup(
                        Secret(dsn), directory, project={"id": "bench"}, branch={"id": "b", "name": "bench"}
                    )
                )
                assert sum(taken.manifest.tables.values()) == sum(sizes(tables, rows))
                sizes_seen.append(taken.manifest.size)
                await asyncio.to_thread(_remove, taken.path, Path(str(taken.path) + ".manifest.json"))
                return t

            async def theirs(i: int) -> float:
                out = directory / f"bare-{i}.dump"
                t = await asyncio.to_thread(_bare_pg_dump, pg_dump, dsn, out)
                await asyncio.to_thread(_remove, out)
                return t

            await ours()  # warm-up of both (caches, the server's buffers): not counted
            await theirs(-1)
            for i in range(runs):
                # Alternated and in turn first, so cache warmth and noise fall on both alike.
                if i % 2:
                    bare.append(await theirs(i))
                    tool.append(await ours())
                else:
                    tool.append(await ours())
                    bare.append(await theirs(i))
        size = sizes_seen[-1] if sizes_seen else 0
        details.update(tool_s=tool, bare_s=bare, size=size)
    finally:
        await _drop(ctx, dbname)
        ctx.details["backup"] = details
    tool_s, bare_s = median(tool), median(bare)
    ratio = tool_s / bare_s
    return [
        Figure(
            "backup",
            f"backup --to file (take_file_backup): {tables} tables, {rows:,} rows, {size / 1e6:.1f} MB dump",
            tool_s,
            "s",
            bare_s,
            "bare pg_dump -Fc to a file",
            "≤ 1.1× bare pg_dump",
            ratio <= 1.1,
            f"{ratio:.2f}×; includes exact row counts of every table, sha256, fsync, manifest; median of {runs}",
        )
    ]
