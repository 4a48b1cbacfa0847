"""Where the restored data comes from: Neon history, a Neon snapshot, a backup file or a guard checkpoint;
and which snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Button, DataTable, OptionList, Static
from textual.widgets.option_list import Option

from recovery_wizard.recovery.snapshot_list import SnapshotEntry, age_text, size_text
from recovery_wizard.textsafe import printable
from recovery_wizard.tui.screens.base import WizardScreen
from recovery_wizard.tui.text import clip, literal, safe

if TYPE_CHECKING:
    from recovery_wizard.recovery.checkpoint import Checkpoint

# Why the backup-file source cannot be chosen. None: it can (it leads to its own screen, app.SOURCE_STEP).
FILE_SOURCE_REASON: str | None = None
# A guard checkpoint's option id on "Where from?": this prefix and the guard run's id.
CHECKPOINT_PREFIX = "checkpoint:"
# How many checkpoints "Where from?" lists (newest first); the rest are in `recovery-wizard guard list`.
CHECKPOINTS_SHOWN = 5


def checkpoint_choice(cp: Checkpoint, branch_id: str | None, now: datetime) -> SourceChoice:
    """One guard checkpoint as a source: named for the command that followed it."""
    reason = None
    if cp.pruned:
        reason = "it was pruned"
    elif cp.expired(now):
        reason = "it has expired (Neon deleted it)"
    elif branch_id is not None and cp.branch_id != branch_id:
        reason = f"it was taken of {cp.branch_name or cp.branch_id}, not of the chosen branch"
    detail = f"{cp.kind} {cp.name}"
    if cp.at is not None:
        detail += f", {age_text(now - cp.at)} ago"
    if cp.lost:
        detail += f"; after it, {', '.join(cp.lost)} lost rows"
    return SourceChoice(CHECKPOINT_PREFIX + cp.run_id, f"Guard checkpoint: {cp.label}", detail, reason)


@dataclass(frozen=True)
class SourceChoice:
    key: str
    title: str
    detail: str
    reason: str | None = None  # why it cannot be chosen now; None: it can

    def prompt(self) -> Text:
        """Two lines: what it is, then what it offers (or why it is not available)."""
        detail = f"Not available: {self.reason}." if self.reason else self.detail
        return Text.assemble((self.title, "bold"), "\n", printable(detail), end="")


class SourceScreen(WizardScreen):
    """The three sources as a list: arrows move (past what cannot be chosen), Enter chooses."""

    STEP = "source"
    TITLE_TEXT = "Where should the data come from?"
    SHOW_WHERE = True
    checkpoints: dict[str, Checkpoint]  # run id -> checkpoint, as listed

    def compose_body(self) -> ComposeResult:
        yield Static(
            "Neon keeps every moment of the restore window; snapshots, backup files and the guard's "
            "checkpoints reach further back.",
            id="source-text",
        )
        options: list[Option | None] = []
        for choice in self.choices():
            options += [Option(choice.prompt(), id=choice.key, disabled=choice.reason is not None), None]
        yield OptionList(*options[:-1], id="sources")  # None: a divider between two choices

    def compose_actions(self) -> ComposeResult:
        yield self.back_button()
        yield Button("Continue", id="next", variant="primary")

    def choices(self) -> list[SourceChoice]:
        wizard = self.wizard
        window = wizard.window
        history_reason = None
        if window is None or window.disabled:
            history_reason = "this project keeps no history (its restore window is 0)"
        history = SourceChoice(
            "history",
            "Neon history at a moment",
            f"Any moment in the restore window, {window.describe(wizard.zone) if window else ''}: "
            "find the last good moment, look at the data then.",
            history_reason,
        )
        file = SourceChoice(
            "file",
            "A backup file",
            "The team's own dumps and JSON backups (pg_dump archives, .sql, the cron's JSON), found in the "
            "app directory, ./backups, ~/Downloads…, or a path you type.",
            FILE_SOURCE_REASON,
        )
        return [history, self.snapshot_choice(), file, *self.checkpoint_choices()]

    def checkpoint_choices(self) -> list[SourceChoice]:
        """The guard's checkpoints in this directory, newest first (read from the journals: no API call)."""
        wizard = self.wizard
        found = wizard.list_checkpoints()
        epoch = datetime.min.replace(tzinfo=UTC)
        found = sorted((c for c in found if not c.pruned), key=lambda c: c.at or epoch, reverse=True)
        self.checkpoints = {c.run_id: c for c in found[:CHECKPOINTS_SHOWN]}
        branch_id = wizard.branch.id if wizard.branch else None
        now = datetime.now(UTC)
        return [checkpoint_choice(c, branch_id, now) for c in found[:CHECKPOINTS_SHOWN]]

    def snapshot_choice(self) -> SourceChoice:
        title = "A Neon snapshot"
        wizard = self.wizard
        if wizard.snapshots_error is not None:
            return SourceChoice(
                "snapshot", title, "", f"the snapshots could not be listed: {wizard.snapshots_error}"
            )
        entries = wizard.snapshot_entries(datetime.now(UTC))
        if entries is None:
            return SourceChoice("snapshot", title, "Listing the project's snapshots…")
        if not entries:
            return SourceChoice("snapshot", title, "", "this project has no snapshot")
        now = datetime.now(UTC)
        own = [e for e in entries if e.own]
        branch = wizard.branch.name if wizard.branch else "the branch"
        others = len(entries) - len(own)
        elsewhere = f"{others} of another branch" if others else ""
        if not own:
            return SourceChoice("snapshot", title, f"None of {branch}; {elsewhere}.")
        newest, oldest = own[0], own[-1]
        detail = f"{len(own)} of {branch}, the newest “{newest.name}” from {age_text(now - newest.at)} ago"
        if len(own) > 1:
            detail += f", the oldest from {age_text(now - oldest.at)} ago"
        return SourceChoice("snapshot", title, detail + (f"; {elsewhere}." if elsewhere else "."))

    def on_mount(self) -> None:
        options = self.query_one("#sources", OptionList)
        options.focus()
        self.highlight(self.wizard.source_kind)
        self.wizard.load_snapshots()

    def highlight(self, key: str) -> None:
        options = self.query_one("#sources", OptionList)
        if key == "checkpoint" and self.wizard.checkpoint is not None:
            key = CHECKPOINT_PREFIX + self.wizard.checkpoint.run_id
        try:
            index = options.get_option_index(key)
        except Exception:  # the chosen checkpoint is gone from the list (pruned since)
            index = 0
        if options.get_option_at_index(index).disabled:
            index = next((i for i, o in enumerate(options.options) if not o.disabled), index)
        options.highlighted = index

    def snapshots_loaded(self) -> None:
        options = self.query_one("#sources", OptionList)
        choice = self.snapshot_choice()
        options.replace_option_prompt("snapshot", choice.prompt())
        if choice.reason is None:
            options.enable_option("snapshot")
        else:
            options.disable_option("snapshot")
        if options.highlighted is None or options.get_option_at_index(options.highlighted).disabled:
            self.highlight(self.wizard.source_kind)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.choose(event.option.id)

    def pressed_next(self) -> None:
        options = self.query_one("#sources", OptionList)
        if options.highlighted is not None:
            self.choose(options.get_option_at_index(options.highlighted).id)

    def choose(self, key: str | None) -> None:
        options = self.query_one("#sources", OptionList)
        if key is None or options.get_option(key).disabled:
            self.notify("That source is not available: the list says why.", severity="warning")
            return
        if key.startswith(CHECKPOINT_PREFIX):
            self.wizard.choose_checkpoint(self.checkpoints[key.removeprefix(CHECKPOINT_PREFIX)])
            return
        self.wizard.choose_source(key)

    def pressed_back(self) -> None:
        self.action_back()


