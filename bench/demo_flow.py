"""Child process for the memory benchmark: the demo's whole wizard flow, headless, then its peak RSS.

Run as ``python -m bench.demo_flow PG_DSN``. Like ``recovery-wizard demo``, one process holds the sandbox
(API on a real socket, endpoint proxies) and the wizard in demo mode; Pilot drives the keyboard through
every screen: Begin, branch, moment, strategy, plan, restore, verify, env (yes), Prisma (yes; the tests'
stand-in Prisma CLI, since real Prisma needs a download), done, quit. It prints one JSON line:
its peak RSS (VmHWM), and ``ru_maxrss`` of itself and of its waited-for children for comparison.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile
from pathlib import Path

from recovery_wizard.sandbox.service import Sandbox
from recovery_wizard.tui.app import Mode, WizardConfig, make_app


async def flow(pg_dsn: str | None) -> None:
    from bench.sandboxes import main_branch_uris, make_app_dir
    from recovery_wizard.tui.screens import choices, steps
    from recovery_wizard.tui.screens.modals import ConfirmModal
    from tests.tui.conftest import on_screen, press_button, settle, start_run, step_finished, walk_to_plan

    async with Sandbox(pg_dsn=pg_dsn, operation_seconds=1.0) as sandbox:
        url = await sandbox.serve()
        assert sandbox.project is not None and sandbox.project.scenario is not None
        _, pooled, direct = await main_branch_uris(sandbox, url)
        app_dir = make_app_dir(Path(tempfile.mkdtemp(prefix="rw-bench-demo-")) / "homecheff", pooled, direct)
        config = WizardConfig(
            workdir=app_dir,
            mode=Mode.DEMO,
            api_key=sandbox.api_key.reveal(),
            api_url=url,
            project_id=sandbox.project_id,
            intro="Demo (benchmark). Press Enter to begin.",
            checks=[sandbox.project.scenario.canary],
            tz="Europe/Amsterdam",
            # Pilot presses keys at once; the half-second arming that guards a person's type-ahead would
            # only swallow them (it has tests of its own in tests/tui/test_stress.py).
            arm_seconds=0.0,
        )
        app = make_app(config)
        async with app.run_test(size=(100, 32)) as pilot:
            await on_screen(pilot, choices.ConnectScreen)
            await pilot.press("enter")  # Begin
            await walk_to_plan(pilot)
            await start_run(pilot)
            await step_finished(pilot, steps.RestoreScreen)
            await pilot.press("enter")
            await step_finished(pilot, steps.VerifyScreen)
            await pilot.press("enter")
            await on_screen(pilot, ConfirmModal)
            await press_button(pilot, "yes")
            await step_finished(pilot, steps.EnvScreen)
            await pilot.press("enter")
            await on_screen(pilot, ConfirmModal)
            await press_button(pilot, "yes")
            await step_finished(pilot, steps.PrismaScreen)
            await pilot.press("enter")
            await on_screen(pilot, steps.DoneScreen)
            await settle(pilot)
            await pilot.press("enter")  # Quit has the focus on the summary
        if app.return_value != 0:
            raise SystemExit(f"the wizard ended with {app.return_value}")


def main() -> None:
    asyncio.run(flow(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None))
    # Linux reports ru_maxrss in KiB, but it survives fork and exec: a child starts with its parent's peak.
    # VmHWM is the peak of this address space only (exec starts a new one), so it is the figure we report.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"hwm_kib": vm_hwm_kib(), "self_kib": own, "children_kib": children}), flush=True)


def vm_hwm_kib() -> int:
    """This process's peak resident set, from /proc (Linux); ru_maxrss where there is no /proc."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    main()
