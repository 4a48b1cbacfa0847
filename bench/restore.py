"""Benchmark 2, the restore's critical path: ``restore --yes --no-prisma`` against the sandbox, as a subprocess.

The sandbox answers every API request ``latency`` late and takes ``operation_seconds`` per Neon operation.
The lower bound is what no client could beat: the operation's duration plus the requests that must happen one
after another, each paying the latency once. The unavoidable chain (docs/performance.md explains it):

1. GET project (restore window) ‖ GET branches (the damaged branch) ‖ GET operations (none running)
2. GET databases ‖ GET roles of that branch (pre-flight: the names the checks and URIs use)
3. POST branches (create at the moment, with a read-write endpoint)
4. GET operation(s), once, after the operation's duration (the poll that sees it finished)
5. GET connection_uri ×3 at once (restored direct + pooled for .env, damaged direct for verification)

so bound = operation_seconds + 5 × latency. The tool's actual requests and their sequential rounds are read
from a log wrapped around the sandbox's ASGI app.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import Context, Figure, installed_like_env, median
from bench.sandboxes import RequestLog, main_branch_uris, make_app_dir, rounds, set_nodelay
from recovery_wizard.sandbox.service import Sandbox

UNAVOIDABLE_ROUNDS = 5
LATENCY_MS = 50


async def _restore_once(
    sandbox: Sandbox,
    url: str,
    log: RequestLog,
    base: Path,
    pooled: str,
    direct: str,
    source: tuple[str, ...] = ("--at", "35 minutes ago"),
) -> dict[str, Any]:
    app = make_app_dir(base / secrets.token_hex(4), pooled, direct)
    # Bytecode cached under base, as an installed command has it; the unmeasured first run fills it.
    env = installed_like_env(base / "bytecode")
    env.update(
        NEON_API_URL=url,
        NEON_API_KEY=sandbox.api_key.reveal(),
        NEON_PROJECT_ID=sandbox.project_id,
        NO_COLOR="1",
    )
    log.entries.clear()
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recovery_wizard",
        "restore",
        "--yes",
        "--json",
        "--no-prisma",
        *source,
        # A unique name: the default is stamped to the second, and runs may share one.
        "--name",
        f"bench-restore-{secrets.token_hex(3)}",
        cwd=app,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"restore exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    entries = sorted(log.entries, key=lambda e: e.start)
    return {
        "wall_s": wall,
        "requests_json": json.loads(out)["requests"],
        "requests_served": len(entries),
        "rounds": rounds(entries),
        "first_request_s": entries[0].start - began if entries else None,
        "last_answer_to_exit_s": began + wall - entries[-1].end if entries else None,
        "requests": [
            (e.method, e.path.rsplit("/", 2)[-2:], round(e.start - began, 3), round(e.end - began, 3))
            for e in entries
        ],
    }


async def run(ctx: Context) -> list[Figure]:
    runs = 1 if ctx.quick else 5
    op_seconds = 0.2 if ctx.quick else 1.0
    base = Path(tempfile.mkdtemp(prefix="rw-bench-restore-"))
    figures: list[Figure] = []
    details: dict[str, Any] = {"operation_seconds": op_seconds, "runs": runs}
    try:
        async with Sandbox(pg_dsn=ctx.pg_dsn, operation_seconds=op_seconds, seed=3) as sandbox:
            latency = sandbox.app  # the FaultMiddleware: its .latency (seconds) is read per request
            log = RequestLog(sandbox.app)
            sandbox.app = log  # serve() hands uvicorn whatever sandbox.app is
            url = await sandbox.serve()
            _, pooled, direct = await main_branch_uris(sandbox, url)

            # Unmeasured: compiles this package's bytecode into the children's cache, as an install does.
            await _restore_once(sandbox, url, log, base, pooled, direct)
            # The sandbox as shipped (no TCP_NODELAY), once, at 0 ms: the artefact the other runs avoid.
            shipped = await _restore_once(sandbox, url, log, base, pooled, direct)
            details["as_shipped_0ms"] = shipped
            set_nodelay(sandbox, True)

            for latency_ms in (LATENCY_MS, 0):
                latency.latency = latency_ms / 1000
                samples = [await _restore_once(sandbox, url, log, base, pooled, direct) for _ in range(runs)]
                wall = median([s["wall_s"] for s in samples])
                bound = op_seconds + UNAVOIDABLE_ROUNDS * latency_ms / 1000
                last = samples[-1]
                kinds = Counter(f"{m} {'/'.join(p)}" for m, p, _, _ in last["requests"])
                details[f"{latency_ms}ms"] = {"samples": samples, "bound_s": bound, "kinds": kinds}
                ratio = wall / bound
                figures.append(
                    Figure(
                        "restore",
                        f"restore --yes --no-prisma at {latency_ms} ms/request, op {op_seconds:g} s: wall",
                        wall,
                        "s",
                        bound,
                        f"bound: op + {UNAVOIDABLE_ROUNDS} × latency",
                        "≤ 1.25× bound" if latency_ms else "",
                        ratio <= 1.25 if latency_ms else None,
                        f"{last['requests_json']} requests (JSON), {last['requests_served']} served, "
                        f"{last['rounds']} sequential rounds vs {UNAVOIDABLE_ROUNDS} needed; "
                        f"first request {last['first_request_s'] * 1000:.0f} ms after spawn; median of {runs}",
                    )
                )
            # This wave's other source: the newest snapshot (the scenario's "before release"), to a new branch,
            # beside the history restore at the same latency (restore_snapshot + its operations, then the same
            # verify and env steps).
            latency.latency = LATENCY_MS / 1000
            snaps = [
                await _restore_once(
                    sandbox, url, log, base, pooled, direct, source=("--from", "snapshot:latest")
                )
                for _ in range(runs)
            ]
            history_wall = median([s["wall_s"] for s in details[f"{LATENCY_MS}ms"]["samples"]])
            details["snapshot_50ms"] = {"samples": snaps}
            last = snaps[-1]
            figures.append(
                Figure(
                    "restore",
                    f"restore --from snapshot:latest --yes --no-prisma at {LATENCY_MS} ms/request: wall",
                    median([s["wall_s"] for s in snaps]),
                    "s",
                    history_wall,
                    "the history restore above",
                    note=f"{last['requests_served']} requests, {last['rounds']} sequential rounds; median of {runs}",
                )
            )
            figures.append(
                Figure(
                    "restore",
                    "same at 0 ms over the sandbox as shipped (no TCP_NODELAY)",
                    shipped["wall_s"],
                    "s",
                    details["0ms"]["samples"][0]["wall_s"],
                    "0 ms with TCP_NODELAY",
                    note=f"{shipped['requests_served']} requests; one run: shows the sandbox's Nagle delay",
                )
            )
            sandbox.app = latency
    finally:
        ctx.details["restore"] = details
        shutil.rmtree(base, ignore_errors=True)
    return figures
