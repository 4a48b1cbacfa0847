"""The wizard under stress: quitting mid-run, errors and workers that outlive their screen, keys mashed.

Each test drives the real wizard against the homecheff sandbox and asserts what happened to the world (the
journal, the report, the branches, the .env) as well as what the screen shows.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from textual import events
from textual._time import get_time  # the clock of events.Key.time
from textual.widgets import Button, Collapsible, Input, Static

from recovery_wizard.recovery.journal import Journal, list_runs
from recovery_wizard.recovery.runner import find_search
from recovery_wizard.sandbox.faults import parse_fault
from recovery_wizard.tui.app import WizardApp, linked_search, make_app
from recovery_wizard.tui.screens import choices, steps
from recovery_wizard.tui.screens.base import WizardScreen
from recovery_wizard.tui.screens.modals import ConfirmModal, ErrorModal
from recovery_wizard.tui.widgets.rail import StepRail
from tests.tui.conftest import (
    Incident,
    WizardPilot,
    all_text,
    on_screen,
    press_button,
    screen_text,
    settle,
    start_run,
    step_finished,
    text_of,
    through_source,
    wait_until,
    walk_to_plan,
)
from tests.tui.test_flow import finish_restore_after_verify

SIZE = (100, 32)


def rail_mark(screen: WizardScreen, key: str) -> str:
    return screen.query_one(StepRail).mark(key)


# --- Ctrl+Q ------------------------------------------------------------------------------------------------


async def test_ctrl_q_mid_restore_asks_first_then_takes_the_interrupt_path(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await on_screen(pilot, steps.RestoreScreen)
        await pilot.press("ctrl+q")
        question = await on_screen(pilot, ConfirmModal)
        assert "Stop it here?" in question.question
        assert pilot.app.focused is question.query_one("#no", Button)  # the safe answer is the default
        await pilot.press("enter")  # No: keep going
        restore = await step_finished(pilot, steps.RestoreScreen)
        assert app.return_value is None and app.runner is not None
        assert app.runner.result.restore_branch is not None
        branch = app.runner.result.restore_branch
        await pilot.press("ctrl+q")
        await on_screen(pilot, ConfirmModal)
        await press_button(pilot, "yes")
        await wait_until(pilot, lambda: app.return_value is not None, "the wizard to exit")
        assert restore is not None
    assert app.return_value == 3
    [run_dir] = list_runs(incident.app_dir)
    journal = Journal.open(run_dir)
    assert journal.status == "interrupted" and journal.resumable
    report = (run_dir / "report.md").read_text()
    assert "interrupted" in report and branch.id in report
    summary = app.closing_summary()
    assert f"recovery-wizard restore --resume {run_dir.name}" in summary
    assert branch.id in summary and str(run_dir / "report.md") in summary
    assert incident.env_path.read_bytes() == incident.env_before


async def test_ctrl_q_on_done_after_a_successful_run_exits_0_and_the_summary_is_printable(
    incident: Incident,
) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        await pilot.press("enter")
        verify = await step_finished(pilot, steps.VerifyScreen)
        await pilot.press("enter")
        assert verify is not None
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
        await pilot.press("ctrl+q")
    assert app.return_value == 0
    assert app.runner is not None and app.runner.result.restore_branch is not None
    summary = app.closing_summary()
    assert app.runner.result.restore_branch.id in summary
    assert str(app.runner.result.report_path) in summary
    assert "recovery-wizard env rollback" in summary and "neonctl branches delete" in summary
    assert "hosting provider" in summary  # what is left to do by hand


async def test_ctrl_q_after_a_step_ended_the_run_still_writes_the_record(incident: Incident) -> None:
    """Verification failed, the user quits from the verify screen instead of going to Done: the incident
    record and the journal's end are written all the same, and the exit code is the run's (4)."""
    app = make_app(incident.config(checks=['SELECT count(*) >= 100 FROM "User"']))
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        await pilot.press("enter")
        await step_finished(pilot, steps.VerifyScreen)
        await pilot.press("ctrl+q")  # the run has ended: no question, quit at once
    assert app.return_value == 4
    [run_dir] = list_runs(incident.app_dir)
    assert Journal.open(run_dir).status == "verification-failed"
    assert "FAILED" in (run_dir / "report.md").read_text()


# --- connect -----------------------------------------------------------------------------------------------


async def test_a_refused_key_from_the_environment_offers_a_field_for_another(incident: Incident) -> None:
    app = make_app(incident.config(api_key="napi_refused0"))
    async with app.run_test(size=SIZE) as pilot:
        connect = await on_screen(pilot, choices.ConnectScreen)
        await settle(pilot)
        assert screen_text(connect, "#status").startswith("The API key was refused")
        field = connect.query_one("#api-key", Input)
        assert pilot.app.focused is field
        field.value = incident.sandbox.api_key.reveal()
        await pilot.press("enter")
        await on_screen(pilot, choices.BranchScreen)


async def test_after_an_error_box_is_closed_connect_is_usable_again(incident: Incident) -> None:
    # An answer that is not JSON (not a refused key): the error box, then Close.
    incident.sandbox.app.faults.append(parse_fault("GET /projects=malformed"))
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        modal = await on_screen(pilot, ErrorModal)
        message = screen_text(modal, "#error-message")
        await press_button(pilot, "close")
        connect = await on_screen(pilot, choices.ConnectScreen)
        assert message.splitlines()[0] in screen_text(connect, "#status")
        assert connect.query_one("#status").has_class("error")
        assert not connect.query_one("#next", Button).disabled
        await press_button(pilot, "next")  # the fault was once: the same key now works
        await on_screen(pilot, choices.BranchScreen)


async def test_after_an_error_box_is_closed_the_plan_offers_back_and_check_again(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, choices.BranchScreen)
        await pilot.press("enter")
        await through_source(pilot)  # Neon history, the highlighted choice
        await on_screen(pilot, choices.MomentScreen)
        await pilot.press(*"35 minutes ago", "enter")
        await on_screen(pilot, choices.StrategyScreen)
        # The strategy screen counts the writes since the moment (reading the databases too): once it has,
        # the plan's own look at the branch's databases gets an answer that is not JSON.
        await wait_until(pilot, lambda: app.lost is not None, "the writes since the moment")
        incident.sandbox.app.faults.append(parse_fault("GET /projects/*/branches/*/databases=malformed"))
        await press_button(pilot, "next")
        await on_screen(pilot, ErrorModal)
        await press_button(pilot, "close")
        plan = await on_screen(pilot, steps.PlanScreen)
        assert "could not be checked" in screen_text(plan, "#plan")
        recheck = plan.query_one("#recheck", Button)
        assert recheck.display and pilot.app.focused is recheck
        assert not plan.query_one("#back", Button).disabled
        await pilot.press("enter")
        await wait_until(pilot, lambda: not plan.query_one("#start", Button).disabled, "the plan")
    assert app.runner is None


async def test_after_an_error_box_is_closed_the_search_says_it_failed(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, choices.BranchScreen)
        await pilot.press("enter")
        await through_source(pilot)  # Neon history, the highlighted choice
        moment = await on_screen(pilot, choices.MomentScreen)
        await pilot.press(*"35 minutes ago")
        # The search's first look (the branch's databases) gets an answer that is not JSON.
        incident.sandbox.app.faults.append(parse_fault("GET /projects/*/branches/*/databases=malformed"))
        moment.query_one("#find-box", Collapsible).collapsed = False
        await pilot.pause()
        moment.pressed_find()
        await on_screen(pilot, ErrorModal)
        await press_button(pilot, "close")
        await on_screen(pilot, choices.MomentScreen)
        status = moment.query_one("#find-status")
        assert "not JSON" in text_of(status) and status.has_class("error")
        assert not moment.query_one("#next", Button).disabled  # the moment typed is still good to go on


# --- workers that outlive their screen ---------------------------------------------------------------------


async def test_esc_while_the_plan_is_checked_leaves_no_error_behind(incident: Incident) -> None:
    # The plan's look at the branch's roles takes two seconds: time to press Esc while it is checked.
    incident.sandbox.app.faults.append(
        parse_fault("GET /projects/*/branches/*/roles=stall:seconds=2,when=before")
    )
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, choices.BranchScreen)
        await pilot.press("enter")
        await through_source(pilot)  # Neon history, the highlighted choice
        await on_screen(pilot, choices.MomentScreen)
        await pilot.press(*"35 minutes ago", "enter")
        await on_screen(pilot, choices.StrategyScreen)
        await press_button(pilot, "next")
        await on_screen(pilot, steps.PlanScreen)
        await pilot.press("escape")  # at once, while the plan is being checked
        strategy = await on_screen(pilot, choices.StrategyScreen)
        await asyncio.sleep(2.5)
        await settle(pilot)
        assert pilot.app.screen is strategy, [type(s).__name__ for s in pilot.app.screen_stack]
        await press_button(pilot, "next")  # and the wizard still works
        plan = await on_screen(pilot, steps.PlanScreen)
        await wait_until(pilot, lambda: not plan.query_one("#start", Button).disabled, "the plan")


async def test_a_search_left_behind_never_lands_on_a_later_screen_or_fails_the_run(
    incident: Incident,
) -> None:
    # A canary false everywhere: after a few looks at the past the search gives up, on the screen it came
    # from, which by then the user has left.
    app = make_app(incident.config(checks=["SELECT false"]))
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, choices.BranchScreen)
        await pilot.press("enter")
        await through_source(pilot)  # Neon history, the highlighted choice
        moment = await on_screen(pilot, choices.MomentScreen)
        await pilot.press(*"35 minutes ago")
        moment.query_one("#find-box", Collapsible).collapsed = False
        await pilot.pause()
        moment.pressed_find()  # the search starts…
        await pilot.pause(0.05)
        moment.pressed_next()  # …and the user goes on before it ends
        await on_screen(pilot, choices.StrategyScreen)
        await asyncio.sleep(4)
        await settle(pilot)
        assert not any(isinstance(s, ErrorModal) for s in pilot.app.screen_stack)
        assert isinstance(pilot.app.screen, choices.StrategyScreen)
        assert app.search is None


# --- Done and the rail say what happened ---------------------------------------------------------------------


async def test_after_a_failed_verify_done_and_the_rail_tick_only_what_ran(incident: Incident) -> None:
    app = make_app(incident.config(checks=['SELECT count(*) >= 100 FROM "User"']))
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        await pilot.press("enter")
        await step_finished(pilot, steps.VerifyScreen)
        await pilot.press("enter")
        done = await on_screen(pilot, steps.DoneScreen)
        await settle(pilot)
        marks = {key: rail_mark(done, key) for key in ("plan", "restore", "verify", "env", "prisma")}
        assert marks == {"plan": "✔", "restore": "✔", "verify": "✘", "env": "·", "prisma": "·"}
        listed = screen_text(done, "#steps")
        await pilot.press("enter")
    assert "✔ Restore" in listed and "✘ Verify (failed)" in listed
    assert "· Env files (not run)" in listed and "· Prisma (not run)" in listed


# --- the .env question at 80×24, Enter on the strategy list, By hand -------------------------------------------


async def test_at_80x24_the_env_question_shows_the_diff_it_asks_about(incident: Incident) -> None:
    app = make_app(incident.config(learn=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await walk_to_plan(pilot)
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        await pilot.press("enter")
        await step_finished(pilot, steps.VerifyScreen)
        await pilot.press("enter")
        question = await on_screen(pilot, ConfirmModal)
        details = question.query_one("#details-text", Static)
        assert "DIRECT_URL" in text_of(details) and "DATABASE_URL" in text_of(details)
        region = question.query_one("#details").region
        assert region.height >= 3 and region.y >= 0 and region.bottom <= 24
        assert pilot.app.focused is question.query_one("#no", Button)
        await pilot.press("enter")  # No
        await step_finished(pilot, steps.EnvScreen)
    assert incident.env_path.read_bytes() == incident.env_before


async def test_enter_on_the_strategy_list_chooses_and_goes_on(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, choices.BranchScreen)
        await pilot.press("enter")
        await through_source(pilot)  # Neon history, the highlighted choice
        await on_screen(pilot, choices.MomentScreen)
        await pilot.press(*"35 minutes ago", "enter")
        await on_screen(pilot, choices.StrategyScreen)
        await pilot.press("enter")
        await on_screen(pilot, steps.PlanScreen)
    assert app.strategy == "new-branch"


async def test_by_hand_shows_this_runs_own_restore_command(incident: Incident) -> None:
    app = make_app(incident.config(learn=True))
    async with app.run_test(size=(140, 40)) as pilot:
        plan_screen = await walk_to_plan(pilot)
        plan = app.plan
        assert plan is not None
        command = text_of(plan_screen.query(".why-code").last())
        stamp = plan.moment.utc.strftime("%Y-%m-%dT%H:%M:%S")
        assert command.startswith(f"neonctl branches create --project-id {plan.project.id}")
        assert f"--name {plan.name}" in command and f"--parent {stamp}" in command
        assert "@" not in command  # neonctl has no name@time form
        await pilot.press("ctrl+q")


# --- keys mashed -------------------------------------------------------------------------------------------


class HeldEnter:
    """Enter held down: a press every 0.1 s, each carrying the time the keyboard sent it.

    The wizard judges a new press by the key's own time (events.Key.time), so keys typed while it was busy
    keep their spacing. Pressed through the pilot, a key's time is when the test's loop got to it: a loaded
    machine stalling that loop for a second would space two repeats by the arming time and turn one into a
    deliberate press. Here the keys' times never lie further apart than half the arming time (a held key
    repeats much faster than that) and catch up with the clock at that pace after a stall.
    """

    def __init__(self, pilot: WizardPilot) -> None:
        self.pilot = pilot
        app = pilot.app
        assert isinstance(app, WizardApp)
        self.gap = app.config.arm_seconds / 2
        self.at = get_time()

    async def press(self) -> None:
        self.at = min(get_time(), self.at + self.gap)
        key = events.Key("enter", "\r")
        key.time = self.at
        key.set_sender(self.pilot.app)
        self.pilot.app.post_message(key)
        await self.pilot.pause()

    async def hold(self, seconds: float, until: type[Any] | None = None) -> None:
        """Held for ``seconds``, or until a screen of type ``until`` shows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            if until is not None and isinstance(self.pilot.app.screen, until):
                return
            await self.press()
            await asyncio.sleep(0.1)
        assert until is None, f"{until} never showed; the wizard shows {type(self.pilot.app.screen).__name__}"


