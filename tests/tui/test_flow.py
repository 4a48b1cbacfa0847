"""The wizard end to end under Pilot, against the homecheff sandbox: the flows a user walks at 2 a.m.

Each test asserts what the flow did to the world (branches via the API, rows via psycopg, the .env, the
stand-in Prisma's log, the incident record, the exit code), not only which screens appeared.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from textual.widgets import Button, DataTable, Input, RadioButton

from recovery_wizard.recovery import runner as runner_module
from recovery_wizard.recovery.journal import Journal, list_runs
from recovery_wizard.tui.app import Mode, WizardApp, WizardConfig, make_app
from recovery_wizard.tui.screens import choices, steps
from recovery_wizard.tui.screens.modals import ConfirmModal, TypeToConfirmModal
from tests.tui.conftest import (
    SIZE,
    Incident,
    WizardPilot,
    all_text,
    check_verdict,
    count_users,
    on_screen,
    press_button,
    rail_of,
    record_steps,
    screen_text,
    settle,
    start_run,
    step_finished,
    stop_the_run,
    text_of,
    through_source,
    wait_until,
    walk_to_plan,
)


def report_of(app: WizardApp) -> str:
    assert app.runner is not None and app.runner.result.report_path is not None
    path = app.runner.result.report_path
    assert path.name == "report.md" and path.is_file()
    return path.read_text()


async def quit_from_done(pilot: WizardPilot) -> steps.DoneScreen:
    """Wait for the summary (written in a worker), then Enter on Quit, which has the focus."""
    done = await on_screen(pilot, steps.DoneScreen)
    await settle(pilot)
    assert pilot.app.focused is done.query_one("#quit", Button)
    await pilot.press("enter")
    return done


async def finish_restore_after_verify(pilot: WizardPilot, incident: Incident) -> str:
    """Verify → env (confirm) → Prisma (write the pulled schema) → Done → quit; returns the summary."""
    verify = await step_finished(pilot, steps.VerifyScreen)
    assert check_verdict(verify, incident.canary) == "PASS"
    await pilot.press("enter")
    env_question = await on_screen(pilot, ConfirmModal)
    assert env_question.question == f"Write these changes to {incident.env_path}?"
    await press_button(pilot, "yes")
    await step_finished(pilot, steps.EnvScreen)
    await pilot.press("enter")
    schema_question = await on_screen(pilot, ConfirmModal)
    assert schema_question.question == "Write the pulled schema to schema.prisma?"
    await press_button(pilot, "yes")
    await step_finished(pilot, steps.PrismaScreen)
    await pilot.press("enter")
    done = await quit_from_done(pilot)
    return screen_text(done, "#summary")


async def test_new_branch_flow_with_the_keyboard(incident: Incident) -> None:
    names_before = await incident.branch_names()
    app = make_app(incident.config())
    visited = record_steps(app)
    async with app.run_test(size=SIZE) as pilot:
        # The key is in the config: the wizard connects by itself and, seeing one project, skips that screen.
        branch = await on_screen(pilot, choices.BranchScreen)
        assert visited == ["branch"]
        assert "project" in app.done_steps
        table = branch.query_one("#branches", DataTable)
        assert table.row_count == len(names_before)
        await pilot.press("enter")  # the cursor starts on the default branch: main

        await through_source(pilot)  # Neon history, the highlighted choice
        moment = await on_screen(pilot, choices.MomentScreen)
        assert app.branch is not None and app.branch.id == incident.main.id
        assert pilot.app.focused is moment.query_one("#at", Input)
        await pilot.press(*"35 minutes ago")
        assert screen_text(moment, "#resolved").startswith("→ ")
        await pilot.press("enter")

        strategy = await on_screen(pilot, choices.StrategyScreen)
        assert strategy.query_one("#new-branch", RadioButton).value  # the recommended default, kept
        await press_button(pilot, "next")

        plan = await on_screen(pilot, steps.PlanScreen)
        await wait_until(pilot, lambda: not plan.query_one("#start", Button).disabled, "the plan")
        assert "Create the branch 'main-restore-" in screen_text(plan, "#plan")
        assert str(plan.query_one("#start", Button).label) == "Create the restore branch"
        await start_run(pilot)

        restore = await step_finished(pilot, steps.RestoreScreen)
        assert app.runner is not None and app.runner.result.restore_branch is not None
        restored = app.runner.result.restore_branch
        assert restored.name.startswith("main-restore-")
        assert f"The branch {restored.name} is ready." in screen_text(restore, "#progress")
        await pilot.press("enter")

        verify = await step_finished(pilot, steps.VerifyScreen)
        assert check_verdict(verify, incident.canary) == "PASS"
        await pilot.press("enter")
        env_question = await on_screen(pilot, ConfirmModal)
        assert env_question.question == f"Write these changes to {incident.env_path}?"
        assert incident.env_path.read_bytes() == incident.env_before  # nothing written before the answer
        await press_button(pilot, "yes")
        env = await step_finished(pilot, steps.EnvScreen)
        # The diff shown before the question names the variables but masks the new branch's password.
        assert "DIRECT_URL" in screen_text(env, "#block")
        password = urlsplit(incident.env_value("DIRECT_URL")).password
        assert password and password not in all_text(env)
        await pilot.press("enter")

        # Prisma's stand-in runs `db pull` before the schema question; `generate` comes after the answer.
        await on_screen(pilot, ConfirmModal)
        assert incident.standin_commands() == ["db pull"]
        await press_button(pilot, "yes")
        await step_finished(pilot, steps.PrismaScreen)
        # One pull: the answer writes the schema whose diff was shown, without asking Prisma again.
        assert incident.standin_commands() == ["db pull", "generate"]
        assert app.runner.result.prisma is not None and app.runner.result.prisma["schema_written"]
        await pilot.press("enter")

        done = await quit_from_done(pilot)
        assert restored.id in screen_text(done, "#summary")
    assert app.return_value == 0
    assert visited == [
        "branch",
        "source",
        "moment",
        "strategy",
        "plan",
        "restore",
        "verify",
        "env",
        "prisma",
        "done",
    ]

    assert sorted(set(await incident.branch_names()) - set(names_before)) == [restored.name]
    assert await count_users(incident.env_value("DIRECT_URL")) >= 14
    assert incident.env_value("DATABASE_URL").endswith("&pgbouncer=true&connect_timeout=15")
    assert incident.env_value("NEXTAUTH_SECRET") == "s3cr3t-next-auth"
    assert await count_users(await incident.main_direct_url()) < 10  # the damaged branch is left as it was
    report = report_of(app)
    assert restored.id in report and restored.name in report


async def test_in_place_flow_types_the_branch_name_and_keeps_a_backup(incident: Incident) -> None:
    names_before = await incident.branch_names()
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        plan = await walk_to_plan(pilot, in_place=True)
        assert app.strategy == "in-place"
        assert str(plan.query_one("#start", Button).label) == "Restore in place…"
        await start_run(pilot)

        modal = await on_screen(pilot, TypeToConfirmModal)
        confirm = modal.query_one("#confirm", Button)
        assert confirm.disabled
        # A prefix or a near miss never enables Overwrite, and Enter does not submit it.
        await pilot.press(*"mai")
        assert confirm.disabled
        await pilot.press("n", "x")
        assert confirm.disabled
        await pilot.press("enter")
        assert pilot.app.screen is modal
        assert await incident.branch_names() == names_before
        await pilot.press("backspace")  # now it reads "main"
        assert not confirm.disabled
        await press_button(pilot, "confirm")

        restore = await step_finished(pilot, steps.RestoreScreen)
        assert "main is restored in place" in screen_text(restore, "#progress")
        await pilot.press("enter")
        await step_finished(pilot, steps.VerifyScreen)
        await pilot.press("enter")
        env = await step_finished(pilot, steps.EnvScreen)  # no question: nothing to change
        assert "keeps the connection strings" in screen_text(env, "#progress")
        await pilot.press("enter")
        # The schema question: No keeps schema.prisma as it was; `generate` still runs.
        await on_screen(pilot, ConfirmModal)
        await press_button(pilot, "no")
        await step_finished(pilot, steps.PrismaScreen)
        assert incident.standin_commands() == ["db pull", "generate"]
        await pilot.press("enter")
        await quit_from_done(pilot)
    assert app.return_value == 0

    new = sorted(set(await incident.branch_names()) - set(names_before))
    assert len(new) == 1 and new[0].startswith("main_old_")
    assert app.runner is not None and app.runner.result.backup_branch is not None
    assert app.runner.result.backup_branch["name"] == new[0]
    assert incident.env_path.read_bytes() == incident.env_before
    assert await count_users(incident.env_value("DIRECT_URL")) >= 14  # same URL, restored data
    assert new[0] in report_of(app)


async def test_drill_restores_verifies_and_cleans_up(incident: Incident) -> None:
    names_before = await incident.branch_names()
    app = make_app(incident.config(Mode.DRILL))
    visited = record_steps(app)
    async with app.run_test(size=SIZE) as pilot:
        branch = await on_screen(pilot, choices.BranchScreen)
        # The rail shows the drill's runbook: no strategy, env files or Prisma, and a clean-up step.
        rail = [line[2:] for line in rail_of(branch)]
        assert rail == [
            "Connect",
            "Project",
            "Branch",
            "Where from?",
            "Moment",
            "Plan",
            "Restore",
            "Verify",
            "Clean up",
            "Done",
        ]
        plan = await walk_to_plan(pilot)
        assert str(plan.query_one("#start", Button).label) == "Start the drill"
        assert "Delete the throwaway branch" in screen_text(plan, "#plan")
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        assert app.runner is not None and app.runner.result.restore_branch is not None
        drill_branch = app.runner.result.restore_branch.name
        assert drill_branch.startswith("drill-main-")
        assert drill_branch in await incident.branch_names()
        await pilot.press("enter")
        await step_finished(pilot, steps.VerifyScreen)
        await pilot.press("enter")
        cleanup = await step_finished(pilot, steps.CleanupScreen)
        assert "The drill branch is deleted." in screen_text(cleanup, "#progress")
        await pilot.press("enter")
        done = await quit_from_done(pilot)
        assert screen_text(done, "#summary").startswith("Drill passed")
    assert app.return_value == 0
    assert visited == ["branch", "source", "moment", "plan", "restore", "verify", "cleanup", "done"]
    assert await incident.branch_names() == names_before
    assert app.runner.result.deleted
    assert incident.env_path.read_bytes() == incident.env_before
    assert incident.standin_commands() == []
    assert "Restore drill" in report_of(app)


@pytest.mark.parametrize(
    ("mode", "learn", "visible"),
    [
        (Mode.NORMAL, None, False),
        (Mode.DEMO, None, True),
        (Mode.DRILL, None, True),
        (Mode.NORMAL, True, True),  # --learn turns it on outside the demo
    ],
)
async def test_the_why_panel_follows_the_mode_and_f1_toggles_it(
    tmp_path: Path, mode: Mode, learn: bool | None, visible: bool
) -> None:
    # No key: the wizard waits on the connect screen, so no sandbox is needed to look at the panel.
    app = make_app(WizardConfig(workdir=tmp_path, mode=mode, learn=learn))
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_screen(pilot, choices.ConnectScreen)
        why = screen.query_one("#why")
        assert why.display is visible
        assert isinstance(pilot.app.focused, Input)  # F1 works while the key box has the focus
        await pilot.press("f1")
        assert why.display is not visible
        await pilot.press("f1")
        assert why.display is visible


async def test_f1_choice_carries_over_to_the_next_screens(incident: Incident) -> None:
    app = make_app(incident.config(Mode.DEMO))
    async with app.run_test(size=SIZE) as pilot:
        branch = await on_screen(pilot, choices.BranchScreen)
        assert branch.query_one("#why").display
        await pilot.press("f1")
        assert not branch.query_one("#why").display
        await pilot.press("enter")
        await through_source(pilot)  # Neon history, the highlighted choice
        moment = await on_screen(pilot, choices.MomentScreen)
        assert not moment.query_one("#why").display
        await pilot.press("f1")
        assert moment.query_one("#why").display
        assert "Pick the moment just before the incident" in "\n".join(
            text_of(w) for w in moment.query("#why Static")
        )


# --- resume ----------------------------------------------------------------------------------------------


async def run_cli_until_killed(incident: Incident, crash_at: int) -> None:
    """`recovery-wizard restore --yes` in the app directory, SIGKILLed right after journal record N."""
    url = await incident.sandbox.serve()  # a subprocess cannot use the in-process transport
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEON_", "RECOVERY_WIZARD_CRASH"))}
    env.update(
        NEON_API_URL=url,
        NEON_API_KEY=incident.sandbox.api_key.reveal(),
        NEON_PROJECT_ID=incident.sandbox.project_id,
        RECOVERY_WIZARD_CRASH_AT=str(crash_at),
        TZ="Europe/Amsterdam",
        NO_COLOR="1",
    )
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
        cwd=incident.app_dir,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == -9, err.decode()


async def accept_resume(pilot: WizardPilot, run_id: str) -> None:
    offer = await on_screen(pilot, ConfirmModal)
    assert run_id in offer.question and "Continue it where it stopped?" in offer.question
    assert offer.yes == "Continue it"
    await press_button(pilot, "yes")


async def test_a_killed_cli_run_is_continued_by_the_wizard(
    incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after announcing the restore, before asking Neon: the wizard reconciles, then creates it once."""
    # Reconciling looks for the branch a few times, 1.5 s apart; it is not there, so do not wait long.
    monkeypatch.setattr(runner_module, "RECONCILE_PAUSE", 0.05)
    names_before = await incident.branch_names()
    await run_cli_until_killed(incident, crash_at=2)
    [run_dir] = list_runs(incident.app_dir)
    assert Journal.open(run_dir).begun_not_done("restore") is not None

    app = make_app(incident.config())
    visited = record_steps(app)
    async with app.run_test(size=SIZE) as pilot:
        await accept_resume(pilot, run_dir.name)
        restore = await step_finished(pilot, steps.RestoreScreen)
        assert visited == ["restore"]  # no choice screens: the plan is the killed run's
        assert "Resuming: looking for the branch" in screen_text(restore, "#log-text")
        await pilot.press("enter")
        summary = await finish_restore_after_verify(pilot, incident)
    assert app.return_value == 0

    new = sorted(set(await incident.branch_names()) - set(names_before))
    assert len(new) == 1 and new[0].startswith("main-restore-")
    assert new[0] in summary
    assert list_runs(incident.app_dir) == [run_dir]  # the same run, continued, not a new one
    assert Journal.open(run_dir).status == "done"
    assert await count_users(incident.env_value("DIRECT_URL")) >= 14


