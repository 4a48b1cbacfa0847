"""Do no harm in the wizard: one run at a time per app directory, unfinished runs asked about, never
passed by, hints that resume the right run, and what is left for a person to do said loudly.

Real parts only: a second process holds the directory's lock, the CLI is a real subprocess (killed with
SIGKILL by the journal's crash hook), Neon is the sandbox, and the assertions read the journals, the
branches and the .env the runs left.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from textual.widgets import Button
from textual.widgets._toast import Toast

from recovery_wizard.recovery import runner as runner_module
from recovery_wizard.recovery.journal import Journal, list_runs
from recovery_wizard.tui.app import Mode, make_app
from recovery_wizard.tui.screens import choices, steps
from recovery_wizard.tui.screens.modals import ConfirmModal, ErrorModal
from tests.tui.conftest import (
    SIZE,
    Incident,
    WizardPilot,
    on_screen,
    press_button,
    screen_text,
    settle,
    start_run,
    step_finished,
    text_of,
    wait_until,
    walk_to_plan,
)

HELD_RUN = "20261201T000000Z-c0ffee"  # the run id the holder names, unless told another
HOLDER = """
import sys, time
from pathlib import Path
from recovery_wizard.recovery.lock import AppLock
lock = AppLock(Path(sys.argv[1]), command="restore").acquire()
lock.set_run(sys.argv[2])
print("held", flush=True)
time.sleep(600)
"""


async def cli(incident: Incident, *args: str, crash_at: int | None = None) -> int:
    """`recovery-wizard restore --yes …` in the app directory; SIGKILLed after journal record ``crash_at``."""
    url = await incident.sandbox.serve()  # a subprocess cannot use the in-process transport
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEON_", "RECOVERY_WIZARD_CRASH"))}
    env.update(
        NEON_API_URL=url,
        NEON_API_KEY=incident.sandbox.api_key.reveal(),
        NEON_PROJECT_ID=incident.sandbox.project_id,
        TZ="Europe/Amsterdam",
        NO_COLOR="1",
    )
    if crash_at is not None:
        env["RECOVERY_WIZARD_CRASH_AT"] = str(crash_at)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recovery_wizard",
        "restore",
        "--yes",
        "--at",
        "35 minutes ago",
        "--check",
        incident.canary,
        "--no-prisma",
        *args,
        cwd=incident.app_dir,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    if crash_at is not None:
        assert proc.returncode == -9, err.decode()
    assert proc.returncode is not None
    return proc.returncode


async def first_of(pilot: WizardPilot, *kinds: type) -> object:
    """The first of ``kinds`` the wizard shows (to prove which one came, not only that one did)."""
    await wait_until(
        pilot, lambda: isinstance(pilot.app.screen, kinds), " or ".join(k.__name__ for k in kinds)
    )
    return pilot.app.screen


async def start_and_leave_after_restore(pilot: WizardPilot) -> None:
    """Start the run, let the restore finish, then walk away (Ctrl+Q)."""
    await start_run(pilot)
    await step_finished(pilot, steps.RestoreScreen)
    await pilot.press("ctrl+q")


# --- the lock (issue 10 item 2) ------------------------------------------------------------------------------


async def test_a_wizard_is_refused_while_another_process_holds_the_directory(incident: Incident) -> None:
    """Another process (a CLI restore, a second wizard) writes here: Start says who, and writes nothing."""
    holder = await hold_the_lock(incident.app_dir)
    try:
        names_before = await incident.branch_names()
        app = make_app(incident.config())
        async with app.run_test(size=SIZE) as pilot:
            plan = await walk_to_plan(pilot)
            await start_run(pilot)
            modal = await on_screen(pilot, ErrorModal)
            message = screen_text(modal, "#error-message")
            assert f"pid {holder.pid}" in message, message
            assert "`recovery-wizard restore`" in message and "run 20261201T000000Z-c0ffee" in message
            assert "Nothing was written." in message
            await press_button(pilot, "close")
            await wait_until(pilot, lambda: pilot.app.screen is plan, "the plan again")
            assert not plan.query_one("#start", Button).disabled  # Start once the other run is over
            # The plan stands: a refused Start is not a failed check (no "could not be checked", no recheck).
            assert "could not be checked" not in screen_text(plan, "#plan")
            assert not plan.query_one("#recheck", Button).display
            # Nothing written: no branch, no run directory, the .env as it was.
            assert await incident.branch_names() == names_before
            assert list_runs(incident.app_dir) == []
            assert incident.env_path.read_bytes() == incident.env_before

            holder.send_signal(signal.SIGKILL)  # the other run ends (however it ends, its lock goes)
            await holder.wait()
            await press_button(pilot, "start")
            await step_finished(pilot, steps.RestoreScreen)
            await pilot.press("ctrl+q")
        [run_dir] = list_runs(incident.app_dir)
        assert Journal.open(run_dir).done("restore") is not None
        assert len(set(await incident.branch_names()) - set(names_before)) == 1
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


async def hold_the_lock(app_dir: Path, run_id: str = HELD_RUN) -> asyncio.subprocess.Process:
    """Another process holding the directory's lock for ``run_id`` (what a running restore looks like)."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(app_dir), run_id, stdout=asyncio.subprocess.PIPE
    )
    assert holder.stdout is not None
    assert await asyncio.wait_for(holder.stdout.readline(), 120) == b"held\n"
    return holder