async def test_enter_mashed_from_the_plan_never_answers_what_it_did_not_see(incident: Incident) -> None:
    app = make_app(incident.config(arm_seconds=1.0))
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await asyncio.sleep(1.1)  # the plan was read: Start takes a new press
        await pilot.press("enter")
        assert app.runner is not None
        # Held from the plan on: the restore runs and ends, but its result is not skipped past.
        held = HeldEnter(pilot)
        await held.hold(6)
        restore = await step_finished(pilot, steps.RestoreScreen)
        await held.hold(1.5)
        assert pilot.app.screen is restore
        await asyncio.sleep(1.1)
        await pilot.press("enter")  # a new press: on to verify
        await step_finished(pilot, steps.VerifyScreen)
        await asyncio.sleep(1.1)
        await pilot.press("enter")  # a new press, then held: the .env question must not take the repeats
        held = HeldEnter(pilot)
        await held.hold(45, until=ConfirmModal)
        question = pilot.app.screen
        await held.hold(2)
        assert pilot.app.screen is question, "a repeated Enter answered the .env question"
        assert app.return_value is None and app.runner.result.status == "running"
        assert incident.env_path.read_bytes() == incident.env_before
        await asyncio.sleep(1.1)  # a pause, then a deliberate answer
        await press_button(pilot, "yes")
        await step_finished(pilot, steps.EnvScreen)
    assert incident.env_path.read_bytes() != incident.env_before


