"""The step rail, one widget drawing its lines: what each step shows, and its colours following the theme."""

from __future__ import annotations

from pathlib import Path

from recovery_wizard.tui.app import WizardConfig, make_app
from recovery_wizard.tui.widgets.rail import StepRail

STEPS = [("connect", "Connect"), ("project", "Project"), ("branch", "Branch"), ("restore", "Restore")]


def test_each_step_shows_its_state_as_a_mark() -> None:
    states = {"connect": "done", "project": "skipped", "restore": "interrupted"}
    rail = StepRail(STEPS, "branch", states)
    assert rail.lines == ["✔ Connect", "– Project", "▶ Branch", "✘ Restore"]
    assert rail.mark("restore") == "✘"


async def test_the_rail_is_drawn_again_in_the_new_theme(tmp_path: Path) -> None:
    # No key: the wizard waits on the Connect screen, so no sandbox is needed to look at the rail.
    app = make_app(WizardConfig(workdir=tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        rail = app.screen.query_one(StepRail)
        # The title's line, and the current step's bar: as wide as the rail, in its own background.
        title, current = rail.render_line(0), rail.render_line(2)
        assert current.text == "▶ Connect".ljust(rail.content_size.width)
        assert len({segment.style.bgcolor for segment in current if segment.style}) == 1
        await pilot.press("f2")  # light/dark
        await pilot.pause()
        assert app.theme == "textual-light"
        assert rail.render_line(0) != title
        assert rail.render_line(2).text == current.text