async def test_a_wizard_stopped_after_the_restore_continues_at_verify(incident: Incident) -> None:
    names_before = await incident.branch_names()
    first = make_app(incident.config())
    async with first.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        await stop_the_run(pilot)  # walk away mid-run
    assert first.return_value == 3  # interrupted: the documented interrupt path
    [run_dir] = list_runs(incident.app_dir)
    assert Journal.open(run_dir).done("restore") is not None
    assert Journal.open(run_dir).status == "interrupted"
    assert (run_dir / "report.md").is_file()
    restored = sorted(set(await incident.branch_names()) - set(names_before))
    assert len(restored) == 1

    second = make_app(incident.config())
    visited = record_steps(second)
    async with second.run_test(size=SIZE) as pilot:
        await accept_resume(pilot, run_dir.name)
        await on_screen(pilot, steps.VerifyScreen)
        assert visited == ["verify"]
        summary = await finish_restore_after_verify(pilot, incident)
    assert second.return_value == 0

    assert sorted(set(await incident.branch_names()) - set(names_before)) == restored
    assert restored[0] in summary
    assert list_runs(incident.app_dir) == [run_dir]
    assert await count_users(incident.env_value("DIRECT_URL")) >= 14


async def test_a_drill_stopped_after_verify_deletes_its_branch_on_resume(incident: Incident) -> None:
    names_before = await incident.branch_names()
    first = make_app(incident.config(Mode.DRILL))
    async with first.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        await pilot.press("enter")
        await step_finished(pilot, steps.VerifyScreen)
        await stop_the_run(pilot)  # walk away before the clean-up
    [run_dir] = list_runs(incident.app_dir)
    assert len(set(await incident.branch_names()) - set(names_before)) == 1

    second = make_app(incident.config(Mode.DRILL))
    visited = record_steps(second)
    async with second.run_test(size=SIZE) as pilot:
        await accept_resume(pilot, run_dir.name)
        cleanup = await step_finished(pilot, steps.CleanupScreen)
        assert visited == ["cleanup"]
        assert "The drill branch is deleted." in screen_text(cleanup, "#progress")
        await pilot.press("enter")
        await quit_from_done(pilot)
    assert second.return_value == 0
    assert await incident.branch_names() == names_before