async def test_a_repeated_enter_does_not_press_quit_on_done(incident: Incident) -> None:
    app = make_app(incident.config(arm_seconds=1.0, checks=['SELECT count(*) >= 100 FROM "User"']))
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        await asyncio.sleep(1.1)
        await pilot.press("enter")
        await step_finished(pilot, steps.RestoreScreen)
        await asyncio.sleep(1.1)
        await pilot.press("enter")
        await step_finished(pilot, steps.VerifyScreen)
        await asyncio.sleep(1.1)
        await pilot.press("enter")  # See the summary
        held = HeldEnter(pilot)
        for _ in range(10):  # …and Enter again and again while Done appears
            await held.press()
            await asyncio.sleep(0.1)
        await on_screen(pilot, steps.DoneScreen)
        await settle(pilot)
        assert app.return_value is None, "a repeated Enter pressed Quit"
        await asyncio.sleep(1.1)
        await pilot.press("enter")
    assert app.return_value == 4


# --- which find-moment search a run links ------------------------------------------------------------------


async def test_a_search_is_linked_only_to_a_run_of_its_project_branch_and_moment(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await walk_to_plan(pilot)
        plan = app.plan
        assert plan is not None
        await pilot.press("ctrl+q")
    at = plan.moment.utc
    search = {"project_id": plan.project.id, "branch_id": plan.branch.id, "last_good": at, "canary": "x"}
    assert linked_search(search, plan) is search
    assert linked_search({**search, "branch_id": "br-another"}, plan) is None
    assert linked_search({**search, "project_id": "another"}, plan) is None
    assert linked_search({**search, "last_good": at - timedelta(seconds=5)}, plan) is None
    # A CLI find-moment run on another branch that ended at the same moment is not this run's search.
    journal = Journal.create(incident.app_dir)
    journal.append(
        "run",
        "start",
        command="find-moment",
        canary="x",
        branch={"id": "br-another", "name": "preview"},
        project={"id": plan.project.id},
    )
    journal.append("run", "end", status="done", last_good=at, first_bad=at + timedelta(seconds=1))
    assert find_search(incident.app_dir, at, project_id=plan.project.id, branch_id=plan.branch.id) is None
    assert find_search(incident.app_dir, at, project_id=plan.project.id, branch_id="br-another") is not None
    assert datetime.now(UTC) > at


__all__ = ["WizardPilot", "all_text", "finish_restore_after_verify"]
