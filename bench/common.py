"""What every benchmark shares: figures, statistics, the PostgreSQL to run on, the machine's description."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recovery_wizard.sandbox.pgserver import PG_DSN_ENV, PgServer

# The PostgreSQL the lead's machine provides (trust auth); tried when no DSN is given, before embedded.
LOCAL_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class Figure:
    """One measured figure beside the baseline measured in the same run; goals are reported, never asserted."""

    bench: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""
    met: bool | None = None  # None: no goal for this figure
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class Context:
    """Run-wide settings and the one PostgreSQL server every benchmark shares."""

    quick: bool
    pg: PgServer
    pg_source: str  # which server: "RECOVERY_WIZARD_PG_DSN", "local 5432" or "embedded"
    pg_version: str
    details: dict[str, Any] = field(default_factory=dict)  # per-benchmark extras for the JSON output

    @property
    def pg_dsn(self) -> str:
        return self.pg.admin_dsn.reveal()


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (no interpolation: with 40 samples it is the 38th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-95 * len(ordered) // 100))  # ceil(0.95 n)
    return ordered[rank - 1]


async def timed(job: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = await job()
    return time.perf_counter() - began, result


async def _reachable(dsn: str) -> bool:
    import psycopg

    try:
        conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=2)
    except psycopg.Error:
        return False
    await conn.close()
    return True


@contextlib.asynccontextmanager
async def pg_server() -> AsyncIterator[tuple[PgServer, str]]:
    """$RECOVERY_WIZARD_PG_DSN, else the local 5432 server if it answers, else an embedded PostgreSQL."""
    dsn = os.environ.get(PG_DSN_ENV)
    source = PG_DSN_ENV
    if not dsn and await _reachable(LOCAL_PG_DSN):
        dsn, source = LOCAL_PG_DSN, "local 5432"
    if not dsn:
        dsn, source = None, "embedded"
    server = await PgServer.start(dsn)
    try:
        yield server, source
    finally:
        await server.stop()


async def server_version(server: PgServer) -> str:
    import psycopg

    async with await psycopg.AsyncConnection.connect(server.admin_dsn.reveal()) as conn:
        row = await (await conn.execute("SHOW server_version")).fetchone()
    assert row is not None
    return str(row[0])


def machine() -> dict[str, str]:
    """Where the figures came from: they mean little without it."""
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    memory = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as info:
        kb = next((int(line.split()[1]) for line in info if line.startswith("MemTotal")), 0)
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
    }


def python_env() -> dict[str, str]:
    """The environment for child interpreters: no NEON_* leaking in from the caller's shell."""
    return {k: v for k, v in os.environ.items() if not k.startswith("NEON_")}


def installed_like_env(bytecode: Path) -> dict[str, str]:
    """``python_env()`` with the children's bytecode written to and read from ``bytecode``, whatever the shell says.

    An installed package has its bytecode (pip compiles it at install); a shell with
    ``PYTHONDONTWRITEBYTECODE=1`` would have every child compile this package from source on every spawn
    (30-60 ms) while the libraries, installed with theirs, never do: a cost no user of the installed command
    pays. The first, unmeasured run of a benchmark fills ``bytecode``.
    """
    env = python_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(bytecode)
    return env


def run_child(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> float:
    """Wall time of one child process, spawn to exit; raises if it fails (a failing figure is no figure)."""
    began = time.perf_counter()
    done = subprocess.run(
        args, env=env or python_env(), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{args} exited {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


PY = sys.executable


async def in_thread(fn: Callable[[], float]) -> float:
    return await asyncio.to_thread(fn)
