"""Benchmark 1, start-up: ``recovery-wizard --help`` and the first painted wizard screen, each in a fresh process.

Both are compared with ``python -c pass`` measured in the same run, interleaved (pass, help, paint, pass, …)
so a machine that slows down mid-run slows all three alike.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import PY, Context, Figure, median, python_env

ROOT = Path(__file__).resolve().parent.parent


def _console_script() -> list[str]:
    # The installed entry point is what a user types; fall back to -m when the venv has no script.
    script = Path(PY).parent / "recovery-wizard"
    return [str(script)] if script.exists() else [PY, "-m", "recovery_wizard"]


async def _wall(args: list[str], *, until_line: bytes | None = None, cwd: Path | None = None) -> float:
    """Spawn to exit, or spawn to the first stdout line equal to ``until_line``."""
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=python_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    elapsed: float | None = None
    if until_line is not None:
        while line := await proc.stdout.readline():
            if line.strip() == until_line:
                elapsed = time.perf_counter() - began
                break
    _, err = await proc.communicate()
    if elapsed is None:
        elapsed = time.perf_counter() - began
    if proc.returncode != 0 or (until_line is not None and elapsed is None):
        raise RuntimeError(f"{args} exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return elapsed


async def run(ctx: Context) -> list[Figure]:
    runs = 3 if ctx.quick else 15
    workdir = Path(tempfile.mkdtemp(prefix="rw-bench-paint-"))
    bare: list[float] = []
    helps: list[float] = []
    paints: list[float] = []
    try:
        # One unmeasured round first: the page cache and .pyc files are warm for every measured one.
        for measured in [False] + [True] * runs:
            b = await _wall([PY, "-c", "pass"])
            h = await _wall([*_console_script(), "--help"])
            p = await _wall([PY, "-m", "bench.first_paint", str(workdir)], until_line=b"painted", cwd=ROOT)
            if measured:
                bare.append(b)
                helps.append(h)
                paints.append(p)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base, help_s, paint_s = median(bare), median(helps), median(paints)
    overhead = help_s - base
    ctx.details["startup"] = {"runs": runs, "pass_s": bare, "help_s": helps, "first_paint_s": paints}
    return [
        Figure(
            "startup",
            "`recovery-wizard --help`, wall",
            help_s,
            "s",
            base,
            "`python -c pass`",
            "overhead < 0.150 s",
            overhead < 0.150,
            f"overhead {overhead * 1000:.0f} ms; median of {runs}",
        ),
        Figure(
            "startup",
            "first painted wizard screen, wall from spawn",
            paint_s,
            "s",
            base,
            "`python -c pass`",
            "< 0.6 s",
            paint_s < 0.6,
            f"headless Textual, Connect screen; median of {runs}",
        ),
    ]
