"""Bad input and bad luck on each screen: the wizard refuses clearly, stays put, and changes nothing it should not.

Neon's failures are injected into the sandbox's API (``recovery_wizard/sandbox/faults.py``); the rest is
what a tired user types.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from textual.widgets import Button, DataTable, Input

from recovery_wizard.recovery import runner as runner_module
from recovery_wizard.recovery.journal import list_runs
from recovery_wizard.sandbox.faults import parse_fault
from recovery_wizard.tui.app import make_app
from recovery_wizard.tui.screens import choices, steps
from recovery_wizard.tui.screens.modals import ErrorModal, TypeToConfirmModal
from tests.tui.conftest import (
    SIZE,
    Incident,
    WizardPilot,
    all_text,
    check_verdict,
    count_users,
    on_screen,
    press_button,
    screen_text,
    settle,
    start_run,
    step_finished,
    through_source,
    walk_to_plan,
)

# --- connect ---------------------------------------------------------------------------------------------


async def test_a_refused_or_empty_api_key_keeps_the_wizard_on_connect(incident: Incident) -> None:
    app = make_app(incident.config(api_key=None))
    async with app.run_test(size=SIZE) as pilot:
        connect = await on_screen(pilot, choices.ConnectScreen)
        key_box = connect.query_one("#api-key", Input)
        assert pilot.app.focused is key_box

        await pilot.press("enter")
        assert screen_text(connect, "#status") == "Paste the API key first."
        assert connect.query_one("#status").has_class("error")

        wrong = "napi_nope0"
        await pilot.press(*wrong, "enter")
        await settle(pilot)
        assert pilot.app.screen is connect
        status = screen_text(connect, "#status")
        assert status.startswith("The API key was refused"), status
        assert connect.query_one("#status").has_class("error")
        assert wrong not in all_text(connect)  # neither echoed nor shown in the message
        assert not connect.query_one("#next", Button).disabled  # free to try another key
        assert app.client is None

        # The right key (pasted: a 45-character key typed key by key costs seconds) goes on.
        key_box.value = incident.sandbox.api_key.reveal()
        await pilot.press("enter")
        await on_screen(pilot, choices.BranchScreen)


# --- branch ----------------------------------------------------------------------------------------------


async def test_a_branch_filter_that_matches_nothing_disables_continue(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        branch = await on_screen(pilot, choices.BranchScreen)
        table = branch.query_one("#branches", DataTable)
        everything = table.row_count
        assert everything == len(await incident.branches())

        await pilot.press(*"no-such-branch")
        assert screen_text(branch, "#empty").startswith("No branch matches “no-such-branch”")
        assert branch.query_one("#empty").has_class("error")
        assert table.row_count == 0
        assert branch.query_one("#next", Button).disabled
        await pilot.press("enter")
        assert pilot.app.screen is branch and app.branch is None

        # Clearing the filter brings every branch back, and Continue with it.
        await pilot.press(*["backspace"] * len("no-such-branch"))
        assert table.row_count == everything
        assert screen_text(branch, "#empty") == ""
        assert not branch.query_one("#next", Button).disabled


# --- moment ----------------------------------------------------------------------------------------------


async def test_moments_outside_the_window_or_unreadable_are_refused_under_the_box(incident: Incident) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cases = [
        ("10 days ago", "which is before the oldest restorable moment"),
        ("in 2 hours", "is in the future"),
        (tomorrow, "is in the future"),
        ("when the cat sat on the mat", "Could not read “when the cat sat on the mat” as a moment in time."),
    ]
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, choices.BranchScreen)
        await pilot.press("enter")
        await through_source(pilot)  # Neon history, the highlighted choice
        moment = await on_screen(pilot, choices.MomentScreen)
        box = moment.query_one("#at", Input)
        await pilot.press(*"10 days ago")  # typed once; the others are pasted (each key costs ~60 ms)
        for text, refusal in cases:
            if box.value != text:
                box.value = text
                await pilot.pause()
            resolved = screen_text(moment, "#resolved")
            assert refusal in resolved, (text, resolved)
            assert moment.query_one("#resolved").has_class("error"), text
            assert moment.query_one("#next", Button).disabled, text
            await pilot.press("enter")
            assert pilot.app.screen is moment, text
            assert app.moment_text == "", text
        # Garbage gets the accepted forms spelled out on the same screen.
        accepted = all_text(moment)
        assert "Accepted:" in accepted and "RFC 3339" in accepted and "90m ago" in accepted

        # And a good moment, over the bad one, is accepted.
        box.value = "35 minutes ago"
        await pilot.pause()
        assert not moment.query_one("#next", Button).disabled
        await pilot.press("enter")
        await on_screen(pilot, choices.StrategyScreen)
        assert app.moment_text == "35 minutes ago"


# --- restore: Neon answers with errors ---------------------------------------------------------------------


async def test_restore_retries_through_two_423s(incident: Incident) -> None:
    faults = incident.sandbox.app.faults
    faults.append(parse_fault("POST /projects/*/branches#1-2=423:retry-after=0"))
    names_before = await incident.branch_names()
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        restore = await step_finished(pilot, steps.RestoreScreen)
        assert app.runner is not None and app.runner.result.restore_branch is not None
        assert "is ready" in screen_text(restore, "#progress")
    assert incident.sandbox.app.injected == 2
    new = sorted(set(await incident.branch_names()) - set(names_before))
    assert new == [app.runner.result.restore_branch.name]


async def reach_the_error_modal(pilot: WizardPilot) -> ErrorModal:
    await walk_to_plan(pilot)
    await start_run(pilot)
    return await on_screen(pilot, ErrorModal)


async def test_a_423_that_does_not_clear_offers_try_again(
    incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Try again first looks for the branch the failed attempt announced (1.5 s apart); it was never made.
    monkeypatch.setattr(runner_module, "RECONCILE_PAUSE", 0.05)
    faults = incident.sandbox.app.faults
    faults.append(parse_fault("POST /projects/*/branches#*=423:retry-after=0"))
    names_before = await incident.branch_names()
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        modal = await reach_the_error_modal(pilot)
        message = screen_text(modal, "#error-message")
        assert "project already has running conflicting operations" in message
        assert "HTTP 423" in screen_text(modal, "#error-detail")
        assert re.search(r"request id [0-9a-f-]{36}", all_text(modal))  # the one to quote to Neon's support
        assert screen_text(modal, "#error-hint").startswith("Next: ")
        assert pilot.app.focused is modal.query_one("#retry", Button)
        assert await incident.branch_names() == names_before

        # The other operation finished: Try again (Enter, it has the focus) creates the branch, once.
        faults.clear()
        await pilot.press("enter")
        await step_finished(pilot, steps.RestoreScreen)
    assert app.runner is not None and app.runner.result.restore_branch is not None
    new = sorted(set(await incident.branch_names()) - set(names_before))
    assert new == [app.runner.result.restore_branch.name]


async def close_the_error_and_read_the_summary(pilot: WizardPilot) -> str:
    await press_button(pilot, "close")
    done = await on_screen(pilot, steps.DoneScreen)
    await settle(pilot)
    summary = screen_text(done, "#summary")
    assert done.query_one("#summary").has_class("error")
    await pilot.press("enter")  # Quit
    return summary


async def test_closing_the_error_ends_on_done_with_a_failed_run_and_a_report(incident: Incident) -> None:
    incident.sandbox.app.faults.append(parse_fault("POST /projects/*/branches#*=423:retry-after=0"))
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await reach_the_error_modal(pilot)
        summary = await close_the_error_and_read_the_summary(pilot)
    assert summary.startswith("The run ended: failed.")
    assert "Step 'restore' failed" in summary
    assert "recovery-wizard restore --resume" in summary
    assert app.runner is not None and app.runner.result.status == "failed"
    report = app.runner.result.report_path
    assert report is not None and report.is_file()
    assert incident.env_path.read_bytes() == incident.env_before


async def test_a_run_failed_through_the_error_modal_exits_1(incident: Incident) -> None:
    incident.sandbox.app.faults.append(parse_fault("POST /projects/*/branches#*=423:retry-after=0"))
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await reach_the_error_modal(pilot)
        await close_the_error_and_read_the_summary(pilot)
    assert app.return_value == 1


async def test_a_permanent_500_on_the_restore_shows_the_error(
    incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reconciling waits 1.5 s between looks; shortened so the loop shows within the test's patience.
    monkeypatch.setattr(runner_module, "RECONCILE_PAUSE", 0.01)
    incident.sandbox.app.faults.append(parse_fault("POST /projects/*/branches#*=500:when=before"))
    names_before = await incident.branch_names()
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        modal = await on_screen(pilot, ErrorModal)
        assert "HTTP 500" in all_text(modal) and "internal server error" in all_text(modal)
        assert modal.query("#retry")
        summary = await close_the_error_and_read_the_summary(pilot)
    assert summary.startswith("The run ended: failed.")
    assert app.runner is not None and app.runner.result.report_path is not None
    assert app.runner.result.report_path.is_file()
    assert await incident.branch_names() == names_before


async def test_an_env_step_that_fails_is_not_reported_as_done(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        await pilot.press("enter")
        await step_finished(pilot, steps.VerifyScreen)
        incident.env_path.unlink()  # gone between the plan and the env step (a redeploy, a git checkout…)
        await pilot.press("enter")
        modal = await on_screen(pilot, ErrorModal)
        assert "There is no env file" in screen_text(modal, "#error-message")
        summary = await close_the_error_and_read_the_summary(pilot)
    assert summary.startswith("The run ended: failed."), summary
    assert app.runner is not None and app.runner.result.status == "failed"
    assert app.return_value == 1


# --- in place: cancelling ----------------------------------------------------------------------------------


async def test_escape_in_the_type_to_confirm_modal_overwrites_nothing(incident: Incident) -> None:
    """The typed confirmation is asked on the plan, before the run begins: Esc leaves the plan on screen,
    Start ready again, no run begun (no journal, nothing for Done to tick)."""
    names_before = await incident.branch_names()
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        plan = await walk_to_plan(pilot, in_place=True)
        await start_run(pilot)
        await on_screen(pilot, TypeToConfirmModal)
        await pilot.press("escape")
        assert await on_screen(pilot, steps.PlanScreen) is plan
        assert not plan.query_one("#start", Button).disabled
        assert app.runner is None and list_runs(incident.app_dir) == []
        await pilot.press("ctrl+q")
    assert app.return_value == 0  # nothing was changed
    assert await incident.branch_names() == names_before
    assert await count_users(incident.env_value("DIRECT_URL")) < 10  # still the damaged data
    assert incident.env_path.read_bytes() == incident.env_before


# --- verification fails -----------------------------------------------------------------------------------


async def test_a_failing_check_stops_before_the_env_files_and_exits_4(incident: Incident) -> None:
    check = 'SELECT count(*) >= 100 FROM "User"'
    app = make_app(incident.config(checks=[check]))
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        await pilot.press("enter")
        verify = await step_finished(pilot, steps.VerifyScreen)
        assert check_verdict(verify, check) == "FAIL"
        assert verify.query_one("#progress").has_class("error")
        assert "Verification failed" in screen_text(verify, "#progress")
        continue_button = verify.query_one("#next", Button)
        assert str(continue_button.label) == "See the summary"
        assert pilot.app.focused is continue_button
        await pilot.press("enter")
        done = await on_screen(pilot, steps.DoneScreen)  # straight to Done: no env, no Prisma
        await settle(pilot)
        assert screen_text(done, "#summary").startswith("The run ended: verification-failed.")
        await pilot.press("enter")
    assert app.return_value == 4
    assert incident.env_path.read_bytes() == incident.env_before
    assert incident.standin_commands() == []
    assert app.runner is not None and app.runner.result.report_path is not None
    assert "FAILED" in app.runner.result.report_path.read_text()
