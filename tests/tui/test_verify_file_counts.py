"""Verify, for a backup file, shows the file's own count per table beside the damaged and restored ones.

The CLI prints "Against the backup file's own counts" under the side-by-side; the wizard's verify screen
replaced that block with its table and so showed nothing of the file. A real drill from the sandbox's own
pg_dump backup, through the wizard, against the served sandbox.
"""

from __future__ import annotations

import pytest
from textual.widgets import Button, DataTable

from recovery_wizard.tui.app import Mode, make_app
from recovery_wizard.tui.screens import backup_files, steps
from tests.tui.conftest import (
    SIZE,
    Incident,
    on_screen,
    screen_text,
    start_run,
    step_finished,
    wait_until,
)
from tests.tui.test_sources_more import highlight, where_from

pytestmark = pytest.mark.usefixtures("own_home")  # tests/tui/conftest.py


async def test_a_drill_from_a_backup_file_shows_the_files_own_counts_on_verify(incident: Incident) -> None:
    folder = await incident.sandbox.write_backups(incident.app_dir)
    dump = max((f for f in folder.of_kind("custom") if not f.after_incident), key=lambda f: f.taken_at)
    app = make_app(incident.config(Mode.DRILL))
    async with app.run_test(size=SIZE) as pilot:
        screen = await where_from(pilot)
        await highlight(pilot, screen, "file")
        await pilot.press("enter")
        files = await on_screen(pilot, backup_files.BackupFileScreen)
        table = files.query_one("#backups", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, "the backup rows")
        table.move_cursor(row=[f.info.path for f in files.found].index(dump.path))
        await pilot.press("enter")
        plan = await on_screen(pilot, steps.PlanScreen)
        await wait_until(pilot, lambda: not plan.query_one("#start", Button).disabled, "the plan")
        await start_run(pilot)
        await step_finished(pilot, steps.RestoreScreen)
        await pilot.press("enter")
        verify = await step_finished(pilot, steps.VerifyScreen)

        assert app.runner is not None and app.runner.result.verification is not None
        own = app.runner.result.verification["source_counts"]
        assert own["tables"], "the dump's manifest states its row counts"
        counts = verify.query_one("#counts", DataTable)
        assert [str(c.label) for c in counts.columns.values()] == [
            "Table",
            "Damaged",
            "Restored",
            "Change",
            "In the file",
        ]
        rows = {
            str(counts.get_row_at(i)[0]): [str(c) for c in counts.get_row_at(i)]
            for i in range(counts.row_count)
        }
        for line in own["tables"]:
            name = str(line["table"]).removeprefix("public.")
            assert rows[name][4] == f"{line['expected']} ✔", (name, rows[name])
            assert rows[name][2] == str(line["actual"]), "restored, counted exactly, is what the file holds"
        text = screen_text(verify, "#checks")
        assert "Against the backup file's own counts" in text and dump.path.name in text
        assert f"all {len(own['tables'])} table(s) as the file says" in text
