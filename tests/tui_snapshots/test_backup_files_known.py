"""The backup-file list says only what the wizard knows about when the damage happened.

Known moment (a search's first bad moment, or the moment chosen): files after it are "likely damaged" (the
snapshot ``test_backup_files`` shows that). Here the two other cases, drawn through the screen's own method
as the app's worker would (this directory's conftest stubs the workers and freezes the clock):

- no search and no moment: nothing is called damaged or safe; the list says the moment is unknown, marks the
  newest usable file and tells each file's place among the newer ones;
- a search's window (the canary last held at ``last_good``, failed from ``first_bad``): a file taken inside it
  may hold the damage or not, and is marked so instead of "before the incident"; it is not preselected.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from textual.widgets import DataTable, Static

from recovery_wizard.recovery.files.find import FindResult, Found
from recovery_wizard.tui.screens.backup_files import BackupFileScreen
from tests.tui_snapshots.scenes import make_wizard, show, wizard
from tests.tui_snapshots.test_sources_more import FOUND, INCIDENT

SIZE = (120, 40)


def _text(screen: BackupFileScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def _marks(screen: BackupFileScreen) -> list[str]:
    table = screen.query_one("#backups", DataTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_with_the_incident_unknown_no_file_is_called_damaged_and_the_newest_is_shown() -> None:
    unknown = FindResult(
        found=[Found(f.info, None) for f in FOUND.found],
        searched=FOUND.searched,
        files_seen=FOUND.files_seen,
        seconds=FOUND.seconds,
        incident=None,
    )
    app = make_wizard()
    async with app.run_test(size=SIZE) as pilot:
        wizard(pilot).source_kind = "file"
        screen = await show(pilot, "moment")
        assert isinstance(screen, BackupFileScreen)
        screen.backups_found(unknown)
        await pilot.pause()

        # The newest usable file is marked as such; the truncated one still says it cannot be loaded;
        # nothing claims to know which one holds the damage.
        assert _marks(screen) == ["●", "", "", "", "✘"]
        status = _text(screen, "#backup-status")
        assert "not known yet" in status and "times in Europe/Amsterdam" in status
        assert "likely damaged" not in status + _text(screen, "#backup-text")
        assert "● the newest usable file" in _text(screen, "#backup-text")
        table = screen.query_one("#backups", DataTable)
        assert table.cursor_row == 0
        detail = _text(screen, "#backup-detail")
        assert "the newest usable file; when the damage happened is not known yet" in detail
        assert "before the incident" not in detail and "AFTER" not in detail
        table.move_cursor(row=2)
        await pilot.pause()
        # Taken 1.6 h ago; the two dumps are newer, the newest by 1 h 21 min.
        assert "2 newer usable file(s), the newest taken 1 hour 21 minutes later" in _text(
            screen, "#backup-detail"
        )


async def test_a_file_taken_inside_the_searchs_window_may_hold_the_damage_and_is_not_preselected() -> None:
    # The search: the canary last held 60 minutes before the first bad moment. The 1.25 h-old dump (taken
    # 45 minutes before the first bad moment) was taken inside that window.
    last_good = INCIDENT - timedelta(minutes=60)
    inside = FOUND.found[1]
    assert inside.info.taken_at is not None and last_good < inside.info.taken_at < INCIDENT
    app = make_wizard()
    async with app.run_test(size=SIZE) as pilot:
        app.source_kind = "file"
        screen = await show(pilot, "moment")
        assert isinstance(screen, BackupFileScreen)
        app.search = {"last_good": last_good, "first_bad": INCIDENT}
        screen.backups_found(dataclasses.replace(FOUND))
        await pilot.pause()

        assert _marks(screen) == ["⚠", "?", "", "", "✘"]
        assert "the incident: between" in _text(screen, "#backup-status")
        assert "? taken inside it" in _text(screen, "#backup-text")
        table = screen.query_one("#backups", DataTable)
        assert table.cursor_row == 2, "the newest usable file from before the window"
        table.move_cursor(row=1)
        await pilot.pause()
        detail = _text(screen, "#backup-detail")
        assert "taken between the last good moment" in detail and "may hold the damage or not" in detail
        assert "before the incident" not in detail
        assert screen.query_one("#backup-detail", Static).has_class("warn")
