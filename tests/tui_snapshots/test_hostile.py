"""Hostile data on every screen: names and values from Neon or a database are shown as text, never obeyed.

A branch, project or table name, a query's value, an error message: all are data. Markup in them
(``[b]main[/b]``, ``ci/[/]fix``) must show as typed, not style the screen or crash it; control sequences in
them (an OSC that retitles the terminal, a CSI that recolours it) must reach the terminal as visible text.
Each test draws a screen with such data and reads back what the terminal would be sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from functools import partialmethod
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, OptionList

from recovery_wizard.neon import NeonClient
from recovery_wizard.neon.errors import ConflictError
from recovery_wizard.neon.models import Branch
from recovery_wizard.recovery.plan import Plan, RunOptions
from recovery_wizard.recovery.runner import Runner, begin_run
from recovery_wizard.redact import Secret
from recovery_wizard.textsafe import printable
from recovery_wizard.tui.app import Mode, WizardApp, WizardConfig, run_wizard, summary_text, undo_lines
from recovery_wizard.tui.screens import choices
from recovery_wizard.tui.screens.choices import BranchScreen, MomentScreen
from recovery_wizard.tui.screens.modals import ConfirmModal, ErrorModal, TypeToConfirmModal
from recovery_wizard.tui.screens.steps import DoneScreen, PlanScreen, VerifyScreen
from tests.tui_snapshots.scenes import (
    BRANCHES,
    MAIN,
    PROD,
    PROJECTS,
    RESTORED,
    WINDOW,
    SnapCompare,
    finish,
    finished_run,
    make_plan,
    make_wizard,
    paste,
    push_modal,
    show,
    show_run,
    verification,
    wizard,
)

WIDE = (100, 32)
OSC_TITLE = "\x1b]0;PWNED\x07"  # sets the terminal's title
CSI_RED = "\x1b[41m"  # paints everything after it red
# What the terminal must never be sent: the sequences above, or any BEL or C1 CSI that would start one.
FORBIDDEN = ("\x1b]", "\x07", CSI_RED, "\x9b")

MARKUP_CLOSE = "ci/[/]fix"  # a closing tag with nothing to close: Rich raises MarkupError
MARKUP_BOLD = "[b]main[/b]"  # would render as a bold second "main"
TITLE_NAME = f"hotfix{OSC_TITLE}x"
COLOUR_NAME = f"red{CSI_RED}alert"
HOSTILE_NAMES = (MARKUP_CLOSE, MARKUP_BOLD, TITLE_NAME, COLOUR_NAME)


def hostile_branches() -> list[Branch]:
    """The scene's branches after four hostile ones: the first of them is the default branch."""
    hostile = [
        msgspec.structs.replace(MAIN, id=f"br-hostile-{i}", name=name, default=i == 0, protected=False)
        for i, name in enumerate(HOSTILE_NAMES)
    ]
    return hostile + [msgspec.structs.replace(b, default=False) for b in BRANCHES]


def terminal(app: App[Any]) -> tuple[str, str]:
    """What the terminal would be sent for the whole screen (escape sequences and all), and its text."""
    compositor = app.screen._compositor
    sent = compositor.render_full_update().render_segments(app.console)
    lines = compositor.render_full_update().strips
    text = "\n".join("".join(strip.text for strip in line) for line in lines)
    return sent, text


def assert_shown_as_text(app: App[Any], *expected: str) -> None:
    sent, text = terminal(app)
    for sequence in FORBIDDEN:
        assert sequence not in sent, f"{sequence!r} reached the terminal"
    for value in expected:
        assert printable(value) in text, f"{printable(value)!r} is not on the screen"


async def show_hostile_branches(pilot: Pilot[Any]) -> BranchScreen:
    app = wizard(pilot)
    app.projects = list(PROJECTS)
    app.project, app.branches, app.window = PROD, hostile_branches(), WINDOW
    screen = await show(pilot, "branch")
    assert isinstance(screen, BranchScreen)
    return screen


# --- item 7: markup in names ------------------------------------------------------------------------------


async def test_branch_names_with_markup_and_escapes_show_as_typed() -> None:
    app = make_wizard()
    async with app.run_test(size=WIDE) as pilot:
        await show_hostile_branches(pilot)
        await pilot.pause()
        assert_shown_as_text(app, *HOSTILE_NAMES)


async def test_a_filter_on_markup_matches_the_name_that_holds_it() -> None:
    """`[b]` finds "[b]main[/b]" only: not "main", which is what the markup would have rendered."""
    app = make_wizard()
    async with app.run_test(size=WIDE) as pilot:
        screen = await show_hostile_branches(pilot)
        await paste(pilot, "#filter", "[b]")
        table = screen.query_one("#branches", DataTable)
        assert table.row_count == 1
        assert [b.name for b in app.branches if b.id == screen.keys[0]] == [MARKUP_BOLD]