def _snapshot_row(entry: SnapshotEntry, zone: tzinfo, now: datetime, *, sizes: bool) -> tuple[Text, ...]:
    expires = f"in {age_text(entry.expires_at - now)}" if entry.expires_at else "never"
    branch = clip(entry.taken_of(), 20) if entry.own else f"⚠ {clip(entry.taken_of(), 18)}"
    cells = [entry.name, f"{entry.at.astimezone(zone):%m-%d %H:%M}", age_text(now - entry.at), branch]
    if sizes:
        cells.append(size_text(entry.size))
    cells.append(expires)
    return tuple(literal(cell) for cell in cells)


class SnapshotScreen(WizardScreen):
    """The project's live snapshots, newest data first; Enter restores from the highlighted one."""

    STEP = "moment"
    INFO = "snapshot"
    TITLE_TEXT = "Restore from which snapshot?"

    def compose_body(self) -> ComposeResult:
        branch = self.wizard.branch
        name = safe(branch.name, multiline=False) if branch else "the branch"
        yield Static(
            f"The project's snapshots, newest data first (expired ones left out). ⚠ marks one taken of "
            f"another branch than {name}: it holds that branch's data, not {name}'s.",
            id="snapshot-text",
        )
        yield Static("", id="snapshot-status")
        table: DataTable[str] = DataTable(id="snapshots", cursor_type="row", zebra_stripes=True)
        yield table

    def compose_actions(self) -> ComposeResult:
        yield self.back_button()
        yield Button("Continue", id="next", variant="primary", disabled=True)

    def on_mount(self) -> None:
        table = self.query_one("#snapshots", DataTable)
        table.focus()
        self.keys: list[str] = []
        if self.wizard.snapshot_entries(datetime.now(UTC)) is None and self.wizard.snapshots_error is None:
            self.show_status("Listing the project's snapshots…")
            self.wizard.load_snapshots()
        else:
            self.snapshots_loaded()

    def show_status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#snapshot-status", Static)
        status.update(safe(text))
        status.set_class(error, "error")

    def snapshots_loaded(self) -> None:
        wizard = self.wizard
        if wizard.snapshots_error is not None:
            self.show_status(f"The snapshots could not be listed: {wizard.snapshots_error}", error=True)
            return
        entries = wizard.snapshot_entries(datetime.now(UTC)) or []
        if not entries:
            self.show_status("This project has no snapshot. Go back and choose Neon history.", error=True)
            return
        self.show_status("")
        now = datetime.now(UTC)
        table = self.query_one("#snapshots", DataTable)
        table.clear(columns=True)
        # Neon computes a snapshot's size later (or never, for one not billed): no column of question marks.
        sizes = any(e.size is not None for e in entries)
        zone = f"{now.astimezone(wizard.zone):%Z}"
        table.add_columns(
            "Name", f"Data from ({zone})", "Age", "Taken of", *(["Size"] if sizes else []), "Expires"
        )
        table.add_rows([_snapshot_row(e, wizard.zone, now, sizes=sizes) for e in entries])
        self.keys = [e.id for e in entries]
        chosen = wizard.snapshot.id if wizard.snapshot else None
        row = next((i for i, e in enumerate(entries) if e.id == chosen), None)
        if row is None:
            row = next((i for i, e in enumerate(entries) if e.own), 0)
        table.move_cursor(row=row)
        self.query_one("#next", Button).disabled = False

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.pressed_next()

    def pressed_next(self) -> None:
        if self.keys:
            row = self.query_one("#snapshots", DataTable).cursor_row
            self.wizard.choose_snapshot(self.keys[row], datetime.now(UTC))

    def pressed_back(self) -> None:
        self.action_back()


class CheckpointScreen(WizardScreen):
    """The checkpoint chosen on "Where from?", restated. Reached only by going back past the strategy when
    the checkpoint was chosen (normally passed over: the checkpoint is its own moment)."""

    STEP = "moment"
    TITLE_TEXT = "Restore to a guard checkpoint"

    def compose_body(self) -> ComposeResult:
        cp = self.wizard.checkpoint
        text = (
            f"{cp.label}: {cp.kind} {cp.name} of {cp.branch_name}. Restoring to it brings the branch back "
            f"to that moment, to the byte (LSN {cp.lsn or 'unknown'})."
            if cp is not None
            else "No checkpoint is chosen: go back to choose one."
        )
        yield Static(safe(text), id="checkpoint-text")

    def compose_actions(self) -> ComposeResult:
        yield self.back_button()
        yield Button("Continue", id="next", variant="primary", disabled=self.wizard.checkpoint is None)

    def on_mount(self) -> None:
        self.query_one("#next", Button).focus()

    def pressed_next(self) -> None:
        if self.wizard.checkpoint is not None:
            self.wizard.choose_checkpoint(self.wizard.checkpoint)

    def pressed_back(self) -> None:
        self.action_back()
