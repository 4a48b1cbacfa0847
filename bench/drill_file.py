"""Benchmark (issue 12): ``drill --yes --json --from file:latest`` of a sizable dump vs bare ``pg_restore``.

The homecheff sandbox's main branch gets a ``bench_rows`` table (1 M rows; ``--quick``: 50 k), then
``recovery-wizard backup --to file`` writes the dump with its manifest. Measured, alternated, medians:

- ours: the whole drill as a subprocess (plan, examine and sha256 the file, branch of main at head, load in
  one transaction, count on both sides and against the manifest, report, delete the branch, proof);
- baseline: the same pg_restore binary loading the same file into a fresh database on the same server
  (``--no-owner --no-acl``, as any by-hand restore of a Neon dump needs).

Goal: within 1.2×. The sandbox makes a branch by copying the parent database (Neon's is copy-on-write and
takes no time whatever the size), so the drill here pays for a copy of the 1 M rows that a real one does
not: the ratio is an upper bound.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Context, Figure, median, python_env
from bench.sandboxes import main_branch_uris, make_app_dir, set_nodelay


async def _sql(dsn: str, sql: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.encode())


async def _cli(app: Path, env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recovery_wizard",
        *args,
        cwd=app,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return wall, json.loads(out) if out.strip() else {}


def _bare_restore(pg_restore: Path, dsn: str, path: Path) -> float:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    env = {**python_env(), **({"PGPASSWORD": str(password)} if password else {})}
    conninfo = make_conninfo(**{k: str(v) for k, v in params.items()})
    began = time.perf_counter()
    subprocess.run(
        [str(pg_restore), "--no-owner", "--no-acl", f"--dbname={conninfo}", str(path)],
        check=True,
        env=env,
        capture_output=True,
    )
    return time.perf_counter() - began


def _phases(app: Path, run_id: str, wall: float) -> dict[str, float]:
    """Where a drill's time went, from its journal's timestamps (start-up and plan: before the first record)."""
    from datetime import datetime

    lines = (app / ".recovery-wizard" / "runs" / run_id / "journal.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    at = {}
    for r in records:
        at.setdefault(f"{r['event']}:{r['step']}", datetime.fromisoformat(r["at"].replace("Z", "+00:00")))
    first, last = at["start:None"], at["end:None"]

    def span(a: str, b: str) -> float:
        return (at[b] - at[a]).total_seconds()

    return {
        "startup+plan": wall - (last - first).total_seconds(),
        "branch": span("start:None", "begin:load"),
        "load": span("begin:load", "done:load"),
        "verify": span("done:load", "done:verify"),
        "cleanup": span("done:verify", "done:cleanup"),
    }


async def run(ctx: Context) -> list[Figure]:
    from recovery_wizard.pgtools import find_tools
    from recovery_wizard.recovery.backup.backupdir import latest_backup
    from recovery_wizard.sandbox.service import Sandbox

    rows, runs = (50_000, 1) if ctx.quick else (1_000_000, 3)
    base = Path(tempfile.mkdtemp(prefix="rw-bench-drill-file-"))
    ours: list[float] = []
    bare: list[float] = []
    made: list[str] = []
    phases: list[dict[str, float]] = []
    details: dict[str, Any] = {"rows": rows, "runs": runs}
    async with Sandbox(pg_dsn=ctx.pg_dsn, operation_seconds=0.05, seed=3) as sandbox:
        url = await sandbox.serve()
        set_nodelay(sandbox, True)
        _, pooled, direct = await main_branch_uris(sandbox, url)
        await _sql(
            direct,
            "CREATE TABLE bench_rows (id bigint PRIMARY KEY, email text NOT NULL, at timestamptz NOT NULL);"
            f"INSERT INTO bench_rows SELECT g, 'user' || g || '@example.test', now() - g * interval '1 minute' "
            f"FROM generate_series(1, {rows}) g;",
        )
        app = make_app_dir(base / "app", pooled, direct)
        env = python_env()
        env.update(
            NEON_API_URL=url,
            NEON_API_KEY=sandbox.api_key.reveal(),
            NEON_PROJECT_ID=sandbox.project_id,
            NO_COLOR="1",
        )
        details["backup_s"], _ = await _cli(app, env, "backup", "--to", "file", "--json")
        found = latest_backup(app / "backups")
        assert found is not None
        details["dump_bytes"] = found.manifest.size
        tools = find_tools(ctx.pg.major)
        admin = ctx.pg.dsn("postgres")
        try:
            for i in range(runs):
                for which in ("bare", "ours") if i % 2 == 0 else ("ours", "bare"):
                    if which == "ours":
                        wall, out = await _cli(
                            app, env, "drill", "--yes", "--json", "--new", "--from", "file:latest"
                        )
                        assert out["status"] == "done" and out["deleted"], out
                        ours.append(wall)
                        # The sandbox completes the deleted branch's history in the background (a copy of
                        # its rows a real Neon never makes): let it end before the next run is timed.
                        await sandbox.engine.retired()
                        phases.append(_phases(app, str(out["run_id"]), wall))
                    else:
                        db = f"bench_drill_{secrets.token_hex(4)}"
                        made.append(db)
                        await _sql(admin, f'CREATE DATABASE "{db}"')
                        bare.append(
                            await asyncio.to_thread(
                                _bare_restore, tools.pg_restore, ctx.pg.dsn(db), found.path
                            )
                        )
        finally:
            for db in made:
                await _sql(admin, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    value, baseline = median(ours), median(bare)
    details.update(ours_s=ours, bare_s=bare, phases=phases)
    split = {k: median([p[k] for p in phases]) for k in phases[0]} if phases else {}
    ctx.details["drill_file"] = details
    note = (
        f"median of {runs}; dump {details['dump_bytes'] / 1e6:.1f} MB; includes the sandbox copying main "
        "for the branch (Neon: copy-on-write, no time) and the process start"
    )
    if split:
        note += "; phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in split.items())
    return [
        Figure(
            "drill_file",
            f"drill --from file:latest, {rows:,}-row dump (whole run, subprocess)",
            value,
            "s",
            baseline,
            "bare pg_restore into a fresh database",
            "≤ 1.2× bare",
            value <= 1.2 * baseline,
            note,
        ),
        Figure(
            "drill_file",
            "same, the load phase alone (pg_restore in one transaction into the drill branch)",
            split.get("load", value),
            "s",
            baseline,
            "bare pg_restore into a fresh database",
            "≤ 1.2× bare",
            split.get("load", value) <= 1.2 * baseline,
            "from the drill's journal: begin:load to done:load",
        ),
    ]
