"""Benchmark: what `recovery-wizard guard -- <command>` adds before the command starts, against running it bare.

The command prints ``time.time()`` the moment it starts, then a second line 0.3 s later. Measured per run:

- start delay: the command's first instant minus the moment the parent spawned it (bare: an interpreter's
  start; guarded: the guard's start, where-is, confirmation skipped by ``--yes --allow-default``, the row
  counts and the checkpoint, which waits for its Neon operation);
- streaming: the 0.3 s gap between the command's two lines as the parent reads them. Output passes through
  inherited file descriptors, so the gap must stay 0.3 s (nothing re-buffered until exit).

The sandbox answers each API request ``LATENCY_MS`` late and takes ``OPERATION_S`` per operation (Neon's
branch creation, a metadata operation, usually finishes well under a second). Goal: guarded start delay
under 1.5 s.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Context, Figure, median, python_env
from bench.sandboxes import RequestLog, main_branch_uris, make_app_dir, rounds, set_nodelay
from recovery_wizard.sandbox.service import Sandbox

LATENCY_MS = 50
OPERATION_S = 0.3
GOAL_S = 1.5
COMMAND = "import sys, time; print(time.time(), flush=True); time.sleep(0.3); print(time.time(), flush=True)"


async def _once(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    began = time.time()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = await proc.stdout.readline()
    first_seen = time.time()
    await proc.stdout.readline()
    second_seen = time.time()
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return {
        "start_delay_s": float(first) - began,
        "first_line_latency_s": first_seen - float(first),
        "gap_s": second_seen - first_seen,
        "total_s": time.time() - began,
        "command_started": float(first),
    }


async def run(ctx: Context) -> list[Figure]:
    runs = 1 if ctx.quick else 5
    base = Path(tempfile.mkdtemp(prefix="rw-bench-guard-"))
    details: dict[str, Any] = {"latency_ms": LATENCY_MS, "operation_seconds": OPERATION_S, "runs": runs}
    try:
        async with Sandbox(pg_dsn=ctx.pg_dsn, operation_seconds=OPERATION_S, seed=3) as sandbox:
            latency = sandbox.app
            log = RequestLog(sandbox.app)
            sandbox.app = log
            url = await sandbox.serve()
            set_nodelay(sandbox, True)
            latency.latency = LATENCY_MS / 1000
            _, pooled, direct = await main_branch_uris(sandbox, url)
            app = make_app_dir(base / secrets.token_hex(4), pooled, direct)
            env = python_env()
            env.update(
                NEON_API_URL=url, NEON_API_KEY=sandbox.api_key.reveal(), NEON_PROJECT_ID=sandbox.project_id
            )
            bare_argv = [sys.executable, "-c", COMMAND]
            guarded_argv = [
                sys.executable,
                "-m",
                "recovery_wizard",
                "guard",
                "--yes",
                "--allow-default",
                "--",
            ]
            bare = [await _once(bare_argv, app, env) for _ in range(runs)]
            guarded = []
            for _ in range(runs):
                log.entries.clear()
                sample = await _once(guarded_argv + bare_argv, app, env)
                sample["requests"] = len(log.entries)
                sample["rounds"] = rounds(sorted(log.entries, key=lambda e: e.start))
                guarded.append(sample)
            details["bare"], details["guarded"] = bare, guarded
            sandbox.app = latency
    finally:
        ctx.details["guard"] = details
        shutil.rmtree(base, ignore_errors=True)
    bare_delay = median([s["start_delay_s"] for s in bare])
    guarded_delay = median([s["start_delay_s"] for s in guarded])
    gap = median([s["gap_s"] for s in guarded])
    last = guarded[-1]
    return [
        Figure(
            "guard",
            f"start delay under guard (checkpoint + counts) at {LATENCY_MS} ms/request, op {OPERATION_S:g} s",
            guarded_delay,
            "s",
            bare_delay,
            "bare command (interpreter start)",
            f"< {GOAL_S:g} s",
            guarded_delay < GOAL_S,
            f"added {guarded_delay - bare_delay:.2f} s; {last['requests']} API requests in {last['rounds']} "
            f"sequential rounds; median of {runs}",
        ),
        Figure(
            "guard",
            "gap between the command's two lines (0.3 s apart) as read through the guard",
            gap,
            "s",
            median([s["gap_s"] for s in bare]),
            "bare",
            "≈ 0.3 s (not re-buffered)",
            abs(gap - 0.3) < 0.1,
            f"first line reached the reader {median([s['first_line_latency_s'] for s in guarded]) * 1000:.1f} ms "
            "after the command wrote it",
        ),
    ]
