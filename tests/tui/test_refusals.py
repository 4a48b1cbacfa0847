"""Refusals in the wizard: a moment with words left over is not read, and a refused write is not redone.

Moments: the moment box uses the runbook's strict parser (every word of the input must be used), so a
trailing second time or span is refused under the box instead of silently winning. Writes: after the
stale `.env` write or a Start refused by another process's lock, the error box focuses Close and offers
no "Try again", so neither Enter nor Tab+Enter redoes the write over someone else's work.
"""

from __future__ import annotations

import signal

from textual.widgets import Button, Input

from recovery_wizard.recovery.journal import list_runs
from recovery_wizard.tui.app import make_app
from recovery_wizard.tui.screens import choices, steps
from recovery_wizard.tui.screens.modals import ConfirmModal, ErrorModal
from tests.tui.conftest import (
    SIZE,
    Incident,
    on_screen,
    press_button,
    screen_text,
    settle,
    start_run,
    step_finished,
    through_source,
    wait_until,
    walk_to_plan,
)
from tests.tui.test_one_run import hold_the_lock

# --- moments with words left over ------------------------------------------------------------------------


async def test_moments_with_trailing_words_are_refused_under_the_box(incident: Incident) -> None:
    cases = [
        ("yesterday 23:59 01:00", "has more than one time of day"),
        ("90 minutes ago 5 minutes", "goes on after “ago”"),
        ("3h ago 1h", "goes on after “ago”"),
    ]
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, choices.BranchScreen)
        await pilot.press("enter")
        await through_source(pilot)  # Neon history, the highlighted choice
        moment = await on_screen(pilot, choices.MomentScreen)
        box = moment.query_one("#at", Input)
        await pilot.press(*"3h ago 1h")  # typed once (as a user would); the others are pasted
        for text, refusal in cases:
            if box.value != text:
                box.value = text
                await pilot.pause()
            resolved = screen_text(moment, "#resolved")
            assert refusal in resolved, (text, resolved)
            assert "→" not in resolved, (text, resolved)
            assert moment.query_one("#resolved").has_class("error"), text
            assert moment.query_one("#next", Button).disabled, text
            await pilot.press("enter")
            assert pilot.app.screen is moment, text
            assert app.moment_text == "", text


# --- refused writes: Close has the focus, no Try again -----------------------------------------------------


async def test_a_stale_env_write_focuses_close_and_enter_does_not_rewrite(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        await pilot.press("enter")
        await step_finished(pilot, steps.VerifyScreen)
        await pilot.press("enter")
        await on_screen(pilot, ConfirmModal)
        # Someone edits the .env while the diff is on screen: the write is refused, nothing overwritten.
        edited = incident.env_before + b"\nEDITED_MEANWHILE=1\n"
        incident.env_path.write_bytes(edited)
        await press_button(pilot, "yes")
        modal = await on_screen(pilot, ErrorModal)
        assert "changed since recovery-wizard read it" in screen_text(modal, "#error-message")
        assert pilot.app.focused is modal.query_one("#close", Button)
        assert not modal.query("#retry")
        await pilot.press("enter")  # the Enter of someone who answered the diff: it closes, never retries
        done = await on_screen(pilot, steps.DoneScreen)
        await settle(pilot)
        assert screen_text(done, "#summary").startswith("The run ended: failed.")
        assert not any(isinstance(s, ConfirmModal) for s in pilot.app.screen_stack)  # no fresh diff asked
    assert incident.env_path.read_bytes() == edited
    assert app.runner is not None and app.runner.result.status == "failed"


async def test_a_start_refused_by_the_lock_focuses_close_and_tab_enter_writes_nothing(
    incident: Incident,
) -> None:
    holder = await hold_the_lock(incident.app_dir)
    try:
        names_before = await incident.branch_names()
        app = make_app(incident.config())
        async with app.run_test(size=SIZE) as pilot:
            plan = await walk_to_plan(pilot)
            await start_run(pilot)
            modal = await on_screen(pilot, ErrorModal)
            assert f"pid {holder.pid}" in screen_text(modal, "#error-message")
            assert pilot.app.focused is modal.query_one("#close", Button)
            assert not modal.query("#retry")
            await pilot.press("tab", "enter")
            await wait_until(pilot, lambda: pilot.app.screen is plan, "the plan again")
            await settle(pilot)
            assert not any(isinstance(s, ErrorModal) for s in pilot.app.screen_stack)
            assert not plan.query_one("#start", Button).disabled  # Start asks again, deliberately
        assert await incident.branch_names() == names_before
        assert list_runs(incident.app_dir) == []
        assert incident.env_path.read_bytes() == incident.env_before
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