async def test_project_names_with_markup_and_escapes_show_as_typed() -> None:
    hostile = [
        msgspec.structs.replace(PROJECTS[0], name=MARKUP_CLOSE),
        msgspec.structs.replace(PROJECTS[1], id="p-title", name=TITLE_NAME),
        msgspec.structs.replace(PROJECTS[2], id="p-bold", name=MARKUP_BOLD),
    ]
    app = make_wizard()
    async with app.run_test(size=WIDE) as pilot:
        app.projects = hostile
        await show(pilot, "project")
        await pilot.pause()
        options = app.screen.query_one("#projects", OptionList)
        assert options.option_count == 3
        assert_shown_as_text(app, MARKUP_CLOSE, TITLE_NAME, MARKUP_BOLD)


# --- item 6: control sequences in anything from Neon or a query, on every screen ----------------------------

HOSTILE_MAIN = msgspec.structs.replace(MAIN, name=TITLE_NAME)
HOSTILE_CHILD = msgspec.structs.replace(MAIN, id="br-child", name=COLOUR_NAME, parent_id=MAIN.id)
HOSTILE_VALUE = f"{CSI_RED}t{OSC_TITLE}"


def hostile_plan() -> Plan:
    return dataclasses.replace(make_plan(), branch=HOSTILE_MAIN, name=f"{MARKUP_CLOSE}-restore")


Scene = Callable[[Pilot[Any]], Awaitable[tuple[str, ...]]]


async def strategy_scene(pilot: Pilot[Any]) -> tuple[str, ...]:
    app = wizard(pilot)
    app.project, app.branches, app.window = PROD, [HOSTILE_CHILD], WINDOW
    app.branch = HOSTILE_CHILD
    await show(pilot, "strategy")
    return (COLOUR_NAME,)


async def plan_scene(pilot: Pilot[Any]) -> tuple[str, ...]:
    app = wizard(pilot)
    app.branch, app.plan = HOSTILE_MAIN, hostile_plan()
    screen = await show(pilot, "plan")
    assert isinstance(screen, PlanScreen)
    screen.show_plan()
    await pilot.pause()
    return (TITLE_NAME, f"{MARKUP_CLOSE}-restore")


async def restore_scene(pilot: Pilot[Any]) -> tuple[str, ...]:
    app = wizard(pilot)
    app.branch, app.plan = HOSTILE_MAIN, hostile_plan()
    screen = await show_run(pilot, "restore")
    app.reporter.info(f"Creating {COLOUR_NAME} from {TITLE_NAME}")
    app.reporter.show(f"Branch {MARKUP_BOLD}", f"name: {TITLE_NAME}")
    finish(screen, f"The branch {MARKUP_CLOSE} is ready.", 12.0)
    await pilot.pause()
    return (COLOUR_NAME, TITLE_NAME, MARKUP_BOLD, MARKUP_CLOSE)


async def verify_scene(pilot: Pilot[Any]) -> tuple[str, ...]:
    app = wizard(pilot)
    screen = await show_run(pilot, "verify")
    assert isinstance(screen, VerifyScreen)
    data = verification()
    data["tables"][0]["table"] = MARKUP_CLOSE
    data["tables"][1]["table"] = TITLE_NAME
    data["checks"][0]["restored"]["value"] = HOSTILE_VALUE
    screen.show_verification(data)
    app.reporter.output(f"psql: {COLOUR_NAME}")
    await pilot.pause()
    return (MARKUP_CLOSE, TITLE_NAME, HOSTILE_VALUE, COLOUR_NAME)


async def done_scene(pilot: Pilot[Any]) -> tuple[str, ...]:
    screen = await show(pilot, "done")
    assert isinstance(screen, DoneScreen)
    result = finished_run()
    result.plan = hostile_plan()
    result.restore_branch = msgspec.structs.replace(RESTORED, name=COLOUR_NAME)
    screen.show_summary(summary_text(result), undo_lines(result), ok=True)
    await pilot.pause()
    return (TITLE_NAME, COLOUR_NAME)


async def moment_scene(pilot: Pilot[Any]) -> tuple[str, ...]:
    app = wizard(pilot)
    app.branch = HOSTILE_MAIN
    screen = await show(pilot, "moment")
    assert isinstance(screen, MomentScreen)
    for box in ("#find-box", "#peek-box", "#timeline-box"):
        screen.query_one(box).collapsed = False  # type: ignore[attr-defined]
    screen.show_peek(f"At 02:29 (snapshot):\nok\n{HOSTILE_VALUE}")
    screen.show_timeline(f"02:10 branch {TITLE_NAME} reset")
    screen.show_find(f"Searching {COLOUR_NAME}…")
    await pilot.pause()
    return (HOSTILE_VALUE, TITLE_NAME, COLOUR_NAME)


