"""Benchmark 4, find-moment: bisecting a 7-day window to 1 s, with a simulated probe latency.

The homecheff sandbox (its canary turns false at the incident ~30 minutes ago) is served on a socket with
50 ms per API request, and every probe is slowed by PROBE_LATENCY_S more: the sandbox answers a time-travel
connection from local PostgreSQL in milliseconds, where Neon starts a compute. The sleep wraps
``recovery_wizard.recovery.findmoment.probe``, which ``find_moment`` looks up at call time.

Figures: probes used against the log2 bound ceil(log2(window / precision)) (plus the two ends, which
find_moment checks concurrently with the first midpoint), and wall time against the same search with its
first three probes run one after another (``findmoment.together`` swapped for a sequential one).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from unittest import mock

import httpx

from bench.common import Context, Figure, median, timed
from bench.sandboxes import set_nodelay
from recovery_wizard.neon import NeonClient
from recovery_wizard.recovery import findmoment
from recovery_wizard.recovery.peek import Lens
from recovery_wizard.sandbox.service import Sandbox

PROBE_LATENCY_S = 0.2
API_LATENCY_MS = 50


async def _one_after_another(*probes: Awaitable[findmoment.Probe]) -> list[findmoment.Probe]:
    return [await p for p in probes]


async def run(ctx: Context) -> list[Figure]:
    runs = 1 if ctx.quick else 3
    original = findmoment.probe

    async def slow_probe(lens: Lens, canary: str, at: datetime) -> findmoment.Probe:
        await asyncio.sleep(PROBE_LATENCY_S)
        return await original(lens, canary, at)

    async with Sandbox(pg_dsn=ctx.pg_dsn, latency_ms=API_LATENCY_MS, seed=3) as sandbox:
        url = await sandbox.serve()
        set_nodelay(sandbox, True)  # see bench/sandboxes.py: the sandbox's Nagle delay is not the tool's
        assert sandbox.project is not None and sandbox.project.scenario is not None
        canary = sandbox.project.scenario.canary
        async with httpx.AsyncClient() as http:
            client = NeonClient(http, sandbox.api_key, base_url=url)
            project = await client.project(sandbox.project_id)
            main = next(b for b in await client.branches(sandbox.project_id) if b.default)
            now = datetime.now(UTC)
            if ctx.quick:
                good, precision = now - timedelta(hours=1), timedelta(minutes=1)
            else:
                retention = timedelta(seconds=project.history_retention_seconds or 0)
                good, precision = now - retention + findmoment.EDGE_MARGIN, timedelta(seconds=1)
            bound = math.ceil(math.log2((now - good) / precision))

            async def search() -> findmoment.MomentFound:
                lens = Lens(client, sandbox.project_id, main, "neondb", "neondb_owner")
                before = client.requests_sent
                found = await findmoment.find_moment(lens, canary, good=good, bad=now, precision=precision)
                api_requests.append(client.requests_sent - before)
                return found

            api_requests: list[int] = []
            concurrent: list[float] = []
            sequential: list[float] = []
            found: findmoment.MomentFound | None = None
            with mock.patch.object(findmoment, "probe", slow_probe):
                for _ in range(runs):
                    t, found = await timed(search)
                    concurrent.append(t)
                    with mock.patch.object(findmoment, "together", _one_after_another):
                        s, _ = await timed(search)
                    sequential.append(s)
    assert found is not None
    probes = len(found.probes)
    per_probe = median([p.seconds for p in found.probes]) + PROBE_LATENCY_S
    ctx.details["findmoment"] = {
        "window_s": (now - good).total_seconds(),
        "precision_s": precision.total_seconds(),
        "log2_bound": bound,
        "budget": found.budget,
        "probes": probes,
        "api_requests_per_search": api_requests,
        "concurrent_s": concurrent,
        "sequential_s": sequential,
        "median_probe_s": per_probe,
        "found": [found.last_good, found.first_bad],
    }
    window = f"{(now - good) / timedelta(days=1):.2f} days" if not ctx.quick else "1 h"
    c, s = median(concurrent), median(sequential)
    return [
        Figure(
            "findmoment",
            f"probes to bisect {window} to {precision.total_seconds():g} s",
            probes,
            "probes",
            bound,
            "ceil(log2(window/precision))",
            f"≤ bound + 2 ({bound + 2})",
            probes <= bound + 2,
            f"{api_requests[-1]} API requests per search ({api_requests[-1] / probes:.1f} per probe)",
        ),
        Figure(
            "findmoment",
            f"find-moment wall, {PROBE_LATENCY_S * 1000:.0f} ms simulated + {API_LATENCY_MS} ms/API request",
            c,
            "s",
            s,
            "first three probes sequential",
            f"≈ {bound} probe rounds ({bound * per_probe:.2f} s)",
            c <= bound * per_probe * 1.1,
            f"median probe {per_probe * 1000:.0f} ms incl. the simulated latency; median of {runs}",
        ),
    ]
