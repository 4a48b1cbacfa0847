"""The merge plan, reviewed before Go: per table what comes back, what conflicts, and the user's choices.

The plan is the merge engine's (``recovery.merge``: ``plan_merge(...).to_dict()``), computed read-only on
both sides in a worker. Per table the user chooses the conflict rule (skip, keep live, take past) and
whether rows changed since are reverted (off by default); each change asks the engine again, so the counts
shown are always the ones the run will write. Samples come masked from the engine (secret-looking columns).
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Button, DataTable, Static

from recovery_wizard.tui.screens.base import WizardScreen
from recovery_wizard.tui.text import clip, literal, safe

RULES = ("skip", "keep-live", "take-past")  # recovery.merge.RULES (not imported: psycopg-free screen)
RULE_TEXT = {
    "skip": "skip the row",
    "keep-live": "keep the live row",
    "take-past": "take the past row",
}


def table_row(table: dict[str, Any], reverting: bool) -> tuple[Text, ...]:
    diff = table.get("diff") or {}
    changed = int(table.get("revert", 0)) + int(table.get("changed_not_reverted", 0))
    cells = [
        clip(str(table["table"]), 28),
        str(table.get("insert", 0)),
        f"{table.get('revert', 0)} of {changed}" if reverting else f"no ({changed} changed)",
        str(table.get("added_kept", 0)),
        str(len(table.get("conflicts") or [])),
        str(table.get("rule", "skip")),
    ]
    del diff
    return tuple(literal(c) for c in cells)


def table_details(table: dict[str, Any]) -> str:
    """Samples and conflicts of one table (values already masked by the engine)."""
    lines = [f"{table['table']}:"]
    for sample in table.get("insert_samples") or []:
        lines.append("  + " + ", ".join(f"{k}={v!r}" for k, v in sample.items()))
    for sample in table.get("revert_samples") or []:
        lines.append("  ~ " + ", ".join(f"{k}={v!r}" for k, v in sample.items()))
    conflicts = table.get("conflicts") or []
    for c in conflicts[:6]:
        lines.append(f"  ! {c['kind']} ({c['constraint']}): {c['detail']}")
    if len(conflicts) > 6:
        lines.append(f"  ! … and {len(conflicts) - 6} more")
    diff = table.get("diff") or {}
    for key, what in (
        ("past_only_columns", "columns gone since"),
        ("live_only_columns", "columns new since"),
    ):
        if diff.get(key):
            lines.append(f"  {what}: {', '.join(map(str, diff[key]))}")
    if len(lines) == 1:
        lines.append("  nothing to bring back")
    return "\n".join(lines)


class MergePlanScreen(WizardScreen):
    """The merge plan table; r changes the highlighted table's conflict rule, v its revert-changed opt-in."""

    STEP = "strategy"
    INFO = "merge"
    TITLE_TEXT = "Merge back: what comes back"
    BINDINGS: ClassVar[list[BindingType]] = [
        *WizardScreen.BINDINGS,
        Binding("r", "cycle_rule", "Conflict rule"),
        Binding("v", "toggle_revert", "Revert changed"),
    ]

    tables: list[dict[str, Any]]

    def compose_body(self) -> ComposeResult:
        yield Static(
            "Rows the past has and the live branch lost are re-inserted; rows added since are never deleted; "
            "rows changed since stay as they are unless you opt in per table (v). Each conflict (the same "
            "email signed up again, a parent gone) follows the table's rule (r). Nothing is written yet.",
            id="merge-text",
        )
        yield Static("Comparing the past with the live branch…", id="merge-status")
        table: DataTable[str] = DataTable(id="merge-tables", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="merge-details")

    def compose_actions(self) -> ComposeResult:
        yield Button("Back", id="back")
        yield Button("Continue", id="next", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.tables = []
        self.query_one("#merge-tables", DataTable).focus()
        if self.wizard.merge_plan is not None:  # back here from the run's plan: the same review
            self.merge_planned(self.wizard.merge_plan)
        else:
            self.wizard.load_merge_plan()

    def show_status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#merge-status", Static)
        status.update(safe(text))
        status.set_class(error, "error")

    def merge_planned(self, plan: dict[str, Any]) -> None:
        self.tables = list(plan.get("tables") or [])
        skipped = plan.get("skipped") or []
        head = (
            f"{plan.get('inserts', 0)} row(s) to re-insert, {plan.get('reverts', 0)} to revert, "
            f"{plan.get('conflicts', 0)} conflict(s) (each follows its table's rule); rows added since are kept."
        )
        if skipped:
            head += " Left alone: " + "; ".join(f"{s.get('table')} ({s.get('reason')})" for s in skipped[:4])
        self.show_status(head)
        table = self.query_one("#merge-tables", DataTable)
        row = table.cursor_row if table.row_count else 0
        table.clear(columns=True)
        table.add_columns("Table", "Re-insert", "Revert changed", "Added since (kept)", "Conflicts", "Rule")
        reverting = self.wizard.revert_changed
        table.add_rows([table_row(t, t["table"] in reverting) for t in self.tables])
        if self.tables:
            table.move_cursor(row=min(row, len(self.tables) - 1))
            self.show_details()
        next_button = self.query_one("#next", Button)
        next_button.disabled = False
        next_button.label = (
            "Continue" if plan.get("inserts") or plan.get("reverts") else "Continue (nothing to merge)"
        )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_details()

    def show_details(self) -> None:
        if not self.tables:
            return
        row = self.query_one("#merge-tables", DataTable).cursor_row
        self.query_one("#merge-details", Static).update(safe(table_details(self.tables[row])))

    def highlighted_table(self) -> str | None:
        if not self.tables:
            return None
        return str(self.tables[self.query_one("#merge-tables", DataTable).cursor_row]["table"])

    def action_cycle_rule(self) -> None:
        name = self.highlighted_table()
        if name is None:
            return
        rules = self.wizard.merge_rules
        current = next((t.get("rule") for t in self.tables if t["table"] == name), "skip")
        rules[name] = RULES[(RULES.index(current) + 1) % len(RULES)] if current in RULES else RULES[0]
        self.replan(f"{name}: on a conflict, {RULE_TEXT[rules[name]]}.")

    def action_toggle_revert(self) -> None:
        name = self.highlighted_table()
        if name is None:
            return
        reverting = self.wizard.revert_changed
        if name in reverting:
            reverting.discard(name)
            self.replan(f"{name}: rows changed since stay as they are.")
        else:
            reverting.add(name)
            self.replan(f"{name}: rows changed since are reverted to the past.")

    def replan(self, what: str) -> None:
        self.query_one("#next", Button).disabled = True
        self.show_status(f"{what} Comparing again…")
        self.wizard.load_merge_plan()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # Enter on a row shows it; Continue is its own button (Tab reaches it)

    def work_failed(self, name: str, text: str) -> None:
        self.show_status(f"The merge plan could not be made: {text}", error=True)

    def pressed_next(self) -> None:
        self.wizard.accept_merge_plan()

    def pressed_back(self) -> None:
        self.action_back()

    def action_back(self) -> None:
        # Back to the strategies (this screen shares their step on the rail).
        self.wizard.goto("strategy")
