"""Back (Esc and the Back button) returns to the previous choice the user saw, never to a skipped one."""

from __future__ import annotations

from datetime import UTC, datetime

from textual.widgets import Button, Input

from recovery_wizard.sandbox.scenarios import build_scenario
from recovery_wizard.tui.app import make_app
from recovery_wizard.tui.screens import choices, sources
from recovery_wizard.tui.screens.modals import ErrorModal
from tests.tui.conftest import SIZE, Incident, all_text, on_screen, settle, through_source


async def test_with_one_project_back_on_the_branch_screen_goes_nowhere(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        branch = await on_screen(pilot, choices.BranchScreen)
        assert "project" in app.skipped_steps
        # The project was chosen for the user: there is no earlier choice, so Back is disabled and Esc stays.
        assert branch.query_one("#back", Button).disabled
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is branch and app.current == "branch"

        await pilot.press("enter")  # main
        await through_source(pilot)  # Neon history, the highlighted choice
        moment = await on_screen(pilot, choices.MomentScreen)
        assert not moment.query_one("#back", Button).disabled
        assert app.focused is moment.query_one("#at", Input)
        await pilot.press("escape")
        await on_screen(pilot, sources.SourceScreen)  # "Where from?" first, then the branch
        assert app.current == "source"
        await pilot.press("escape")
        back = await on_screen(pilot, choices.BranchScreen)
        assert back is not branch and app.current == "branch"
        assert "project" in app.done_steps  # the rail still shows the skipped step as done


async def test_with_two_projects_back_from_the_branch_screen_returns_to_the_project_list(
    incident: Incident,
) -> None:
    sandbox = incident.sandbox
    assert sandbox.engine is not None
    other = await sandbox.engine.create_project(build_scenario("homecheff", datetime.now(UTC)))
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        projects = await on_screen(pilot, choices.ProjectScreen)
        assert not app.skipped_steps
        # The first choice: nothing before it but the connection, so Back is disabled here.
        assert projects.query_one("#back", Button).disabled
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is projects

        await pilot.press("enter")
        branch = await on_screen(pilot, choices.BranchScreen)
        assert app.project is not None and app.project.id in {sandbox.project_id, other.id}
        assert not branch.query_one("#back", Button).disabled
        await pilot.press("escape")
        await on_screen(pilot, choices.ProjectScreen)
        assert app.current == "project" and "project" not in app.done_steps


async def test_a_project_id_the_key_does_not_list_is_not_swapped_for_another(incident: Incident) -> None:
    app = make_app(incident.config(project_id="no-such-project-123"))
    async with app.run_test(size=SIZE) as pilot:
        modal = await on_screen(pilot, ErrorModal)
        # Neon's 404 for the id given, not the branch list of some other project.
        assert "HTTP 404" in all_text(modal) and "no-such-project-123" in all_text(modal)
        assert app.project is None


async def test_a_project_id_among_several_opens_that_project_with_back_disabled(incident: Incident) -> None:
    sandbox = incident.sandbox
    assert sandbox.engine is not None
    other = await sandbox.engine.create_project(build_scenario("homecheff", datetime.now(UTC)))
    app = make_app(incident.config(project_id=other.id))
    async with app.run_test(size=SIZE) as pilot:
        branch = await on_screen(pilot, choices.BranchScreen)
        assert app.project is not None and app.project.id == other.id
        assert {b.project_id for b in app.branches} == {other.id}
        assert branch.query_one("#back", Button).disabled  # chosen by the flag: nothing to go back to