async def test_a_run_in_progress_elsewhere_is_not_offered_as_unfinished(incident: Incident) -> None:
    """A run whose journal has no end because it is running (its process holds the lock), not killed."""
    await cli(incident, crash_at=2)
    [running] = list_runs(incident.app_dir)
    holder = await hold_the_lock(incident.app_dir, running.name)
    try:
        app = make_app(incident.config())
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            shown = await first_of(pilot, ConfirmModal, choices.BranchScreen)
            assert isinstance(shown, choices.BranchScreen), "a running run was offered as unfinished"

            def toasts() -> str:
                return "\n".join(t.render().plain for t in pilot.app.screen.query(Toast))

            await wait_until(pilot, lambda: "Another recovery-wizard" in toasts(), "the notice")
            assert f"pid {holder.pid}" in toasts() and f"run {running.name}" in toasts(), toasts()
        assert Journal.open(running).status == "unfinished"  # nothing written to it
    finally:
        holder.kill()
        await holder.wait()


async def test_the_wizard_holds_the_lock_while_its_run_writes(incident: Incident) -> None:
    """While the wizard's run is on screen, a CLI restore in the same directory is refused (exit 2)."""
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        [run_dir] = list_runs(incident.app_dir)
        names = await incident.branch_names()
        assert await cli(incident, "--new") == 2
        assert await incident.branch_names() == names  # the CLI made no second branch
        assert list_runs(incident.app_dir) == [run_dir]
        await pilot.press("ctrl+q")


# --- unfinished runs (issue 10 item 2) -----------------------------------------------------------------------


async def test_starting_a_new_run_marks_the_unfinished_one_abandoned(
    incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "RECONCILE_PAUSE", 0.05)
    await cli(incident, crash_at=2)  # killed after announcing the restore, before asking Neon
    [old] = list_runs(incident.app_dir)
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        offer = await on_screen(pilot, ConfirmModal)
        assert old.name in offer.question
        await press_button(pilot, "no")  # Start a new run
        await walk_to_plan(pilot)
        await start_and_leave_after_restore(pilot)
    [new] = [run for run in list_runs(incident.app_dir) if run != old]
    abandoned = Journal.open(old)
    assert abandoned.status == "abandoned"
    end = abandoned.records[-1]
    assert end.data["superseded_by"] == new.name
    # The question said how far the old run got, and what starting anew does to it.
    assert "killed" in offer.question and "Starting a new run marks it abandoned" in offer.question


