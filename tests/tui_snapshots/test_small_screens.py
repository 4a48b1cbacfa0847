"""Small terminals: every button shows every word of its label, and a huge paste cannot push a screen away.

Read back from what the terminal would show: a button's words must be inside its own cells, on screen. The
smallest size the wizard promises to be usable at is 40x12; smaller ones must still show whole words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.app import App
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, Static

from recovery_wizard.tui.app import Mode, summary_text, undo_lines
from recovery_wizard.tui.screens.modals import ConfirmModal, ErrorModal, TypeToConfirmModal
from recovery_wizard.tui.screens.steps import DoneScreen, PlanScreen, VerifyScreen
from tests.tui_snapshots.scenes import (
    INTRO,
    SNAPSHOTS,
    SnapCompare,
    finish,
    finished_run,
    make_wizard,
    paste,
    push_modal,
    show,
    show_run,
    steady,
    verification,
    wizard,
)
from tests.tui_snapshots.test_hostile import terminal
from tests.tui_snapshots.test_screens import API_KEY
from tests.tui_snapshots.test_sources_more import backup_files_scene, merge_plan_scene

SMALL_SIZES = [(40, 12), (30, 10), (24, 8)]


def cut_words(app: App[Any]) -> list[str]:
    """Buttons on the screen whose label is not shown whole inside the button's cells."""
    _, text = terminal(app)
    lines = text.split("\n")
    width, height = app.size
    cut = []
    # The buttons that move the wizard on: in the action row or a modal's. (Buttons inside the step's body
    # scroll with it; a person scrolls to them.)
    for button in app.screen.query("#actions Button, .modal-actions Button").results(Button):
        if not button.display or not button.visible:
            continue
        region = button.region
        inside = region.x >= 0 and region.y >= 0 and region.right <= width and region.bottom <= height
        shown = " ".join(line[region.x : region.right] for line in lines[region.y : region.bottom]).split()
        label = str(button.label).split()
        if not inside or shown != label:
            cut.append(f"{str(button.label)!r} shows as {' '.join(shown)!r} at {tuple(region)}")
    return cut


Scene = Callable[[Pilot[Any]], Awaitable[object]]


async def connect_intro(pilot: Pilot[Any]) -> None:
    await pilot.pause()
    steady(pilot.app.screen)


async def plan_ready(pilot: Pilot[Any]) -> None:
    screen = await show(pilot, "plan")
    assert isinstance(screen, PlanScreen)
    screen.show_plan()


async def restore_failed(pilot: Pilot[Any]) -> None:
    screen = await show_run(pilot, "restore")
    finish(screen, "Cancelled.", 3.0, ok=False)  # Continue becomes "See the summary"


async def done(pilot: Pilot[Any]) -> None:
    screen = await show(pilot, "done")
    assert isinstance(screen, DoneScreen)
    screen.show_summary(summary_text(finished_run()), undo_lines(finished_run()), ok=True)


async def env_confirm(pilot: Pilot[Any]) -> None:
    await show_run(pilot, "env")
    await push_modal(pilot, ConfirmModal("Rewrite .env to point at main-restore-2026-11-21T01-29-00Z?"))


async def resume_offer(pilot: Pilot[Any]) -> None:
    await show(pilot, "connect")
    await push_modal(
        pilot, ConfirmModal("An unfinished restore run was found.", yes="Continue it", no="Start a new run")
    )


async def type_to_confirm(pilot: Pilot[Any]) -> None:
    await show(pilot, "plan")
    await push_modal(pilot, TypeToConfirmModal("Overwrite main in place?", "main"))


async def error(pilot: Pilot[Any]) -> None:
    await show_run(pilot, "restore")
    await push_modal(pilot, ErrorModal(RuntimeError("boom"), what="The restore"))


async def source(pilot: Pilot[Any]) -> None:
    app = wizard(pilot)
    app.raw_snapshots = list(SNAPSHOTS)
    await show(pilot, "source")


async def snapshot_list(pilot: Pilot[Any]) -> None:
    app = wizard(pilot)
    app.raw_snapshots, app.source_kind = list(SNAPSHOTS), "snapshot"
    await show(pilot, "moment")


