"""Benchmark 5, a project with 5,000 branches: listing them through the client, the branch screen, a keystroke.

The branches are metadata only: copies of the scenario's main branch record (``dataclasses.replace`` with a
new id, name, parent and no timeline or live databases) added straight into the sandbox engine's
``project.branches``. Listing serializes only that metadata, and the branch screen never opens a database, so
they cost what real branches cost on these paths. Everything runs in process (the API over
``httpx.ASGITransport``, no injected latency), so the figures are the client's and the wizard's own work.

Each figure is measured twice in the same run: with the scenario's own 3 branches (the baseline) and with
5,000 more. A keystroke is timed inside the app, not through Pilot (whose press/pause waits dominate): the edit the
Input makes for the key, its Changed message, the filter (``BranchScreen.refill``), layout, and the refresh
after it (``call_after_refresh``). Beside the wall time, the CPU time the thread spent on it: the wall time
includes waiting for the next frame and, on a loaded machine, for a core.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import Context, Figure, median, p95
from recovery_wizard.sandbox.service import Sandbox

# Typed, then erased, again and again: "pr-1" narrows 5,000 branches step by step, as a person would.
KEYS = ["p", "r", "-", "1", "backspace", "backspace", "backspace", "backspace"]


def add_branches(sandbox: Sandbox, count: int) -> None:
    assert sandbox.project is not None
    main = next(b for b in sandbox.project.branches.values() if b.default)
    for i in range(count):
        branch_id = f"br-bench-{i:05d}-{secrets.token_hex(4)}"
        kind = "preview/pr" if i % 2 else "dev/feature"
        sandbox.project.branches[branch_id] = dataclasses.replace(
            main,
            id=branch_id,
            name=f"{kind}-{i}",
            created_at=main.created_at + timedelta(seconds=i),
            timeline=[],
            live={},
            default=False,
            parent_id=main.id,
            pending=[],
            snapshot_task=None,
        )


class _Painted:
    """Times one change to the branch screen: from ``began`` to the refresh after its next ``refill``, in
    wall time and in the CPU time the thread spent meanwhile (the work itself, whatever else loads the
    machine)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.at = 0.0
        self.cpu_at = 0.0

    def mark(self) -> None:
        self.at = time.perf_counter()
        self.cpu_at = time.thread_time()
        self.event.set()

    async def wait(self, began: float, cpu_began: float = 0.0) -> tuple[float, float]:
        await asyncio.wait_for(self.event.wait(), 30)
        self.event.clear()
        return self.at - began, self.cpu_at - cpu_began


def _paint_probe(app: Any, screen: Any) -> _Painted:
    """Wrap ``screen.refill`` so the refresh after each refill is timed (the screen's own work, no harness)."""
    painted = _Painted()
    refill = screen.refill

    def timed_refill(text: str) -> None:
        refill(text)
        app.call_after_refresh(painted.mark)

    screen.refill = timed_refill
    return painted


