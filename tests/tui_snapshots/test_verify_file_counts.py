"""Verify for a backup file: the file's own counts in the wizard, as the CLI shows them (mismatch, a table
missing from the restored branch, partial tables, a file that states no counts). Drawn through the screen's
own method as the app's worker would (this directory's conftest stubs the workers)."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

from recovery_wizard.tui.screens.steps import VerifyScreen
from tests.tui_snapshots.scenes import SnapCompare, finish, make_wizard, show_run, verification

SIZE = (100, 32)


def file_verification() -> dict[str, Any]:
    data = verification()
    data["source_counts"] = {
        "ok": False,
        "file": "/srv/homecheff/backups/main-20261121T005000Z.dump",
        "tables": [
            {
                "table": "public.Listing",
                "expected": 24,
                "actual": 24,
                "at_least": False,
                "partial": False,
                "ok": True,
            },
            {
                "table": "Order",
                "expected": 62,
                "actual": 61,
                "at_least": False,
                "partial": False,
                "ok": False,
            },
            {
                "table": "public.User",
                "expected": 18,
                "actual": 18,
                "at_least": True,
                "partial": True,
                "ok": True,
            },
            {
                "table": "public.Payout",
                "expected": 3,
                "actual": None,
                "at_least": False,
                "partial": False,
                "ok": False,
            },
        ],
        "partial": ["User: the export kept 18 of 20 users"],
        "unmapped_fields": [],
        "missing_tables": [],
        "load_notes": ["replaced User row u_07"],
    }
    return data


def _rows(screen: VerifyScreen) -> dict[str, list[str]]:
    table = screen.query_one("#counts", DataTable)
    return {
        str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)
    }


async def test_the_files_own_counts_stand_beside_damaged_and_restored() -> None:
    app = make_wizard()
    async with app.run_test(size=SIZE) as pilot:
        screen = await show_run(pilot, "verify")
        assert isinstance(screen, VerifyScreen)
        screen.show_verification(file_verification())
        await pilot.pause()
        rows = _rows(screen)
        assert rows["Listing"] == ["Listing", "24", "24", "", "24 ✔"]
        assert rows["Order"] == ["Order", "63", "61", "-2", "62 ✘"]
        assert rows["User"] == ["User", "2", "18", "+16", "≥18 ✔*"]
        assert rows["Review"][4] == "", "the file gives no count for it"
        assert rows["Payout"] == ["Payout", "—", "—", "", "3 ✘ missing"], "in the file, not on the branch"
        text = str(screen.query_one("#checks").render())
        assert (
            "Against the backup file's own counts (/srv/homecheff/backups/main-20261121T005000Z.dump)" in text
        )
        assert "✘ 2 of 4 table(s) differ (Order, public.Payout)" in text
        assert "* partial in the file: User: the export kept 18 of 20 users" in text
        assert "load: replaced User row u_07" in text
        assert "✔ PASS" in text and "✘ FAIL" in text, "the checks are still shown"
        # Beside the rail at 80 columns the counts still fit without scrolling sideways.
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        table = screen.query_one("#counts", DataTable)
        assert table.virtual_size.width <= table.scrollable_content_region.width


async def test_a_file_without_counts_says_so_and_history_keeps_its_four_columns() -> None:
    app = make_wizard()
    async with app.run_test(size=SIZE) as pilot:
        screen = await show_run(pilot, "verify")
        assert isinstance(screen, VerifyScreen)
        data = verification()
        data["source_counts"] = {
            "ok": True,
            "file": "dump.sql",
            "tables": [],
            "partial": [],
            "load_notes": [],
        }
        screen.show_verification(data)
        await pilot.pause()
        assert "the file states no row counts" in str(screen.query_one("#checks").render())
        screen.show_verification(verification())
        await pilot.pause()
        table = screen.query_one("#counts", DataTable)
        assert [str(c.label) for c in table.columns.values()] == ["Table", "Damaged", "Restored", "Change"]
        assert "backup file" not in str(screen.query_one("#checks").render())


def test_verify_from_a_file(snap_compare: SnapCompare) -> None:
    """The file's count and verdict per table beside damaged and restored; the verdict line and notes."""

    async def run_before(pilot: Any) -> None:
        screen = await show_run(pilot, "verify")
        assert isinstance(screen, VerifyScreen)
        screen.show_verification(file_verification())
        finish(
            screen,
            "Verification failed: the restored branch does not hold the backup file's rows "
            "(Order: 61 rows, the file says 62; public.Payout: missing rows, the file says 3). "
            "No env file was touched.",
            7.1,
            ok=False,
        )

    assert snap_compare(make_wizard(), terminal_size=SIZE, run_before=run_before)
