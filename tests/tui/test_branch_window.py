"""The branch table at thousands of branches: a keystroke adds a page of rows, and scrolling adds the rest."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input, Static

from recovery_wizard.neon.models import Branch
from recovery_wizard.tui.app import WizardApp, WizardConfig
from recovery_wizard.tui.screens import choices

COUNT = 1_000


def many_branches() -> list[Branch]:
    main = Branch(id="br-main", project_id="p", name="main", current_state="ready", default=True)
    return [main] + [
        Branch(
            id=f"br-{i:04d}",
            project_id="p",
            name=f"{'preview/pr' if i % 2 else 'dev/feature'}-{i}",
            current_state="ready",
            parent_id="br-main",
        )
        for i in range(COUNT)
    ]


async def test_a_keystroke_adds_one_page_and_the_cursor_brings_the_rest(tmp_path: Path) -> None:
    app = WizardApp(WizardConfig(workdir=tmp_path))
    async with app.run_test(size=(100, 32)) as pilot:
        app.branches = many_branches()
        app.current = "branch"
        app.switch_screen(choices.BranchScreen())
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, choices.BranchScreen)
        table = screen.query_one("#branches", DataTable)
        # 1,001 branches: a page in the table, MAX_ROWS reachable, and the line says how many match.
        assert table.row_count == choices.PAGE_ROWS
        assert "Showing 200 of 1001" in str(screen.query_one("#empty", Static).render())
        await pilot.press(*"pr-")
        await pilot.pause()
        assert table.row_count == choices.PAGE_ROWS and screen.keys[0] == "br-0001"
        # Erasing the "-" shows the same first page: the table keeps its rows (none rebuilt), then types it again.
        rows = list(table.rows)
        await pilot.press("backspace")
        await pilot.pause()
        assert list(table.rows) == rows and table.cursor_row == 0
        await pilot.press("-")
        await pilot.pause()
        assert list(table.rows) == rows
        # Down past the loaded rows: the table grows ahead of the cursor, and Enter picks the row shown.
        assert isinstance(screen.focused, Input)
        for _ in range(choices.PAGE_ROWS + 5):
            await pilot.press("down")
        await pilot.pause()
        assert table.cursor_row == choices.PAGE_ROWS + 5
        assert table.row_count > table.cursor_row
        want = screen.keys[table.cursor_row]
        assert table.get_row_at(table.cursor_row)[0].plain == next(
            b.name for b in app.branches if b.id == want
        )
        screen.pressed_next()
        await pilot.pause()
        assert app.branch is not None and app.branch.id == want