async def test_a_restore_superseded_by_a_later_finished_one_is_not_offered(
    incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old killed restore, then a restore that finished (as a version that did not mark the old one
    left it): continuing the old one would repoint .env back at its branch, so it is not offered."""
    monkeypatch.setattr(runner_module, "RECONCILE_PAUSE", 0.05)
    await cli(incident, crash_at=2)
    [old] = list_runs(incident.app_dir)
    aside = incident.app_dir.parent / old.name
    shutil.move(old, aside)  # out of sight of the next run, so that nothing marks it
    assert await cli(incident) == 0
    [finished] = list_runs(incident.app_dir)
    shutil.move(aside, old)
    env_after_finished = incident.env_path.read_bytes()

    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        shown = await first_of(pilot, ConfirmModal, choices.BranchScreen)
        assert isinstance(shown, choices.BranchScreen), "a superseded restore was offered for resuming"
        await walk_to_plan(pilot)
        await start_and_leave_after_restore(pilot)
    assert incident.env_path.read_bytes() == env_after_finished
    abandoned = Journal.open(old)
    assert abandoned.status == "abandoned"
    assert abandoned.records[-1].data["finished_later"] == finished.name


# --- the resume hint (issue 10 item 6) -----------------------------------------------------------------------


async def summary_after_closing_the_error(pilot: WizardPilot) -> str:
    await on_screen(pilot, ErrorModal)
    await press_button(pilot, "close")
    done = await on_screen(pilot, steps.DoneScreen)
    await settle(pilot)
    return screen_text(done, "#summary")


async def test_a_drill_stopped_at_the_error_box_hints_drill_resume_with_its_run_id(
    incident: Incident,
) -> None:
    app = make_app(incident.config(Mode.DRILL))
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        [run_dir] = list_runs(incident.app_dir)
        # The journal cannot be appended to any more (an error that is neither Neon's nor the runbook's).
        journal = run_dir / "journal.jsonl"
        journal.rename(run_dir / "journal.saved")
        journal.mkdir()
        await pilot.press("enter")
        summary = await summary_after_closing_the_error(pilot)
    assert f"recovery-wizard drill --resume {run_dir.name}" in summary, summary
    assert "restore --resume" not in summary


async def test_an_env_step_failure_hints_the_exact_resume_command(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        await pilot.press("enter")
        await step_finished(pilot, steps.VerifyScreen)
        incident.env_path.unlink()  # gone between the plan and the env step
        await pilot.press("enter")
        summary = await summary_after_closing_the_error(pilot)
    [run_dir] = list_runs(incident.app_dir)
    assert f"recovery-wizard restore --resume {run_dir.name}" in summary, summary
    assert "re-run" not in summary.lower()
    assert summary.count("Step 'env' failed") == 1, summary


# --- saying what is not done (issue 10 item 8) --------------------------------------------------------------


async def test_the_plan_shows_nothing_will_be_repointed_above_its_steps_at_80x24(incident: Incident) -> None:
    """Only a .env.production: the plan says loudly, in sight without scrolling, that nothing is repointed."""
    incident.env_path.rename(incident.app_dir / ".env.production")
    app = make_app(incident.config())
    async with app.run_test(size=(80, 24)) as pilot:
        plan = await walk_to_plan(pilot)
        warnings = plan.query_one("#warnings")
        text = text_of(warnings)
        assert "NOTHING WILL BE REPOINTED" in text and ".env.production" in text
        # In sight without scrolling (its first lines at least), before the steps, and styled to stand out.
        body = plan.query_one("#body").region
        assert warnings.region.y >= body.y and warnings.region.y + 2 <= body.bottom, (warnings.region, body)
        assert warnings.region.y < plan.query_one("#plan").region.y
        assert warnings.has_class("loud") and text.startswith("Read this before you start")
        await pilot.press("escape")


async def test_done_lists_what_is_left_to_do_by_hand(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
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
        done = await on_screen(pilot, steps.DoneScreen)
        await settle(pilot)
        by_hand = screen_text(done, "#by-hand")
        assert app.runner is not None
        restored = app.runner.result.restore_branch
        assert restored is not None
        await pilot.press("enter")
    assert by_hand.startswith("Left to do by hand")
    assert "hosting provider's environment variables" in by_hand and "redeploy" in by_hand
    assert f"Set DATABASE_URL, DIRECT_URL to the connection strings of {restored.name}" in by_hand
