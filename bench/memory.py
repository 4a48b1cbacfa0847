"""Benchmark 6, peak memory of a whole demo run: the wizard flow of ``recovery-wizard demo``, headless.

``bench/demo_flow.py`` runs in a fresh interpreter and reports its peak resident set (sandbox + wizard + Pilot
in one process, as the demo runs). Measured as VmHWM from /proc/self/status, not ``ru_maxrss``: on Linux
``ru_maxrss`` is inherited through fork and exec, so a child of this ~100 MB benchmark runner reports at
least the runner's peak (a bare interpreter read 107 MiB that way). The children's ``ru_maxrss`` (pg_dump,
psql, the Prisma stand-in) is inflated the same way, so it is kept in the JSON only. The PostgreSQL server
is not counted. Baseline: a bare interpreter's own VmHWM.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench.common import PY, Context, Figure, median, python_env

ROOT = Path(__file__).resolve().parent.parent
# Inline, importing nothing: the baseline is the interpreter alone.
BARE = "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))"


def _child(args: list[str]) -> str:
    done = subprocess.run(
        args, cwd=ROOT, env=python_env(), capture_output=True, timeout=300, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{args[:3]} exited {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}"
        )
    return done.stdout.decode().strip().splitlines()[-1]


async def run(ctx: Context) -> list[Figure]:
    import asyncio

    runs = 1 if ctx.quick else 3
    bare = [int(await asyncio.to_thread(_child, [PY, "-c", BARE])) / 1024 for _ in range(runs)]
    samples = [
        json.loads(await asyncio.to_thread(_child, [PY, "-m", "bench.demo_flow", ctx.pg_dsn]))
        for _ in range(runs)
    ]
    own = [s["hwm_kib"] / 1024 for s in samples]
    ctx.details["memory"] = {"bare_mib": bare, "hwm_mib": own, "ru_maxrss": samples}
    peak = median(own)
    return [
        Figure(
            "memory",
            "peak RSS of a whole demo flow (sandbox + wizard, one process)",
            peak,
            "MB",
            median(bare),
            "bare interpreter",
            "< 150 MB",
            peak < 150,
            f"MiB, VmHWM of the demo process; median of {runs}",
        )
    ]
