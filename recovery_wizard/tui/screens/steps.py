"""The plan and the screens that run the runbook's steps: restore, verify, env files, Prisma, done."""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Button, DataTable, Static

from recovery_wizard.recovery.report import count_cell
from recovery_wizard.redact import redact
from recovery_wizard.tui.screens.base import WizardScreen
from recovery_wizard.tui.screens.modals import TypeToConfirmModal
from recovery_wizard.tui.text import clip, literal, safe


class PlanScreen(WizardScreen):
    STEP = "plan"
    TITLE_TEXT = "The plan: everything that will happen, in order"

    def compose_body(self) -> ComposeResult:
        # Above the steps: at 80×24 a warning under a long plan would be scrolled out of sight.
        yield hidden(Static("", id="warnings", classes="loud"))
        yield Static("Checking everything before the first change…", id="plan")

    def compose_actions(self) -> ComposeResult:
        yield self.back_button()
        recheck = Button("Check again", id="recheck")
        recheck.display = False
        yield recheck
        yield Button("Start", id="start", variant="warning", disabled=True)

    def on_mount(self) -> None:
        self.wizard.make_plan()

    def pressed_recheck(self) -> None:
        plan = self.query_one("#plan", Static)
        plan.update("Checking everything before the first change…")
        plan.remove_class("error")
        self.query_one("#recheck", Button).display = False
        self.wizard.make_plan()

    def work_failed(self, name: str, text: str) -> None:
        """The checks failed and the error box was closed: say so here, offer Back and Check again."""
        if name != "plan":
            # Start refused (another run holds the directory): the plan stands, Start is enabled again.
            super().work_failed(name, text)
            return
        plan = self.query_one("#plan", Static)
        plan.update(f"The plan could not be checked; nothing was changed.\n{safe(text)}")
        plan.add_class("error")
        recheck = self.query_one("#recheck", Button)
        recheck.display = True
        recheck.focus()

    def show_plan(self) -> None:
        plan = self.wizard.plan
        assert plan is not None
        steps = "\n".join(
            f"{i}. {safe(line, multiline=False)}" for i, line in enumerate(plan.actions(), start=1)
        )
        self.query_one("#plan", Static).update(steps)
        show_warnings(self.query_one("#warnings", Static), plan.warnings)
        start = self.query_one("#start", Button)
        start.label = {"drill": "Start the drill", "in-place": "Restore in place…"}.get(
            plan.command if plan.command == "drill" else plan.strategy, "Create the restore branch"
        )
        start.refresh(layout=True)  # a Button does not resize for a new label by itself
        start.disabled = False
        start.focus()
        self.arm()
        self.refresh_by_hand()  # the restore command with this plan's name and moment

    def show_refusal(self, message: str, hint: str) -> None:
        text = f"Nothing was changed. {safe(message)}"
        if hint:
            text += f"\nNext: {safe(hint)}"
        plan = self.query_one("#plan", Static)
        plan.update(text)
        plan.add_class("error")

    def pressed_start(self) -> None:
        plan = self.wizard.plan
        if plan is not None and plan.in_place and plan.command != "drill":
            # Typed here, before the run begins: Cancel leaves nothing begun and the plan still on screen.
            question = (
                f"This overwrites every database on {plan.branch.name!r} with its state at "
                f"{plan.moment.describe()}."
            )
            self.app.push_screen(TypeToConfirmModal(question, plan.branch.name), self._overwrite_answered)
            return
        self.query_one("#start", Button).disabled = True
        self.wizard.start_run()

    def _overwrite_answered(self, confirmed: bool | None) -> None:
        plan = self.wizard.plan
        if not confirmed or plan is None:
            self.notify("Nothing was changed: the in-place restore was not confirmed.")
            return
        self.wizard.prompter.confirmed_overwrite = plan.branch.name
        self.query_one("#start", Button).disabled = True
        self.wizard.start_run()

    def pressed_back(self) -> None:
        self.action_back()


