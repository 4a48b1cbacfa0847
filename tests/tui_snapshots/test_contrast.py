"""Every text the wizard draws reaches 4.5:1 (WCAG AA) against its background, in the dark and light themes.

Measured from what the screen would send to the terminal: each run of text with a letter or digit in it,
its foreground and background colours as Textual resolved them from the theme. Exempt, as WCAG exempts
them: disabled controls (a greyed-out Continue, a key that does nothing here) and the screen dimmed behind
a modal. A glyph without letters (a radio button's dot, a box-drawing border) is not text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from rich.color import Color as RichColor
from textual.app import App
from textual.color import Color
from textual.pilot import Pilot
from textual.widget import Widget

from recovery_wizard.neon.errors import LockedError
from recovery_wizard.tui.app import summary_text, undo_lines
from recovery_wizard.tui.contrast import AA, contrast
from recovery_wizard.tui.screens.choices import ConnectScreen, MomentScreen
from recovery_wizard.tui.screens.modals import ConfirmModal, ErrorModal, TypeToConfirmModal
from recovery_wizard.tui.screens.steps import DoneScreen, PlanScreen, VerifyScreen
from tests.tui_snapshots.scenes import (
    SNAPSHOTS,
    TOO_OLD_TEXT,
    finish,
    finished_run,
    make_wizard,
    paste,
    push_modal,
    show,
    show_run,
    verification,
    wizard,
)
from tests.tui_snapshots.test_sources_more import backup_files_scene, merge_plan_scene

THEMES = ["textual-dark", "textual-light"]


def _colour(colour: RichColor) -> Color:
    r, g, b = colour.get_truecolor()
    return Color(r, g, b)


def _exempt(widget: Widget, modal: bool) -> bool:
    nodes = [widget, *widget.ancestors_with_self]
    if modal and not any(isinstance(n, Widget) and n.has_class("modal") for n in nodes):
        return True  # the screen behind a modal is dimmed on purpose
    return any(isinstance(n, Widget) and (n.disabled or n.has_class("-disabled")) for n in nodes)


def low_contrast(app: App[Any], *, modal: bool = False) -> list[str]:
    """Every run of text under AA on the screen: ratio, text and the widget that drew it."""
    screen = app.screen
    found = []
    for y, line in enumerate(screen._compositor.render_full_update().strips):
        x = 0
        for strip in line:
            for segment in strip:
                text, style = segment.text, segment.style
                width = segment.cell_length
                if style is not None and any(c.isalnum() for c in text) and not segment.control:
                    widget, _ = screen.get_widget_at(
                        x + next(i for i, c in enumerate(text) if c.isalnum()), y
                    )
                    fg, bg = style.color, style.bgcolor
                    if not _exempt(widget, modal):
                        assert fg is not None and bg is not None, f"{text!r} has no colour of its own"
                        if style.reverse:
                            fg, bg = bg, fg
                        ratio = contrast(_colour(fg), _colour(bg))
                        if ratio < AA or style.dim:
                            found.append(f"{ratio:.2f}:1 {text.strip()!r} ({type(widget).__name__})")
                x += width
    return found


Scene = Callable[[Pilot[Any]], Awaitable[object]]


async def connect_refused(pilot: Pilot[Any]) -> None:
    screen = await show(pilot, "connect")
    assert isinstance(screen, ConnectScreen)
    screen.show_status("The API key was refused (HTTP 401)\nNext: check NEON_API_KEY.", error=True)


async def moment_valid(pilot: Pilot[Any]) -> None:
    await show(pilot, "moment")
    await paste(pilot, "#at", "2026-11-21 02:29")


async def moment_refused(pilot: Pilot[Any]) -> None:
    screen = await show(pilot, "moment")
    assert isinstance(screen, MomentScreen)
    await paste(pilot, "#at", TOO_OLD_TEXT)
    screen.show_find("The canary fails everywhere.", error=True)


async def source(pilot: Pilot[Any]) -> None:
    """The file choice is disabled: its reason must still be readable."""
    wizard(pilot).raw_snapshots = list(SNAPSHOTS)
    await show(pilot, "source")


async def snapshot_list(pilot: Pilot[Any]) -> None:
    app = wizard(pilot)
    app.raw_snapshots, app.source_kind = list(SNAPSHOTS), "snapshot"
    await show(pilot, "moment")


async def moment_offer(pilot: Pilot[Any]) -> None:
    wizard(pilot).raw_snapshots = list(SNAPSHOTS)
    await show(pilot, "moment")
    await paste(pilot, "#at", TOO_OLD_TEXT)


async def plan_ready(pilot: Pilot[Any]) -> None:
    screen = await show(pilot, "plan")
    assert isinstance(screen, PlanScreen)
    screen.show_plan()


async def plan_refused(pilot: Pilot[Any]) -> None:
    screen = await show(pilot, "plan")
    assert isinstance(screen, PlanScreen)
    screen.show_refusal("The branch is protected.", "Pick another.")


async def restore_done(pilot: Pilot[Any]) -> None:
    screen = await show_run(pilot, "restore")
    wizard(pilot).reporter.warn("Neon answered 423; asking again in 2 s")
    wizard(pilot).reporter.output("prisma: generated")
    finish(screen, "The branch is ready.", 12.0)


async def verify_mixed(pilot: Pilot[Any]) -> None:
    screen = await show_run(pilot, "verify")
    assert isinstance(screen, VerifyScreen)
    screen.show_verification(verification())
    finish(screen, "3 tables differ; 1 check failed", 3.0, ok=False)


async def verify_ok(pilot: Pilot[Any]) -> None:
    screen = await show_run(pilot, "verify")
    assert isinstance(screen, VerifyScreen)
    screen.show_verification(verification())
    finish(screen, "The restored data checks out.", 3.0)


async def done_ok(pilot: Pilot[Any]) -> None:
    screen = await show(pilot, "done")
    assert isinstance(screen, DoneScreen)
    result = finished_run()
    screen.show_summary(summary_text(result), undo_lines(result), ok=True)


async def done_failed(pilot: Pilot[Any]) -> None:
    screen = await show(pilot, "done")
    assert isinstance(screen, DoneScreen)
    result = finished_run()
    screen.show_summary("The run ended: failed.\nNext: resume it.", undo_lines(result), ok=False)


async def confirm(pilot: Pilot[Any]) -> None:
    await show(pilot, "plan")
    await push_modal(pilot, ConfirmModal("Point .env at the restored branch?"))


async def type_to_confirm(pilot: Pilot[Any]) -> None:
    await show(pilot, "plan")
    await push_modal(pilot, TypeToConfirmModal("Overwrite main?", "main"))


async def error(pilot: Pilot[Any]) -> None:
    await show(pilot, "plan")
    locked = LockedError("Project is locked", status=423, request_id="r-1", hint="Wait for the operation.")
    await push_modal(pilot, ErrorModal(locked, what="The restore"))


SCENES: dict[str, Scene] = {
    "connect": connect_refused,
    "project": lambda pilot: show(pilot, "project"),
    "branch": lambda pilot: show(pilot, "branch"),
    "moment-valid": moment_valid,
    "moment-refused": moment_refused,
    "source": source,
    "snapshot-list": snapshot_list,
    "moment-offer": moment_offer,
    "strategy": lambda pilot: show(pilot, "strategy"),
    "backup-files": backup_files_scene,
    "merge-plan": merge_plan_scene,
    "plan": plan_ready,
    "plan-refused": plan_refused,
    "restore": restore_done,
    "verify-mixed": verify_mixed,
    "verify-ok": verify_ok,
    "done-ok": done_ok,
    "done-failed": done_failed,
}
MODALS: dict[str, Scene] = {"confirm": confirm, "type-to-confirm": type_to_confirm, "error": error}


@pytest.mark.parametrize("size", [(110, 40), (40, 12)], ids=["110x40", "40x12"])
@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("scene", [*SCENES, *MODALS])
async def test_every_text_reaches_aa(scene: str, theme: str, size: tuple[int, int]) -> None:
    """At 40x12 the controls are compact (no borders): their colours are checked too."""
    app = make_wizard(learn=True)  # the why panel on: it has text of its own
    async with app.run_test(size=size) as pilot:
        app.theme = theme
        await (SCENES | MODALS)[scene](pilot)
        await pilot.pause()
        assert low_contrast(app, modal=scene in MODALS) == []
