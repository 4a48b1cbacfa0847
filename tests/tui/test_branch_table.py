"""The branch table draws exactly what Textual's DataTable draws, though it lays each cell out only once.

Two tables side by side, the same rows (hostile names, wide characters, names longer than a column can
hold): one a plain DataTable, one the BranchTable. Every line they render is compared segment by segment
(text, colours and the row/column meta a mouse click reads), after a fill, with the cursor moved, after a
refill with the rows in another order (a filter), and with the hover cursor on a row.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable

from recovery_wizard.textsafe import printable
from recovery_wizard.tui.widgets.branch_table import BranchTable, Cell
from tests.tui_snapshots.test_hostile import HOSTILE_NAMES

NAMES = [
    "main",
    *HOSTILE_NAMES,
    "[b]bold[/b] ci/[/]fix",
    "日本語のブランチ-名前",
    "emoji-🚀-deploy",
    "tab\there",
    "x" * 120,
    "",
]


def rows() -> list[tuple[str, ...]]:
    return [
        (name, "default" if i == 0 else "", "ready", f"{i} MB", f"11-{i:02d} 01:29", "")
        for i, name in enumerate(NAMES * 3)
    ]


class Tables(App[None]):
    def compose(self) -> ComposeResult:
        with Horizontal():
            yield DataTable(id="plain", cursor_type="row", zebra_stripes=True)
            yield BranchTable(id="ours", cursor_type="row", zebra_stripes=True)

    def fill(self, shown: list[tuple[str, ...]]) -> None:
        plain, ours = self.query_one("#plain", DataTable), self.query_one("#ours", BranchTable)
        for table, cell in ((plain, Text), (ours, Cell)):
            table.clear()
            if not table.columns:
                table.add_columns("Name", "Flags", "State", "Size", "Created UTC", "Reset UTC")
            table.add_rows([tuple(cell(printable(c), end="") for c in row) for row in shown])

    def lines(self, table_id: str) -> list[list[Any]]:
        table = self.query_one(f"#{table_id}", DataTable)
        return [list(table.render_line(y)) for y in range(table.size.height)]


async def test_the_branch_table_draws_what_a_data_table_draws() -> None:
    app = Tables()
    async with app.run_test(size=(200, 30)) as pilot:
        every = rows()
        app.fill(every)
        await pilot.pause()

        async def same(what: str, *, focused: bool = False) -> None:
            # Each table drawn in the same state: unfocused both, or each in its turn focused.
            app.set_focus(app.query_one("#plain", DataTable) if focused else None)
            await pilot.pause()
            plain = app.lines("plain")
            app.set_focus(app.query_one("#ours", DataTable) if focused else None)
            await pilot.pause()
            ours = app.lines("ours")
            assert len(plain) == len(ours) > 10, what
            for y, (want, got) in enumerate(zip(plain, ours, strict=True)):
                assert got == want, f"{what}: line {y}"
                assert [s.style.meta if s.style else None for s in got] == [
                    s.style.meta if s.style else None for s in want
                ], f"{what}: meta of line {y}"

        await same("filled")
        for table in app.query(DataTable):
            table.move_cursor(row=3)
        await same("cursor on row 3")
        await same("focused", focused=True)
        # A filter: the same cells (the screen builds them once), fewer and in another order.
        app.fill(list(reversed(every[::2])))
        for table in app.query(DataTable):
            table.move_cursor(row=1)
        await same("refilled")
        for table in app.query(DataTable):
            table.hover_coordinate = table.cursor_coordinate._replace(row=2)
        await same("hover")
        assert (
            app.query_one("#ours", BranchTable).virtual_size
            == app.query_one("#plain", DataTable).virtual_size
        )
