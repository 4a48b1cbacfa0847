"""The screens that collect choices, one decision each: project, branch, moment, strategy (and connect, kept
in connect.py so the first screen loads without the others)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Button, Collapsible, DataTable, Input, OptionList, RadioButton, RadioSet, Static
from textual.widgets.option_list import Option

from recovery_wizard.neon.models import Branch
from recovery_wizard.recovery.lostwrites import LostRows
from recovery_wizard.recovery.snapshot_list import SnapshotEntry, age_text, newest_before
from recovery_wizard.recovery.timepoint import (
    RestoreWindow,
    TimePointError,
    parse_moment,
)
from recovery_wizard.textsafe import printable
from recovery_wizard.tui.screens.base import WizardScreen
from recovery_wizard.tui.screens.connect import ConnectScreen
from recovery_wizard.tui.screens.steps import hidden
from recovery_wizard.tui.text import clip, literal, safe
from recovery_wizard.tui.widgets.branch_table import BranchTable, Cell
from recovery_wizard.tui.widgets.window_bar import WindowBar

__all__ = ["ConnectScreen"]  # re-exported: it lives in connect.py


class ProjectScreen(WizardScreen):
    STEP = "project"
    TITLE_TEXT = "Which project lost data?"

    def compose_body(self) -> ComposeResult:
        projects = self.wizard.projects
        yield Static(f"The key sees {len(projects)} project(s).")
        options = OptionList(
            *[Option(literal(f"{p.name}  ({p.id})"), id=p.id) for p in projects], id="projects"
        )
        yield options

    def compose_actions(self) -> ComposeResult:
        yield self.back_button()
        yield Button("Continue", id="next", variant="primary")

    def on_mount(self) -> None:
        options = self.query_one("#projects", OptionList)
        options.highlighted = 0
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.choose(event.option.id)

    def pressed_next(self) -> None:
        options = self.query_one("#projects", OptionList)
        if options.highlighted is not None:
            self.choose(options.get_option_at_index(options.highlighted).id)

    def pressed_back(self) -> None:
        self.action_back()

    def choose(self, project_id: str | None) -> None:
        if project_id:
            self.wizard.choose_project(project_id)


def _branch_row(b: Branch) -> tuple[Cell, ...]:
    flags = " ".join(
        f for f, on in (("default", b.default), ("protected", b.protected), ("root", b.is_root)) if on
    )
    size = "" if b.logical_size is None else f"{b.logical_size / 1_048_576:.0f} MB"
    created = f"{b.created_at:%m-%d %H:%M}" if b.created_at else ""
    reset = f"{b.last_reset_at:%m-%d %H:%M}" if b.last_reset_at else ""
    # Text, not str: a DataTable parses a str cell as markup, and a name is data ("ci/[/]fix"). A Cell, built
    # once per branch, so the table lays it out and measures it once however often a filter shows it.
    return tuple(
        Cell(printable(cell), end="") for cell in (b.name, flags, b.current_state, size, created, reset)
    )


MAX_ROWS = 200
# Rows put in the table per keystroke; more (up to MAX_ROWS) as the cursor comes within a page of the last.
# A keystroke's cost is the table's work per row added (a Row, six cells measured), not the filter: 50 rows
# fill two screens of the tallest terminal and keep a keystroke near a frame at 5,000 branches.
PAGE_ROWS = 50
# Filters whose matches are kept, so erasing a character shows its answer without a search.
FILTERS_KEPT = 32


class BranchScreen(WizardScreen):
    """A table of branches; typing filters it. Rows are rebuilt from a precomputed list, so thousands stay quick."""

    STEP = "branch"
    TITLE_TEXT = "Which branch was damaged?"
    SHOW_WHERE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        *WizardScreen.BINDINGS,
        Binding("ctrl+f", "focus_filter", "Filter"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="Type to filter by name or id", id="filter")
        yield Static("", id="empty")
        table = BranchTable(id="branches", cursor_type="row", zebra_stripes=True)
        yield table

    def compose_actions(self) -> ComposeResult:
        yield self.back_button()
        yield Button("Continue", id="next", variant="primary")

    def on_mount(self) -> None:
        # Lower-cased search keys once: filtering then costs a substring test per branch, not a format.
        # The default branch first (usually the damaged one), then roots, then Neon's order.
        ordered = sorted(self.wizard.branches, key=lambda b: (not b.default, not b.is_root))
        # The name as shown is searchable too, so what the table shows ("main\\x1b…") is what a filter finds.
        self.rows = [(f"{b.name} {printable(b.name)} {b.id}".lower(), b.id, _branch_row(b)) for b in ordered]
        self.default_id = next((b.id for b in ordered if b.default), None)
        # needle -> its matching rows, oldest first; "" (every row) is never evicted.
        self._found: dict[str, list[tuple[str, str, tuple[Cell, ...]]]] = {"": self.rows}
        # The ids of the rows shown (MAX_ROWS at most), the first `loaded` of them in the table.
        self.keys: list[str] = []
        self.loaded = 0
        table = self.query_one("#branches", DataTable)
        table.add_columns("Name", "Flags", "State", "Size", "Created UTC", "Reset UTC")
        self.refill("")
        # Typing filters at once; Up/Down/PageUp/PageDown and Enter still drive the table (on_key below).
        self.query_one("#filter", Input).focus()

    def refill(self, text: str) -> None:
        needle = text.strip().lower()
        table = self.query_one("#branches", DataTable)
        matching = self.matches(needle)
        # A table of thousands of rows costs a second to build; nobody scrolls that far. Show the first
        # MAX_ROWS and say how to narrow it, so each keystroke stays within a frame or two.
        shown = matching[:MAX_ROWS]
        keys = [key for _, key, _ in shown]
        # Rows already in the table that the new filter shows in the same places stay (typing "pr" after
        # "p" often keeps the first page): the table is not changed, so nothing is laid out or drawn again.
        kept = len(keys) >= self.loaded and keys[: self.loaded] == self.keys[: self.loaded]
        if not kept:
            table.clear()
            self.loaded = 0
        self.keys = keys
        self._shown = [row for _, _, row in shown]
        empty = self.query_one("#empty", Static)
        if not matching:
            empty.update(
                f"No branch matches “{safe(clip(text), multiline=False)}”. "
                f"Clear the filter to see all {len(self.rows)}."
            )
        elif len(matching) > len(shown):
            empty.update(f"Showing {len(shown)} of {len(matching)} branches: type to narrow.")
        else:
            empty.update("")
        empty.set_class(not matching, "error")
        empty.set_class(bool(matching) and len(matching) <= len(shown), "blank")
        self.query_one("#next", Button).disabled = not matching
        preferred = self.wizard.branch.id if self.wizard.branch else None
        default = next((i for i, key in enumerate(self.keys) if key == preferred), None)
        if default is None:
            default = next((i for i, key in enumerate(self.keys) if key == self.default_id), 0)
        if self.loaded < min(len(self._shown), max(default + 1, PAGE_ROWS)):
            self.load_rows(default + 1)
        if matching:
            table.move_cursor(row=default)

    def matches(self, needle: str) -> list[tuple[str, str, tuple[Cell, ...]]]:
        """The rows whose search key holds ``needle``, in order. Typing narrows: a row that holds the new
        needle holds every part of it, so the search runs over the matches of the longest needle already
        searched that the new one contains (the previous one, as a person types), and erasing finds its
        answer kept."""
        found = self._found.get(needle)
        if found is None:
            within = max((n for n in self._found if n in needle), key=len, default="")
            found = [row for row in self._found.get(within, self.rows) if needle in row[0]]
            if len(self._found) >= FILTERS_KEPT:
                del self._found[next(n for n in self._found if n)]
            self._found[needle] = found
        return found

    def load_rows(self, at_least: int) -> None:
        """Put rows in the table up to ``at_least`` (rounded up to a page), never past what is shown."""
        wanted = min(len(self._shown), max(at_least, self.loaded + PAGE_ROWS))
        if wanted > self.loaded:
            self.query_one("#branches", DataTable).add_rows(self._shown[self.loaded : wanted])
            self.loaded = wanted

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= self.loaded - PAGE_ROWS // 2:
            self.load_rows(event.cursor_row + PAGE_ROWS)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.refill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.pressed_next()

    def on_key(self, event: events.Key) -> None:
        if event.key in ("up", "down", "pageup", "pagedown") and isinstance(self.focused, Input):
            table = self.query_one("#branches", DataTable)
            {
                "up": table.action_cursor_up,
                "down": table.action_cursor_down,
                "pageup": table.action_page_up,
                "pagedown": table.action_page_down,
            }[event.key]()
            event.stop()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.pressed_next()

    def pressed_next(self) -> None:
        table = self.query_one("#branches", DataTable)
        if self.keys:
            self.wizard.choose_branch(self.keys[table.cursor_row])

    def pressed_back(self) -> None:
        self.action_back()


class MomentScreen(WizardScreen):
    """The restore point: parsed live, echoed in UTC and local time, drawn on the restore window."""

    STEP = "moment"
    TITLE_TEXT = "Restore to which moment?"

    def compose_body(self) -> ComposeResult:
        window = self.wizard.window
        zone = self.wizard.zone
        assert window is not None
        yield Static(
            f"The restore window is {safe(window.describe(zone))}.",
            id="window-text",
        )
        yield WindowBar(window, id="bar")
        yield Input(
            value=self.wizard.moment_text,
            placeholder="35 minutes ago · 2026-11-21 01:29 · yesterday 23:59 · gisteren 23:59 · kemarin 23:59",
            id="at",
        )
        # For a moment older than the window: the newest snapshot before it (or that there is none), above
        # the reasons history refuses it, so that at 80×24 the way forward is what shows first.
        yield hidden(Static("", id="offer", classes="callout"))
        offer = Button("Use this snapshot", id="use-snapshot", variant="primary")
        offer.display = False
        yield offer
        yield Static("", id="resolved")
        yield Static(
            "Accepted: RFC 3339, 'YYYY-MM-DD HH:MM[:SS]' in your zone, '90m ago', and phrases in English, "
            f"Dutch and Indonesian. Your zone: {safe(str(zone))}.",
            classes="hint",
        )
        # Help with the hardest question, folded away so the one decision stays in front.
        with Collapsible(title="Find the last good moment for me", id="find-box"):
            yield Static(
                "A canary is a read-only query that is true while the data is healthy. The wizard bisects the "
                "history to the last moment it holds (about log2 of the window in looks, nothing restored).",
                classes="hint",
            )
            canary = self.wizard.config.checks[0] if self.wizard.config.checks else ""
            yield Input(value=canary, placeholder='SELECT count(*) >= 10 FROM "User"', id="canary")
            yield Button("Find it", id="find")
            yield Static("", id="find-status")
        with Collapsible(title="Look at the data at this moment", id="peek-box"):
            yield Input(placeholder='SELECT count(*) FROM "User"', id="peek-sql")
            yield Button("Look", id="peek")
            yield Static("", id="peek-result")
        with Collapsible(title="Timeline: operations and branch events", id="timeline-box"):
            yield Static("Open to load the project's recent operations…", id="timeline")

    def compose_actions(self) -> ComposeResult:
        yield self.back_button()
        yield Button("Continue", id="next", variant="primary", disabled=True)

    offered: SnapshotEntry | None = None

    def on_mount(self) -> None:
        self.query_one("#at", Input).focus()
        self.evaluate(self.wizard.moment_text)
        if self.wizard.snapshot_entries(datetime.now(UTC)) is not None:
            self.snapshots_loaded()
        else:
            self.wizard.load_snapshots()

    def snapshots_loaded(self) -> None:
        """The project's snapshots are known: draw them on the bar, and offer one for a moment too old."""
        entries = self.wizard.snapshot_entries(datetime.now(UTC)) or []
        self.query_one("#bar", WindowBar).show_snapshots([e.at for e in entries if e.own])
        self.evaluate(self.query_one("#at", Input).value)

    def snapshot_offer(self, moment: datetime) -> str:
        """For a moment older than the window: the newest snapshot of the branch before it, or why none."""
        entries = self.wizard.snapshot_entries(datetime.now(UTC))
        self.offered = None if entries is None else newest_before(entries, moment)
        if entries is None:
            return ""
        branch = self.wizard.branch
        name = branch.name if branch else "this branch"
        if self.offered is None:
            return f"Too old for Neon's history, and no snapshot of {name} is that old either."
        snap = self.offered
        local = snap.at.astimezone(self.wizard.zone)
        return (
            f"Too old for Neon's history, but a snapshot of {name} is older still: “{snap.name}”, its data "
            f"from {snap.at:%Y-%m-%d %H:%M} UTC ({local:%H:%M %Z}, {age_text(datetime.now(UTC) - snap.at)} "
            "ago), the newest before that moment."
        )

    def evaluate(self, text: str) -> bool:
        window = self.wizard.window
        assert window is not None
        resolved = self.query_one("#resolved", Static)
        offer_text = ""
        bar = self.query_one("#bar", WindowBar)
        ok = False
        self.offered = None
        if not text.strip():
            resolved.update("Type a moment just before the incident.")
            bar.show(None)
        else:
            try:
                moment = parse_moment(text, zone=self.wizard.zone, now=datetime.now(UTC))
            except TimePointError as exc:
                resolved.update(safe(str(exc)))
                bar.show(None)
            else:
                bar.show(moment.utc)
                try:
                    RestoreWindow(window.earliest, datetime.now(UTC), window.retention_seconds).check(moment)
                except TimePointError as exc:
                    hint = f"\nNext: {safe(exc.hint)}" if exc.hint else ""
                    offer_text = self.snapshot_offer(moment.utc) if moment.utc < window.earliest else ""
                    resolved.update(f"{safe(moment.describe())}\n{safe(str(exc))}{hint}")
                else:
                    resolved.update(f"→ {safe(moment.describe())}")
                    ok = True
        resolved.set_class(not ok and bool(text.strip()), "error")
        self.query_one("#next", Button).disabled = not ok
        offer = self.query_one("#offer", Static)
        offer.update(safe(offer_text))
        offer.display = bool(offer_text)
        use = self.query_one("#use-snapshot", Button)
        shown = use.display
        use.display = self.offered is not None
        if self.offered is not None:
            use.label = literal(f"Use the snapshot “{self.offered.name}”")
            if not shown:
                use.scroll_visible(animate=False)
        return ok

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "at":
            self.evaluate(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        {"at": self.pressed_next, "canary": self.pressed_find, "peek-sql": self.pressed_peek}.get(
            event.input.id or "", self.pressed_next
        )()

    def pressed_find(self) -> None:
        canary = self.query_one("#canary", Input).value.strip()
        if not canary:
            self.show_find("Type a canary first.", error=True)
            return
        self.show_find("Searching…")
        self.wizard.find_moment(canary)

    def show_find(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#find-status", Static)
        status.update(safe(text))
        status.set_class(error, "error")

    def found_moment(self, moment_text: str, summary: str) -> None:
        """The search is over: pre-fill the moment it found (the restore point itself)."""
        self.query_one("#at", Input).value = moment_text
        self.show_find(summary)
        self.evaluate(moment_text)

    def pressed_peek(self) -> None:
        sql = self.query_one("#peek-sql", Input).value.strip()
        text = self.query_one("#at", Input).value
        if not sql or not self.evaluate(text):
            self.show_peek("Type a valid moment above and a query here.", error=True)
            return
        self.show_peek("Looking…")
        self.wizard.peek(text, sql)

    def show_peek(self, text: str, *, error: bool = False) -> None:
        result = self.query_one("#peek-result", Static)
        result.update(safe(text))
        result.set_class(error, "error")

    def on_collapsible_expanded(self, event: Collapsible.Expanded) -> None:
        if event.collapsible.id == "timeline-box":
            self.wizard.load_timeline()

    def show_timeline(self, text: str) -> None:
        self.query_one("#timeline", Static).update(safe(text))

    def work_failed(self, name: str, text: str) -> None:
        target = {"find-moment": self.show_find, "peek": self.show_peek}.get(name)
        if target is not None:
            target(text, error=True)
        elif name == "timeline":
            self.show_timeline(f"The timeline could not be loaded: {text}")
        else:
            super().work_failed(name, text)

    def pressed_next(self) -> None:
        text = self.query_one("#at", Input).value
        if self.evaluate(text):
            self.wizard.choose_moment(text, datetime.now(UTC))
        else:
            self.notify("That moment cannot be restored: see the message under the box.", severity="error")

    def pressed_use_snapshot(self) -> None:
        if self.offered is not None:
            self.wizard.choose_snapshot(self.offered.id, datetime.now(UTC))

    def pressed_back(self) -> None:
        self.action_back()


STRATEGY_TEXT = {
    "new-branch": (
        "New branch with that data (recommended). Nothing is overwritten: the damaged branch stays as it is, "
        "a new branch holds the data as it was, and your env files are pointed at it. Undo = point them back."
    ),
    "in-place": (
        "In place. The branch itself is overwritten with the restored data; its connection strings stay "
        "the same, so the app needs no change. The current (damaged) state is kept as a backup branch. "
        "Connections drop briefly. You will type the branch name to confirm."
    ),
    "merge-back": (
        "Merge the lost rows back. Only the rows the past has and the live branch lost are re-inserted "
        "(and changed rows reverted, where you opt in per table); every write made since stays. The app "
        "needs no change. A checkpoint of the live branch is taken first, so the merge can be undone. "
        "You review the merge plan, table by table, before anything is written."
    ),
}


def lost_summary(lost: list[LostRows]) -> str:
    """``User 2, Order 5`` (rows written since the moment), the largest first."""
    shown = sorted((x for x in lost if x.rows), key=lambda x: -x.rows)
    return ", ".join(f"{x.table} {x.rows}" for x in shown[:4]) + (" …" if len(shown) > 4 else "")


class StrategyChoice(RadioSet):
    """The strategy list: arrows move, Enter chooses the highlighted strategy and goes on (a plain
    RadioSet's Enter only toggles, which on the selected option does nothing at all)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "choose", "Choose", show=False)]

    class Chosen(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def action_choose(self) -> None:
        self.action_toggle_button()
        buttons = list(self.query(RadioButton))
        # RadioSet keeps the highlighted option's index in _selected (no public accessor in Textual 8).
        index = self._selected
        button = buttons[index] if index is not None and index < len(buttons) else self.pressed_button
        if button is not None and button.id:
            self.post_message(self.Chosen(button.id))


class StrategyScreen(WizardScreen):
    STEP = "strategy"
    TITLE_TEXT = "How should the data come back?"

    def compose_body(self) -> ComposeResult:
        wizard = self.wizard
        if wizard.strategy == "merge-back" and wizard.merge_reviewable() is not None:
            wizard.strategy = "new-branch"  # the source changed since: merge back does not fit it
        current = wizard.strategy
        merge_reason = wizard.merge_reviewable()
        with StrategyChoice(id="strategy"):
            yield RadioButton("New branch with that data", value=current == "new-branch", id="new-branch")
            yield RadioButton("In place, keeping a backup", value=current == "in-place", id="in-place")
            yield RadioButton(
                "Merge the lost rows back, keeping every write since",
                value=current == "merge-back",
                id="merge-back",
                disabled=merge_reason is not None,
            )
        yield Static(safe(STRATEGY_TEXT[current]), id="consequences", classes="callout")
        if merge_reason is not None:
            yield Static(safe(f"Merge back is not offered here: {merge_reason}."), id="merge-note")
        else:
            yield Static("Counting the writes made since that moment…", id="lost-note")
        branch = self.wizard.branch
        if branch is not None and not branch.is_root:
            yield Static(
                f"{safe(branch.name, multiline=False)} is not a root branch: Neon restores only root branches in place.",
                classes="warn",
            )

    def compose_actions(self) -> ComposeResult:
        yield self.back_button()
        yield Button("Continue", id="next", variant="primary")

    def on_mount(self) -> None:
        choice = self.query_one("#strategy", RadioSet)
        choice.focus()
        # RadioSet highlights its first button; Enter would then switch the choice back.
        for _ in range({"in-place": 1, "merge-back": 2}.get(self.wizard.strategy, 0)):
            choice.action_next_button()
        if self.wizard.merge_reviewable() is None:
            if not self.wizard.load_lost():
                self.query_one("#lost-note", Static).display = False  # nothing to count against
            elif self.wizard.lost is not None and self.wizard.lost_for is not None:
                self.lost_loaded()

    def lost_loaded(self) -> None:
        """The writes since the moment are counted: recommend merging back when there are any."""
        lost = [x for x in self.wizard.lost or [] if x.rows]
        note = self.query_one("#lost-note", Static)
        note.display = True
        if not lost:
            note.update(
                "No write since that moment was found (tables with createdAt/updatedAt stamps): a new "
                "branch loses nothing."
            )
            return
        note.update(
            safe(
                f"Recommended: merge back. The live branch has writes since that moment ({lost_summary(lost)} "
                "rows): a new branch or an in-place restore would leave them out; merging keeps them."
            )
        )
        note.add_class("warn")
        if self.wizard.strategy == "new-branch":  # its text calls itself recommended: not here
            self.query_one("#consequences", Static).update(
                safe(STRATEGY_TEXT["new-branch"].replace(" (recommended)", ""))
            )
        button = self.query_one("#merge-back", RadioButton)
        button.label = "Merge the lost rows back, keeping every write since (recommended)"

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        key = event.pressed.id or "new-branch"
        self.wizard.strategy = key
        self.query_one("#consequences", Static).update(safe(STRATEGY_TEXT[key]))

    def on_strategy_choice_chosen(self, event: StrategyChoice.Chosen) -> None:
        self.wizard.strategy = event.key
        self.wizard.choose_strategy(event.key)

    def pressed_next(self) -> None:
        self.wizard.choose_strategy(self.wizard.strategy)

    def pressed_back(self) -> None:
        self.action_back()
