"""Benchmark 1, start-up: ``recovery-wizard --help``, the first painted wizard screen and the demo's first
screen, each in a fresh process.

``--help`` is compared with ``python -c pass``; the two first paints with a plain Textual app (a header, a
static, an input, a button, a footer: ``bench/plain_paint.py``), Textual's own floor. All are measured in the
same run, interleaved (pass, help, plain, paint, demo, pass, …) so a machine that slows down mid-run slows
them alike. The demo's child also says when Begin is enabled (the sandbox up, the demo app written).

Every child caches its bytecode (in a directory of this run's own, written by the unmeasured first round), as
an installed package has it: pip compiles it at install. A shell with ``PYTHONDONTWRITEBYTECODE=1`` would
otherwise have each child compile this package from source on every spawn (~30 ms at first paint) while
Textual, installed with its bytecode, never does: a cost no user of the installed command pays.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import PY, Context, Figure, installed_like_env, median, python_env

ROOT = Path(__file__).resolve().parent.parent


def _console_script() -> list[str]:
    # The installed entry point is what a user types; fall back to -m when the venv has no script.
    script = Path(PY).parent / "recovery-wizard"
    return [str(script)] if script.exists() else [PY, "-m", "recovery_wizard"]


async def _wall(
    args: list[str],
    *,
    until_line: bytes | None = None,
    cwd: Path | None = None,
    also: bytes | None = None,
    times: dict[bytes, float] | None = None,
    env: dict[str, str] | None = None,
) -> float:
    """Spawn to exit, or spawn to the first stdout line equal to ``until_line`` (and, into ``times``, to the
    line ``also`` after it)."""
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=env or python_env(),
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
                if also is None:
                    break
            elif also is not None and line.strip() == also and times is not None:
                times[also] = time.perf_counter() - began
                break
    _, err = await proc.communicate()
    if elapsed is None:
        elapsed = time.perf_counter() - began
    if proc.returncode != 0 or (until_line is not None and elapsed is None):
        raise RuntimeError(f"{args} exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return elapsed


async def run(ctx: Context) -> list[Figure]:
    runs = 3 if ctx.quick else 15
    demo_runs = 1 if ctx.quick else 5
    workdir = Path(tempfile.mkdtemp(prefix="rw-bench-paint-"))
    bytecode = Path(tempfile.mkdtemp(prefix="rw-bench-pyc-"))
    env = installed_like_env(bytecode)
    bare: list[float] = []
    helps: list[float] = []
    plains: list[float] = []
    paints: list[float] = []
    demos: list[float] = []
    readies: list[float] = []
    demo_env = {**env, "RECOVERY_WIZARD_PG_DSN": ctx.pg_dsn}
    try:
        # One unmeasured round first: the page cache and .pyc files are warm for every measured one.
        for i, measured in enumerate([False] + [True] * runs):
            b = await _wall([PY, "-c", "pass"], env=env)
            h = await _wall([*_console_script(), "--help"], env=env)
            pl = await _wall([PY, "-m", "bench.plain_paint"], until_line=b"painted", cwd=ROOT, env=env)
            p = await _wall(
                [PY, "-m", "bench.first_paint", str(workdir)], until_line=b"painted", cwd=ROOT, env=env
            )
            if i <= demo_runs:  # the demo starts a sandbox (seconds): fewer rounds
                times: dict[bytes, float] = {}
                d = await _wall(
                    [PY, "-m", "bench.demo_paint"],
                    until_line=b"painted",
                    also=b"ready",
                    times=times,
                    cwd=ROOT,
                    env=demo_env,
                )
                if measured:
                    demos.append(d)
                    readies.append(times.get(b"ready", float("nan")))
            if measured:
                bare.append(b)
                helps.append(h)
                plains.append(pl)
                paints.append(p)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(bytecode, ignore_errors=True)
    base, help_s, plain_s, paint_s = median(bare), median(helps), median(plains), median(paints)
    demo_s, ready_s = median(demos), median(readies)
    # The demo runs in the first rounds only, and each leaves PostgreSQL dropping its databases as the next
    # round starts: its baseline is the plain app of those same rounds, measured under the same load.
    plain_demo_s = median(plains[: len(demos)])
    overhead = help_s - base
    ctx.details["startup"] = {
        "runs": runs,
        "pass_s": bare,
        "help_s": helps,
        "plain_textual_paint_s": plains,
        "first_paint_s": paints,
        "demo_paint_s": demos,
        "demo_ready_s": readies,
    }
    plain = "plain Textual app (header, static, input, button, footer)"
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
            "first painted wizard screen (Connect), spawn to paint",
            paint_s,
            "s",
            plain_s,
            plain,
            "≤ 1.3× plain Textual",
            paint_s <= 1.3 * plain_s,
            f"headless; median of {runs}",
        ),
        Figure(
            "startup",
            "`demo`: story screen painted, spawn to paint",
            demo_s,
            "s",
            plain_demo_s,
            f"{plain}, the same {len(demos)} rounds",
            "≤ 1.3× plain Textual",
            demo_s <= 1.3 * plain_demo_s,
            f"headless; the sandbox starts after it, in a worker; median of {demo_runs}",
        ),
        Figure(
            "startup",
            "`demo`: Begin enabled (sandbox up, demo app written), spawn to ready",
            ready_s,
            "s",
            demo_s,
            "the story painted (read meanwhile)",
            "",
            None,
            f"was ~3.4 s quiet / 5.8 s loaded before anything showed; median of {demo_runs}",
        ),
    ]
