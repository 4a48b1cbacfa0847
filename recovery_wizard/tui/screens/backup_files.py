"""Where from? → a backup file: the team's own dumps and JSON backups, found and placed against the incident.

The list comes from ``files.find.find_backups`` over the usual places (the app directory, ./backups,
./prisma, ~/Downloads, ~/Desktop), newest first. Each row: what it is, when it was taken (the file's own
time; the file's mtime only as a fallback, marked ``(file time)``), age, size and the tables it holds.
Files taken after the incident are marked "likely damaged"; files that cannot be loaded show why and are
not chosen. A path can be typed too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Button, DataTable, Input, Static

from recovery_wizard.recovery.snapshot_list import age_text, size_text
from recovery_wizard.tui.screens.base import WizardScreen
from recovery_wizard.tui.text import clip, literal, safe

if TYPE_CHECKING:
    from recovery_wizard.recovery.files.detect import BackupInfo
    from recovery_wizard.recovery.files.find import FindResult, Found

DAMAGED = "likely damaged"


def tables_text(info: BackupInfo, limit: int = 2) -> str:
    """``9 tables, 143 rows: Order 40, User 18 …``: the count, then the largest (rows where the file says)."""
    if not info.tables:
        return "tables unknown"
    counted = [rows for rows in info.tables.values() if rows is not None]
    head = f"{len(info.tables)} tables"
    if counted:
        head += f", {sum(counted)} rows"
    largest = sorted(info.tables.items(), key=lambda item: -(item[1] or 0))[:limit]
    names = [
        name.removeprefix("public.") + (f" {rows}" if rows is not None else "") for name, rows in largest
    ]
    return f"{head}: {', '.join(names)}" + (" …" if len(info.tables) > limit else "")


def mark_of(item: Found) -> str:
    """What to know before choosing it: why it cannot be used, or that it likely holds the damage."""
    info = item.info
    if not info.loadable:
        return f"✘ {info.problem}"
    if item.after_incident:
        return f"⚠ {DAMAGED}"
    if info.partial:
        return f"partial: {', '.join(info.partial)}"
    return ""


def backup_row(item: Found, base: Path, now: datetime, zone: object) -> tuple[Text, ...]:
    info = item.info
    when = "unknown"
    age = "?"
    if info.taken_at is not None:
        when = f"{info.taken_at.astimezone(zone):%m-%d %H:%M}"  # type: ignore[arg-type]
        if info.taken_at_is_fallback:
            when += " (file time)"
        age = age_text(now - info.taken_at)
    try:
        where = str(info.path.relative_to(base))
    except ValueError:
        where = str(info.path)
    # Clipped at the front: the file's own name (its time, its kind) is what tells two apart.
    where = where if len(where) <= 40 else "…" + where[-39:]
    cells = [
        where,
        info.label,
        when,
        age,
        size_text(info.size),
        clip(tables_text(info), 40),
        clip(mark_of(item), 40),
    ]
    return tuple(literal(c) for c in cells)


class BackupFileScreen(WizardScreen):
    """The backup files found, newest first; Enter chooses the highlighted one, or type a path."""

    STEP = "moment"
    INFO = "file"
    TITLE_TEXT = "Restore from which backup file?"

    found: list[Found]

    def compose_body(self) -> ComposeResult:
        yield Static(
            "Backups found in the app directory, ./backups, ./prisma, ~/Downloads and ~/Desktop, newest first. "
            f"The time is the file's own (its header or timestamp); “(file time)” means the file does not say. "
            f"⚠ {DAMAGED}: taken after the incident. ✘: cannot be loaded, and why.",
            id="backup-text",
        )
        yield Static("Looking for backup files…", id="backup-status")
        table: DataTable[str] = DataTable(id="backups", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("Or type the path of a backup file:", classes="label")
        yield Input(placeholder="backups/main-2026-…dump, ~/Downloads/backup.sql", id="path")
        yield Static("", id="path-status")

    def compose_actions(self) -> ComposeResult:
        yield self.back_button()
        yield Button("Continue", id="next", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.found = []
        self.query_one("#backups", DataTable).focus()
        self.wizard.load_backups()

    def show_status(self, text: str, *, error: bool = False, field: str = "#backup-status") -> None:
        status = self.query_one(field, Static)
        status.update(safe(text))
        status.set_class(error, "error")

    def backups_found(self, result: FindResult) -> None:
        wizard = self.wizard
        self.found = list(result.found)
        if not self.found:
            searched = ", ".join(str(p) for p in result.searched) or "nowhere (no folder exists)"
            self.show_status(f"No backup file found in {searched}. Type the path of one below.", error=True)
            self.query_one("#path", Input).focus()
            return
        usable = sum(1 for f in self.found if f.info.loadable)
        head = f"{len(self.found)} found ({usable} usable) in {result.seconds:.1f} s"
        if result.incident is not None:
            head += f"; the incident: {result.incident.astimezone(wizard.zone):%Y-%m-%d %H:%M:%S %Z}"
        self.show_status(head + ".")
        now = datetime.now(UTC)
        table = self.query_one("#backups", DataTable)
        table.clear(columns=True)
        table.add_columns("File", "Kind", "Taken", "Age", "Size", "Tables (rows)", "")
        table.add_rows([backup_row(f, wizard.config.workdir, now, wizard.zone) for f in self.found])
        # The newest usable one from before the incident: what the user most likely wants.
        best = next(
            (i for i, f in enumerate(self.found) if f.info.loadable and not f.after_incident),
            next((i for i, f in enumerate(self.found) if f.info.loadable), 0),
        )
        chosen = wizard.backup_file.path if wizard.backup_file else None
        best = next((i for i, f in enumerate(self.found) if f.info.path == chosen), best)
        table.move_cursor(row=best)
        self.query_one("#next", Button).disabled = False

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.pressed_next()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.check_path()

    def check_path(self) -> None:
        text = self.query_one("#path", Input).value.strip()
        if not text:
            self.show_status("Type a path first.", error=True, field="#path-status")
            return
        self.show_status("Looking at the file…", field="#path-status")
        self.wizard.check_backup_path(text)

    def path_checked(self, path: Path, info: BackupInfo | None) -> None:
        if info is None:
            what = "does not exist" if not path.exists() else "is not a backup this tool recognises"
            self.show_status(
                f"{path} {what}. Give a pg_dump archive, a .sql dump or a JSON backup.",
                error=True,
                field="#path-status",
            )
            return
        if not info.loadable:
            hint = f" Next: {info.hint}" if info.hint else ""
            self.show_status(
                f"{path} cannot be loaded: {info.problem}.{hint}", error=True, field="#path-status"
            )
            return
        self.show_status("", field="#path-status")
        self.wizard.choose_file(info)

    def pressed_next(self) -> None:
        if self.query_one("#path", Input).has_focus and self.query_one("#path", Input).value.strip():
            self.check_path()
            return
        if not self.found:
            return
        item = self.found[self.query_one("#backups", DataTable).cursor_row]
        if not item.info.loadable:
            hint = f" {item.info.hint}" if item.info.hint else ""
            self.notify(
                f"That file cannot be loaded: {item.info.problem}.{hint}", severity="warning", markup=False
            )
            return
        self.wizard.choose_file(item.info)

    def work_failed(self, name: str, text: str) -> None:
        self.show_status(text, error=True)

    def pressed_back(self) -> None:
        self.action_back()