async def confirm_scene(pilot: Pilot[Any]) -> tuple[str, ...]:
    await show(pilot, "plan")
    await push_modal(pilot, ConfirmModal(f"Point .env at {TITLE_NAME}?"))
    return (TITLE_NAME,)


async def type_to_confirm_scene(pilot: Pilot[Any]) -> tuple[str, ...]:
    await show(pilot, "plan")
    await push_modal(pilot, TypeToConfirmModal(f"Overwrite {COLOUR_NAME}?", MARKUP_CLOSE))
    return (COLOUR_NAME, MARKUP_CLOSE)


async def error_scene(pilot: Pilot[Any]) -> tuple[str, ...]:
    await show(pilot, "plan")
    error = ConflictError(f"branch {TITLE_NAME} already exists", status=409, request_id="r-1")
    await push_modal(pilot, ErrorModal(error, what=f"Creating {MARKUP_CLOSE}"))
    return (TITLE_NAME, MARKUP_CLOSE)


SCENES: dict[str, Scene] = {
    "strategy": strategy_scene,
    "plan": plan_scene,
    "restore": restore_scene,
    "verify": verify_scene,
    "done": done_scene,
    "moment": moment_scene,
    "confirm": confirm_scene,
    "type-to-confirm": type_to_confirm_scene,
    "error": error_scene,
}


@pytest.mark.parametrize("scene", SCENES.values(), ids=SCENES.keys())
async def test_control_sequences_reach_the_terminal_as_text(scene: Scene) -> None:
    app = make_wizard()
    async with app.run_test(size=(120, 60)) as pilot:
        expected = await scene(pilot)
        assert_shown_as_text(app, *expected)


# --- item 7: an unhandled exception is a failure, with the incident record written --------------------------


def test_an_unhandled_exception_exits_non_zero_and_writes_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run has started; then something in the wizard raises. The exit code says so and report.md exists."""
    run_dirs = tmp_path / ".recovery-wizard" / "runs"

    def start_then_crash(screen: choices.ConnectScreen) -> None:
        app = screen.wizard
        app.client = NeonClient(
            httpx.AsyncClient(), Secret("napi_crash_test_key"), base_url="http://neon.invalid"
        )
        app.project, app.branch, app.plan = PROD, MAIN, make_plan()
        app.options = RunOptions(command="restore", workdir=tmp_path, project_id=PROD.id, branch=MAIN.id)
        journal = begin_run(app.options, app.plan, None)
        app.runner = Runner(app.client, app.plan, journal, app.prompter, app.reporter, yes=False)
        raise RuntimeError("a bug after the run began")

    monkeypatch.setattr(choices.ConnectScreen, "on_mount", start_then_crash)
    # The real entry point, headless: no terminal in a test.
    monkeypatch.setattr(WizardApp, "run", partialmethod(App.run, headless=True))
    code = run_wizard(WizardConfig(workdir=tmp_path, mode=Mode.NORMAL, tz="UTC"))
    assert code == 1
    reports = list(run_dirs.glob("*/report.md"))
    assert len(reports) == 1
    record = reports[0].read_text()
    assert "RuntimeError: a bug after the run began" in record
    assert "failed" in record


def test_an_unhandled_exception_before_any_run_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def crash(screen: choices.ConnectScreen) -> None:
        raise RuntimeError("a bug before anything was written")

    monkeypatch.setattr(choices.ConnectScreen, "on_mount", crash)
    monkeypatch.setattr(WizardApp, "run", partialmethod(App.run, headless=True))
    assert run_wizard(WizardConfig(workdir=tmp_path, tz="UTC")) == 1
    assert not (tmp_path / ".recovery-wizard").exists()


# --- snapshots ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [WIDE, (40, 12)], ids=["100x32", "40x12"])
def test_snapshot_hostile_branch_names(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await show_hostile_branches(pilot)

    assert snap_compare(make_wizard(), terminal_size=size, run_before=run_before)


def test_snapshot_hostile_error_modal(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await error_scene(pilot)

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


async def test_an_in_place_confirmation_accepts_the_name_as_shown() -> None:
    """Nobody can type an ESC: typing the name as the modal shows it ("hotfix\\x1b]0;…") confirms."""
    app = make_wizard()
    async with app.run_test(size=WIDE) as pilot:
        await show(pilot, "plan")
        modal = TypeToConfirmModal(f"Overwrite {TITLE_NAME}?", TITLE_NAME)
        answers: list[bool | None] = []
        await app.push_screen(modal, answers.append)
        await pilot.pause()
        await paste(pilot, "#typed", printable(TITLE_NAME))
        assert not modal.query_one("#confirm", Button).disabled
        await pilot.press("enter")
        await pilot.pause()
        assert answers == [True]