class RunStepScreen(WizardScreen):
    """A step that changes things: its progress, what it shows, and a log. Implements the TUI's RunView."""

    CAN_GO_BACK = False
    WORK: ClassVar[str] = ""  # the WizardApp method that runs this step

    def compose_body(self) -> ComposeResult:
        yield Static("", id="progress")
        yield Static("", id="block")
        yield from self.compose_result()
        with VerticalScroll(id="log", classes="empty"):
            yield Static("", id="log-text")

    def compose_result(self) -> ComposeResult:
        yield from ()

    def compose_actions(self) -> ComposeResult:
        yield Button("Continue", id="next", variant="primary", disabled=True)

    started: float | None = None

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def on_mount(self) -> None:
        self.started = time.monotonic()
        self.timer = self.set_interval(0.5, self._tick)
        if self.WORK:
            getattr(self.wizard, self.WORK)()

    def _tick(self) -> None:
        if self.started is not None:
            self.query_one("#progress", Static).set_class(True, "running")
            self._render_progress()

    def _render_progress(self) -> None:
        elapsed = 0 if self.started is None else time.monotonic() - self.started
        text = getattr(self, "_progress_text", "Working…")
        # The runbook's own progress lines already say how long ("…, 37 s"): do not say it twice.
        clock = "" if re.search(r"\d+ s$", text) else f"  ·  {elapsed:.0f} s"
        self.query_one("#progress", Static).update(f"{safe(text)}{clock}")

    # RunView
    def add_line(self, kind: str, text: str) -> None:
        if kind == "step":
            return  # the screen's title already says which step this is
        prefix = {"warn": "! ", "output": "| "}.get(kind, "")
        self.lines.append(safe(redact(prefix + text)))
        # Keep the last lines only: a long Prisma log must not grow the screen without bound.
        del self.lines[:-300]
        self.query_one("#log-text", Static).update("\n".join(self.lines))
        log = self.query_one("#log", VerticalScroll)
        log.remove_class("empty")
        log.scroll_end(animate=False)

    def set_progress(self, text: str) -> None:
        self._progress_text = text
        self._render_progress()

    def show_block(self, title: str, body: str) -> None:
        self.query_one("#block", Static).update(f"[b]{safe(title)}[/b]\n{safe(redact(body))}")

    def finished(self, message: str, *, ok: bool = True) -> None:
        """The step's work is over: stop the clock, say how it went, let the user continue."""
        elapsed = time.monotonic() - self.started if self.started else 0
        self.started = None
        self.timer.stop()
        progress = self.query_one("#progress", Static)
        progress.update(f"{safe(message)}  ·  {elapsed:.1f} s")
        progress.set_class(False, "running")
        progress.set_class(not ok, "error")
        progress.set_class(ok, "ok")
        button = self.query_one("#next", Button)
        button.disabled = False
        button.focus()
        self.arm()

    def offer_summary(self) -> None:
        """The run cannot go on: Continue becomes "See the summary" (and leads to Done)."""
        button = self.query_one("#next", Button)
        button.label = "See the summary"
        button.refresh(layout=True)  # a Button does not resize for a new label by itself

    def pressed_next(self) -> None:
        self.wizard.advance()


class RestoreScreen(RunStepScreen):
    STEP = "restore"
    TITLE_TEXT = "Restoring"
    WORK = "run_restore"


class VerifyScreen(RunStepScreen):
    STEP = "verify"
    TITLE_TEXT = "Verify: damaged and restored, side by side"
    WORK = "run_verify"

    def compose_result(self) -> ComposeResult:
        yield DataTable(id="counts", zebra_stripes=True, cursor_type="none")
        yield Static("", id="checks")

    def show_verification(self, verification: dict[str, Any]) -> None:
        """The counts side by side; from a backup file also the file's own count per table (``source_counts``,
        what the CLI shows as "Against the backup file's own counts"), beside the restored and damaged ones."""
        table = self.query_one("#counts", DataTable)
        table.clear(columns=True)
        own: dict[str, Any] = verification.get("source_counts") or {}
        in_file = {_qualified(str(line["table"])): line for line in own.get("tables", [])}
        columns = ["Table", "Damaged", "Restored", "Change"]
        if own:
            # One column, count and verdict together: six columns would not fit beside the rail at 80 columns.
            columns.append("In the file")
        table.add_columns(*columns)
        for t in verification.get("tables", []):
            name = t["table"] if t["schema"] == "public" else f"{t['schema']}.{t['table']}"
            cells = [
                literal(name),
                count_cell(t.get("damaged")),
                count_cell(t.get("restored")),
                _delta(t.get("delta")),
            ]
            if own:
                line = in_file.pop(f"{t['schema']}.{t['table']}", None)
                cells.append(_file_cell(line, t.get("restored")))
            table.add_row(*cells)
        for key, line in in_file.items():  # in the file, but on neither branch's list (missing, or renamed)
            table.add_row(literal(key.removeprefix("public.")), "—", "—", "", _file_cell(line, None))
        lines = _file_lines(own) if own else []
        for check in verification.get("checks", []):
            passed = bool(check.get("passed"))
            restored, damaged = check.get("restored") or {}, check.get("damaged") or {}
            mark = "✔ PASS" if passed else "✘ FAIL"
            lines.append(
                f"[b $text-{'success' if passed else 'error'}]{mark}[/] — {safe(_one_line(check['sql']), multiline=False)}\n"
                f"      restored: {safe(str(restored.get('value') or restored.get('error')), multiline=False)}"
                f"   damaged: {safe(str(damaged.get('value') or damaged.get('error') or '—'), multiline=False)}"
            )
        if not verification.get("checks"):
            lines.append("No checks given.")
        self.query_one("#checks", Static).update("\n".join(lines))
        # The table replaces the plain-text block the runbook also reports.
        self.query_one("#block", Static).update("")


def _qualified(name: str) -> str:
    """A table as ``schema.table`` (the file's counts name ``public`` tables without it, as counts.py reads)."""
    return name if "." in name else f"public.{name}"