async def _session(sandbox: Sandbox, workdir: Path, keystrokes: int) -> dict[str, Any]:
    from textual.widgets import DataTable, Input

    from recovery_wizard.tui.app import WizardApp, WizardConfig
    from recovery_wizard.tui.screens.choices import BranchScreen
    from tests.sandbox.conftest import in_process_http, neon_client
    from tests.tui.conftest import on_screen

    async with in_process_http(sandbox) as http:
        client = neon_client(sandbox, http)
        listings: list[float] = []
        for _ in range(5):
            began = time.perf_counter()
            listed = await client.branches(sandbox.project_id)
            listings.append(time.perf_counter() - began)
        config = WizardConfig(
            workdir=workdir, api_key=sandbox.api_key.reveal(), api_url=sandbox.api_url, http=http
        )
        app = WizardApp(config)
        began = time.perf_counter()
        async with app.run_test(size=(100, 32)) as pilot:
            screen = await on_screen(pilot, BranchScreen)
            await pilot.pause()
            opened = time.perf_counter() - began
            rows = screen.query_one("#branches", DataTable).row_count
            # The screen again, the branches already fetched: the render alone, up to its first paint.
            screen = BranchScreen()
            painted = _paint_probe(app, screen)
            began = time.perf_counter()
            app.switch_screen(screen)
            rerender, _ = await painted.wait(began)
            field = screen.query_one("#filter", Input)
            presses: list[float] = []
            cpu: list[float] = []
            for i in range(keystrokes):
                key = KEYS[i % len(KEYS)]
                began, cpu_began = time.perf_counter(), time.thread_time()
                # What the Input does with the key: the same edit, the same Changed message, the same refill.
                if key == "backspace":
                    field.action_delete_left()
                else:
                    field.insert_text_at_cursor(key)
                wall, used = await painted.wait(began, cpu_began)
                presses.append(wall)
                cpu.append(used)
            refills: list[float] = []
            # Filters not typed above (the screen keeps recent ones' answers): a search over every branch
            # ("v"), then narrowing searches, then one that matches nothing.
            for text in ("", "v", "view", "view/pr-2", "zzz"):
                began = time.perf_counter()
                screen.refill(text)
                refills.append(time.perf_counter() - began)
            await pilot.press("ctrl+q")
    return {
        "branches": len(listed),
        "list_s": listings,
        "open_s": opened,
        "rerender_s": rerender,
        "rows_shown": rows,
        "keystroke_s": presses,
        "keystroke_cpu_s": cpu,
        "refill_s": refills,
    }


async def run(ctx: Context) -> list[Figure]:
    count, keystrokes = (200, 8) if ctx.quick else (5000, 48)
    workdir = Path(tempfile.mkdtemp(prefix="rw-bench-branches-"))
    async with Sandbox(pg_dsn=ctx.pg_dsn, operation_seconds=0.05, seed=3) as sandbox:
        assert sandbox.project is not None
        own = set(sandbox.project.branches)
        small = await _session(sandbox, workdir, keystrokes)
        add_branches(sandbox, count)
        try:
            big = await _session(sandbox, workdir, keystrokes)
        finally:
            # Synthetic records have no databases: keep them out of the sandbox's own clean-up.
            for key in set(sandbox.project.branches) - own:
                del sandbox.project.branches[key]
    ctx.details["branches"] = {"baseline": small, "many": big}
    n, b = big["branches"], small["branches"]
    k50, k95 = median(big["keystroke_s"]), p95(big["keystroke_s"])
    return [
        Figure(
            "branches",
            f"list {n:,} branches through NeonClient (in-process API)",
            median(big["list_s"]),
            "s",
            median(small["list_s"]),
            f"{b} branches",
            note="median of 5, all pages",
        ),
        Figure(
            "branches",
            f"wizard start to branch screen shown, {n:,} branches",
            big["open_s"],
            "s",
            small["open_s"],
            f"{b} branches",
            note=f"connect + list + render, {big['rows_shown']} rows shown; re-render alone {big['rerender_s'] * 1000:.0f} ms",
        ),
        Figure(
            "branches",
            f"filter keystroke, median, {n:,} branches",
            k50,
            "s",
            median(small["keystroke_s"]),
            f"{b} branches",
            "<= 20 ms",
            k50 <= 0.02,
            f"{keystrokes} keystrokes; CPU {median(big['keystroke_cpu_s']) * 1000:.1f} ms a keystroke "
            f"({b} branches: {median(small['keystroke_cpu_s']) * 1000:.1f} ms); "
            f"refill() alone {median(big['refill_s']) * 1000:.1f} ms",
        ),
        Figure(
            "branches",
            f"filter keystroke, p95, {n:,} branches",
            k95,
            "s",
            p95(small["keystroke_s"]),
            f"{b} branches",
            "<= 50 ms",
            k95 <= 0.05,
            f"CPU p95 {p95(big['keystroke_cpu_s']) * 1000:.1f} ms ({b} branches: "
            f"{p95(small['keystroke_cpu_s']) * 1000:.1f} ms)",
        ),
    ]