SCENES: dict[str, Scene] = {
    "connect-intro": connect_intro,
    "branch": lambda pilot: show(pilot, "branch"),
    "source": source,
    "moment": lambda pilot: show(pilot, "moment"),
    "snapshot-list": snapshot_list,
    "strategy": lambda pilot: show(pilot, "strategy"),
    "backup-files": backup_files_scene,
    "merge-plan": merge_plan_scene,
    "plan": plan_ready,
    "restore-failed": restore_failed,
    "done": done,
    "env-confirm": env_confirm,
    "resume-offer": resume_offer,
    "type-to-confirm": type_to_confirm,
    "error": error,
}


@pytest.mark.parametrize("size", SMALL_SIZES, ids=[f"{w}x{h}" for w, h in SMALL_SIZES])
@pytest.mark.parametrize("scene", SCENES)
async def test_buttons_show_every_word(scene: str, size: tuple[int, int]) -> None:
    intro = INTRO if scene == "connect-intro" else None
    app = make_wizard(
        mode=Mode.DEMO if intro else Mode.NORMAL, api_key=API_KEY if intro else None, intro=intro
    )
    async with app.run_test(size=size) as pilot:
        await SCENES[scene](pilot)
        await pilot.pause()
        assert cut_words(app) == []


@pytest.mark.parametrize("size", [(80, 24), (40, 12)], ids=["80x24", "40x12"])
async def test_a_10kb_filter_keeps_the_branch_table_on_screen(size: tuple[int, int]) -> None:
    app = make_wizard()
    async with app.run_test(size=size) as pilot:
        screen = await show(pilot, "branch")
        await paste(pilot, "#filter", "x" * 10_000)
        await pilot.pause()
        message = screen.query_one("#empty", Static)
        assert message.region.height <= 3, "the echo of the filter takes the screen"
        table = screen.query_one("#branches", DataTable)
        assert table.region.y + 2 <= app.size.height - 1, "the table is off screen"
        field = screen.query_one("#filter", Input)
        field.value = ""
        await paste(pilot, "#filter", "main" + " " * 5000)
        table = screen.query_one("#branches", DataTable)
        assert table.row_count >= 1
        assert table.region.y >= 0 and table.region.y + 2 <= app.size.height - 1, "the table is off screen"


# --- snapshots ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scene", ["branch", "plan", "env-confirm"])
def test_snapshot_small_screen(snap_compare: SnapCompare, scene: str) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await SCENES[scene](pilot)

    assert snap_compare(make_wizard(), terminal_size=(40, 12), run_before=run_before)


def test_snapshot_branch_filter_pasted_10kb(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await show(pilot, "branch")
        await paste(pilot, "#filter", "x" * 10_000)

    assert snap_compare(make_wizard(), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("scene", SCENES)
async def test_learning_mode_on_a_narrow_terminal_does_not_crash(scene: str) -> None:
    """The rail and the why panel together left a list no width at 40 columns: Rich raised ValueError."""
    app = make_wizard(learn=True)
    async with app.run_test(size=(100, 32)) as pilot:
        await SCENES[scene](pilot)
        for size in ((40, 12), (30, 10), (100, 32), (24, 8)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
        await pilot.press("f1", "f1")
        await pilot.pause()
    assert app.return_code in (None, 0)


async def test_the_project_list_opens_in_learning_mode_at_40_columns() -> None:
    app = make_wizard(learn=True)
    async with app.run_test(size=(40, 12)) as pilot:
        await show(pilot, "project")
        await pilot.pause()
        assert app.screen.query_one("#projects").region.width > 0


async def test_a_long_check_takes_one_line_on_verify() -> None:
    """A check is echoed on one line, cut: a 10 KB --check must not push the counts and verdicts away."""
    app = make_wizard()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run(pilot, "verify")
        assert isinstance(screen, VerifyScreen)
        data = verification()
        data["checks"][0]["sql"] = "SELECT count(*) >= 10\n  FROM " + " OR ".join(["true"] * 2500)
        screen.show_verification(data)
        await pilot.pause()
        checks = screen.query_one("#checks", Static).visual
        assert isinstance(checks, Content)
        lines = [line for line in checks.plain.splitlines() if line.strip()]
        assert len(lines) <= 6, lines[:3]
        assert lines[0].startswith("✔ PASS — SELECT count(*) >= 10 FROM true OR")