def _file_cell(line: dict[str, Any] | None, restored: dict[str, Any] | None) -> Any:
    """The file's count and its verdict for one table: ``62 ✘``, ``≥18 ✔*`` (* partial in the file),
    ``3 ✘ missing``; blank when the file gives no count for it. The line under the table names the tables
    that differ, as the CLI's MISMATCH does."""
    if line is None:
        return ""
    expected = f"≥{line['expected']}" if line.get("at_least") else str(line["expected"])
    actual = line.get("actual")
    text = f"{expected} " + ("✘ missing" if actual is None else "✔" if line.get("ok") else "✘")
    if line.get("partial"):
        text += "*"  # the file itself says it holds fewer rows than the table had
    # The side-by-side may show an estimate (~); the check counted exactly: say what it counted if it differs.
    if actual is not None and (not restored or restored.get("rows") != actual):
        text += f" ({actual} loaded)"
    return literal(text)


def _file_lines(own: dict[str, Any]) -> list[str]:
    """What the counts table cannot say: which file, the verdict, and the file's and the load's notes."""
    tables = own.get("tables", [])
    wrong = [t for t in tables if not t.get("ok")]
    head = f"Against the backup file's own counts ({safe(str(own.get('file')), multiline=False)}): "
    if not tables:
        head += "the file states no row counts (no manifest, no TOC counts, no stats); only the side by side."
    elif wrong:
        names = ", ".join(safe(str(t["table"]), multiline=False) for t in wrong)
        head += f"[b $text-error]✘ {len(wrong)} of {len(tables)} table(s) differ[/] ({names})."
    else:
        head += f"[b $text-success]✔ all {len(tables)} table(s) as the file says[/]."
    lines = [head]
    lines += [
        f"  * partial in the file: {safe(str(note), multiline=False)}" for note in own.get("partial", [])
    ]
    if own.get("unmapped_fields"):
        lines.append(f"  fields with no column: {safe(', '.join(own['unmapped_fields']), multiline=False)}")
    if own.get("missing_tables"):
        lines.append(
            f"  tables the file does not hold: {safe(', '.join(own['missing_tables']), multiline=False)}"
        )
    lines += [f"  load: {safe(str(note), multiline=False)}" for note in own.get("load_notes", [])]
    return lines


def _one_line(sql: str, limit: int = 160) -> str:
    """A check's SQL as one line, cut at ``limit``: the verdict, not the query, is what this screen is for."""
    return clip(" ".join(sql.split()), limit)


def _delta(delta: int | None) -> str:
    return "" if not delta else f"{delta:+d}"


class EnvScreen(RunStepScreen):
    STEP = "env"
    TITLE_TEXT = "Point the app at the restored data"
    WORK = "run_env"


class PrismaScreen(RunStepScreen):
    STEP = "prisma"
    TITLE_TEXT = "Prisma: pull the schema, generate the client"
    WORK = "run_prisma"


class CleanupScreen(RunStepScreen):
    STEP = "cleanup"
    TITLE_TEXT = "Clean up the drill"
    WORK = "run_cleanup"


class DoneScreen(WizardScreen):
    STEP = "done"
    TITLE_TEXT = "Done"
    CAN_GO_BACK = False

    def compose_body(self) -> ComposeResult:
        yield Static("Writing the incident record…", id="summary")
        yield hidden(Static("", id="by-hand", classes="loud"))
        yield hidden(Static("", id="steps"))  # until the run's steps are known
        yield Static("", id="undo")

    def compose_actions(self) -> ComposeResult:
        yield Button("Quit", id="quit", variant="primary")

    def on_mount(self) -> None:
        self.wizard.finish()

    def show_summary(
        self, summary: str, undo: list[str], *, ok: bool, steps: list[str] | None = None
    ) -> None:
        text = self.query_one("#summary", Static)
        text.update(safe(redact(summary)))
        text.set_class(not ok, "error")
        if steps:
            listed = self.query_one("#steps", Static)
            listed.update("[b]Steps[/b]\n" + safe("\n".join(steps)))
            listed.display = True
        self.query_one("#undo", Static).update("[b]How to undo[/b]\n" + safe(redact("\n".join(undo))))
        self.query_one("#quit", Button).focus()
        self.arm()  # Enter repeated from the last step must not press Quit before the summary is read

    def show_by_hand(self, todo: list[str]) -> None:
        """What the run left for a person to do (repoint the hosting provider, redeploy…), or nothing."""
        by_hand = self.query_one("#by-hand", Static)
        by_hand.update(
            "[b]Left to do by hand[/b]\n"
            + "\n".join(f"• {safe(redact(line), multiline=False)}" for line in todo)
            if todo
            else ""
        )
        by_hand.display = bool(todo)

    def pressed_quit(self) -> None:
        self.wizard.exit(self.wizard.exit_code)


def hidden(widget: Static) -> Static:
    """Not shown (nor its border) until it has something to say."""
    widget.display = False
    return widget


def show_warnings(box: Static, warnings: list[str]) -> None:
    """The plan's warnings, loudly, or nothing at all (no empty box)."""
    box.update(
        "[b]Read this before you start[/b]\n" + "\n".join(f"⚠ {safe(w, multiline=False)}" for w in warnings)
        if warnings
        else ""
    )
    box.display = bool(warnings)
