"""Where from? → a backup file: the team's own dumps and JSON backups, found and placed against the incident.

The list comes from ``files.find.find_backups`` over the usual places (the app directory, ./backups,
./prisma, ~/Downloads, ~/Desktop), newest first. Each row: what it is, when it was taken (the file's own
time; the file's mtime only as a fallback, marked ``(file time)``), age, size and the tables it holds.
Files taken after the incident are marked "likely damaged"; files that cannot be loaded show why and are
not chosen. A path can be typed too.

What is said about the damage is only what the wizard knows. A find-moment search gives a window: the canary
last held at ``last_good`` and failed from ``first_bad``; a file taken inside it may hold the damage or not,
and is marked so (``?``), not called good. With no search and no moment chosen, when the damage happened is
unknown: no file is called damaged or safe; the list says so, and marks the newest usable file and each
file's place by time instead (a file taken after the damage holds it: the user compares its time with theirs).
The damaged branch's last write is not known here (Neon's branch has no such time), so it is not used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Button, DataTable, Input, Static

from recovery_wizard.recovery.snapshot_list import age_text, size_text
from recovery_wizard.recovery.timepoint import human_duration
from recovery_wizard.tui.screens.base import WizardScreen
from recovery_wizard.tui.text import literal, safe

if TYPE_CHECKING:
    from recovery_wizard.recovery.files.detect import BackupInfo
    from recovery_wizard.recovery.files.find import FindResult, Found

DAMAGED = "likely damaged"
IN_WINDOW = "?"  # taken between the last good moment and the first bad one: may or may not hold the damage
NEWEST = "●"  # the newest usable file, shown when the incident moment is unknown


@dataclass(frozen=True)
class Known:
    """What this list knows about when the damage happened (see the module docstring)."""

    incident: datetime | None  # the first bad moment (a search) or the moment chosen; None: unknown
    last_good: datetime | None = None  # from a search: the canary still held then

    def in_window(self, item: Found) -> bool:
        """Taken after the last good moment and before the first bad one: it may hold the damage or not."""
        taken = item.info.taken_at
        return (
            self.incident is not None
            and self.last_good is not None
            and taken is not None
            and self.last_good < taken < self.incident
        )


def known_from(result: FindResult, search: dict[str, Any] | None) -> Known:
    """The incident the files were placed against, and the search's last good moment when it is that search's."""
    last_good = (search or {}).get("last_good")
    first_bad = (search or {}).get("first_bad")
    if (
        isinstance(last_good, dt.datetime)  # (the module's own name, not ``datetime``: tests freeze that one)
        and isinstance(first_bad, dt.datetime)
        and first_bad == result.incident
        and last_good < first_bad
    ):
        return Known(result.incident, last_good)
    return Known(result.incident)


def newest_usable(found: list[Found]) -> Found | None:
    usable = [f for f in found if f.info.loadable and f.info.taken_at is not None]
    return max(usable, key=lambda f: f.info.taken_at or datetime.min.replace(tzinfo=UTC), default=None)


def short_kind(info: BackupInfo) -> str:
    """The kind in a few characters (the detail line below the table gives the full label)."""
    if info.kind in ("custom", "directory", "tar"):
        return {"custom": "dump -Fc", "directory": "dump -Fd", "tar": "dump -Ft"}[info.kind]
    if info.kind == "json":
        return "JSON"
    return f"SQL.{'gz' if info.compression == 'gzip' else info.compression}" if info.compression else "SQL"


def holds_text(info: BackupInfo) -> str:
    """``9 tables, 143 rows`` (rows where the file says them)."""
    if not info.tables:
        return "?"
    counted = [rows for rows in info.tables.values() if rows is not None]
    return f"{len(info.tables)} tables" + (f", {sum(counted)} rows" if counted else "")


def mark_of(item: Found, known: Known | None = None, newest: Found | None = None) -> str:
    if not item.info.loadable:
        return "✘"
    if item.after_incident:
        return "⚠"
    if known is not None and known.in_window(item):
        return IN_WINDOW
    if known is not None and known.incident is None and item is newest:
        return NEWEST
    return ""


def _newer_than(item: Found, found: list[Found]) -> list[Found]:
    taken = item.info.taken_at
    if taken is None:
        return []
    return [f for f in found if f.info.loadable and f.info.taken_at is not None and f.info.taken_at > taken]


def detail_text(
    item: Found, zone: object, known: Known | None = None, found: list[Found] | None = None
) -> str:
    """Everything about one file, for the line under the table: what, when (and how known), what it holds,
    and why it should or cannot be used."""
    info = item.info
    lines = [f"{info.path}: {info.label}"]
    if info.taken_at is not None:
        when = f"taken {info.taken_at.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}"  # type: ignore[arg-type]
        if info.taken_at_is_fallback:
            when += " (the file's modification time: the file itself does not say when it was taken)"
        else:
            when += f" (from its {info.taken_at_source})"
        lines.append(when)
    if known is not None and known.in_window(item) and known.last_good and known.incident:
        lines.append(
            f"{IN_WINDOW} taken between the last good moment "
            f"({known.last_good.astimezone(zone):%H:%M:%S}) and the first bad one "  # type: ignore[arg-type]
            f"({known.incident.astimezone(zone):%H:%M:%S}): it may hold the damage or not"  # type: ignore[arg-type]
        )
    elif item.before_incident_seconds is not None:
        delta = human_duration(timedelta(seconds=abs(item.before_incident_seconds)))
        lines.append(
            f"{delta} AFTER the incident: {DAMAGED}, it holds the damage"
            if item.after_incident
            else f"{delta} before the incident"
        )
    elif known is not None and known.incident is None and item.info.loadable and item.info.taken_at:
        newer = _newer_than(item, found or [])
        lines.append(
            (
                "the newest usable file"
                if not newer
                else f"{len(newer)} newer usable file(s), the newest taken "
                f"{human_duration(max(f.info.taken_at for f in newer if f.info.taken_at) - item.info.taken_at)} "
                "later"
            )
            + "; when the damage happened is not known yet: a file taken after it holds it"
        )
    if info.tables:
        largest = sorted(info.tables.items(), key=lambda kv: -(kv[1] or 0))[:6]
        shown = ", ".join(n.removeprefix("public.") + (f" {r}" if r is not None else "") for n, r in largest)
        lines.append(f"holds {shown}" + (" …" if len(info.tables) > 6 else ""))
    if info.partial:
        lines.append(f"partial (the file keeps only part of): {', '.join(info.partial)}")
    if not info.loadable:
        lines.append(f"✘ cannot be loaded: {info.problem}" + (f" Next: {info.hint}" if info.hint else ""))
    return "\n".join(lines)


def backup_row(
    item: Found, now: datetime, zone: object, known: Known | None = None, newest: Found | None = None
) -> tuple[Text, ...]:
    info = item.info
    when = "unknown"
    age = "?"
    if info.taken_at is not None:
        # ≈: the file's modification time, not its own (the legend and the detail line say so).
        mark = "≈" if info.taken_at_is_fallback else ""
        when = f"{mark}{info.taken_at.astimezone(zone):%m-%d %H:%M}"  # type: ignore[arg-type]
        age = age_text(now - info.taken_at)
    # The name only (the detail line under the table has the whole path), clipped at the front: its end
    # (the time in it, the extension) is what tells two apart.
    where = info.path.name if len(info.path.name) <= 24 else "…" + info.path.name[-23:]
    cells = [
        mark_of(item, known, newest),
        when,
        age,
        short_kind(info),
        size_text(info.size),
        holds_text(info),
        where,
    ]
    return tuple(literal(c) for c in cells)


class BackupFileScreen(WizardScreen):
    """The backup files found, newest first; Enter chooses the highlighted one, or type a path."""

    STEP = "moment"
    INFO = "file"
    TITLE_TEXT = "Restore from which backup file?"

    found: list[Found]
    known: Known

    def compose_body(self) -> ComposeResult:
        yield Static(
            "Backups in the app directory, ./backups, ./prisma, ~/Downloads and ~/Desktop, newest first. "
            f"⚠ {DAMAGED} (taken after the incident); ✘ cannot be loaded; ≈ the file's modification "
            "time (the file does not say when it was taken).",
            id="backup-text",
        )
        yield Static("Looking for backup files…", id="backup-status")
        table: DataTable[str] = DataTable(id="backups", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="backup-detail")
        yield Static("Or type the path of a backup file:", classes="label")
        yield Input(placeholder="backups/main-2026-…dump, ~/Downloads/backup.sql", id="path")
        yield Static("", id="path-status")

    def compose_actions(self) -> ComposeResult:
        yield self.back_button()
        yield Button("Continue", id="next", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.found = []
        self.known = Known(None)
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
        known = self.known = known_from(result, wizard.search)
        newest = newest_usable(self.found)
        head = f"{len(self.found)} found ({usable} usable) in {result.seconds:.1f} s"
        if known.incident is None:
            zone = getattr(wizard.zone, "key", None) or datetime.now(UTC).astimezone(wizard.zone).strftime(
                "%Z"
            )
            head += (
                f"; times in {zone}. When the damage happened is not known yet (no search, no moment chosen), "
                "so no file is marked damaged or safe: compare the times with when it went wrong"
            )
            self._legend(f"{NEWEST} the newest usable file; ✘ cannot be loaded")
        elif known.last_good is not None:
            head += (
                f"; the incident: between {known.last_good.astimezone(wizard.zone):%Y-%m-%d %H:%M:%S} "
                f"and {known.incident.astimezone(wizard.zone):%H:%M:%S %Z}"
            )
            self._legend(f"⚠ {DAMAGED} (taken after it); {IN_WINDOW} taken inside it; ✘ cannot be loaded")
        else:
            head += f"; the incident: {known.incident.astimezone(wizard.zone):%Y-%m-%d %H:%M:%S %Z}"
        self.show_status(head + ".")
        now = datetime.now(UTC)
        table = self.query_one("#backups", DataTable)
        table.clear(columns=True)
        table.add_columns("", "Taken", "Age", "Kind", "Size", "Holds", "File")
        table.add_rows([backup_row(f, now, wizard.zone, known, newest) for f in self.found])
        # The newest usable one from before the incident (and outside its window): what the user most likely
        # wants; with the incident unknown, simply the newest usable one.
        best = next(
            (
                i
                for i, f in enumerate(self.found)
                if f.info.loadable and not f.after_incident and not known.in_window(f)
            ),
            next((i for i, f in enumerate(self.found) if f.info.loadable), 0),
        )
        chosen = wizard.backup_file.path if wizard.backup_file else None
        best = next((i for i, f in enumerate(self.found) if f.info.path == chosen), best)
        table.move_cursor(row=best)
        self.query_one("#next", Button).disabled = False

    def _legend(self, marks: str) -> None:
        self.query_one("#backup-text", Static).update(
            safe(
                "Backups in the app directory, ./backups, ./prisma, ~/Downloads and ~/Desktop, newest first. "
                f"{marks}; ≈ the file's modification time (the file does not say when it was taken)."
            )
        )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.found and 0 <= event.cursor_row < len(self.found):
            item = self.found[event.cursor_row]
            detail = self.query_one("#backup-detail", Static)
            detail.update(safe(detail_text(item, self.wizard.zone, self.known, self.found)))
            detail.set_class(
                not item.info.loadable or item.after_incident or self.known.in_window(item), "warn"
            )

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
