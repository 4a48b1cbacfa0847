"""The frame every wizard screen shares: step rail | the step | why panel, and a footer of keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import events
from textual._context import NoActiveAppError
from textual._time import get_time  # the clock of events.Key.time
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Static

from recovery_wizard.recovery.stepinfo import StepInfo
from recovery_wizard.tui.keys import ACTIVATION_KEYS
from recovery_wizard.tui.text import safe
from recovery_wizard.tui.widgets.rail import StepRail
from recovery_wizard.tui.widgets.why import WhyPanel

if TYPE_CHECKING:
    from recovery_wizard.tui.app import WizardApp

# The wizard's own steps that the runbook's STEP_INFO does not describe.
EXTRA_INFO = {
    "connect": StepInfo(
        "connect",
        "Connect",
        "Check the Neon API key and find the projects it can see.",
        "Everything after this talks to Neon's API with this key; a refused key is caught here, not mid-restore.",
        "Neon Console → Account settings → API keys; export NEON_API_KEY=…",
    ),
    "project": StepInfo(
        "project",
        "Project",
        "Pick the project whose data was damaged.",
        "A key may see several projects; restoring the wrong one is the mistake that cannot happen.",
        "Neon Console → the project list; neonctl projects list",
    ),
    "branch": StepInfo(
        "branch",
        "Branch",
        "Pick the damaged branch (usually the default branch, production).",
        "The restore reads this branch's history; its size, state and last reset tell you it is the right one.",
        "neonctl branches list --project-id <id>",
    ),
    "source": StepInfo(
        "source",
        "Where from?",
        "Choose where the data comes back from: Neon's history, a Neon snapshot, or a backup file.",
        "History reaches any moment of the restore window (hours to days); a snapshot or backup reaches "
        "further back, but only to the moment it was taken.",
        "Console: Restore (history) or Backup & Restore → Snapshots; neonctl branches restore.",
    ),
    "snapshot": StepInfo(
        "snapshot",
        "Snapshot",
        "Pick the snapshot to restore from: the newest one taken before the incident.",
        "A snapshot holds its branch's data at the moment it was taken: anything written after is not in it. "
        "One taken of another branch holds that branch's data, not this one's.",
        "Console: Backup & Restore → Snapshots → Restore; API: POST /projects/<id>/snapshots/<id>/restore",
    ),
    "file": StepInfo(
        "file",
        "Backup file",
        "Pick the team's own backup: the newest one taken before the incident.",
        "A backup file holds the data as it was when it was taken; it is loaded into a new branch made from "
        "the damaged one, checked against the file's own counts, and only then used. One taken after the "
        "incident likely holds the damage.",
        "recovery-wizard backups find; pg_restore --single-transaction --clean --if-exists --no-owner --no-acl",
    ),
    "merge": StepInfo(
        "merge",
        "Merge back",
        "Review what comes back per table, the conflicts, and the rule each table follows.",
        "A whole restore throws away every write made since the moment; a merge re-inserts only the lost "
        "rows and keeps the rest. Changed rows are reverted only where you opt in.",
        "recovery-wizard restore --strategy merge-back --dry-run",
    ),
    "moment": StepInfo(
        "moment",
        "Moment",
        "Pick the moment just before the incident, inside the restore window.",
        "Too early loses good writes, too late restores the damage; Neon keeps every moment in the window.",
        "Console: Restore → Time Travel Assist to look at the data at a moment.",
    ),
    "strategy": StepInfo(
        "strategy",
        "Strategy",
        "Restore to a new branch (nothing overwritten) or in place (keeps a backup).",
        "A new branch is reversible at no cost; in place keeps the app's connection strings but overwrites.",
        "Console: Branches → Restore, 'from history' onto the branch itself, or create a branch at a time.",
    ),
    "done": StepInfo(
        "done",
        "Done",
        "The summary, the incident record and how to undo each change.",
        "Tomorrow's post-mortem starts from the record written tonight.",
        "cat .recovery-wizard/runs/<run id>/report.md",
    ),
}


class WhereBox(Static):
    """The whereis lines at the top of a screen. They may arrive before the screen is mounted or after:
    the box reads them when it mounts and again when the app says they changed."""

    def __init__(self) -> None:
        super().__init__("", id="whereis", classes="whereis -empty")

    def on_mount(self) -> None:
        self.show_lines()

    def show_lines(self) -> None:
        lines = getattr(self.app, "where_lines", None) or []
        self.set_class(not lines, "-empty")
        if lines:
            self.update(safe("\n".join(lines)))


def breakpoint_class(size: int, breakpoints: list[tuple[int, str]] | None) -> str:
    """The class Textual's breakpoints give a screen of this width (or height); "" when there are none."""
    return next(
        (name for threshold, name in sorted(breakpoints or [], reverse=True) if size >= threshold), ""
    )


def step_info(key: str) -> StepInfo | None:
    if key in EXTRA_INFO:
        return EXTRA_INFO[key]
    # The runbook's own steps: the runner (and what it imports) loads when a later screen first asks.
    from recovery_wizard.recovery.runner import STEP_INFO

    return STEP_INFO.get(key)


class WizardScreen(Screen[None]):
    """One runbook step. Subclasses fill :meth:`compose_body` and :meth:`compose_actions`."""

    STEP: ClassVar[str] = ""
    INFO: ClassVar[str] = ""  # the why panel's entry, when it is not the step's own (a step with two screens)
    TITLE_TEXT: ClassVar[str] = ""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", show=True),
        Binding("f1", "app.toggle_why", "Why"),
    ]
    # Going back is safe until the plan is confirmed; after that, steps have touched the world.
    CAN_GO_BACK: ClassVar[bool] = True
    # Whether the whereis lines (where the app's URLs point) head this screen.
    SHOW_WHERE: ClassVar[bool] = False
    # When the screen's decisive button (Start, Continue, Quit) got the focus; None: not armed yet / no guard.
    ready_at: float | None = None

    def __init__(self) -> None:
        super().__init__()
        # The breakpoint classes Textual would add on the first resize, added now: added after the first
        # styling they restyle every widget of the screen once more before it is painted.
        try:
            app = self.app
        except NoActiveAppError:  # made outside a running app: Textual adds them on the first resize
            return
        width, height = app.size
        classes = (
            breakpoint_class(width, app.HORIZONTAL_BREAKPOINTS),
            breakpoint_class(height, app.VERTICAL_BREAKPOINTS),
        )
        self.add_class(*(name for name in classes if name), update=False)

    @property
    def wizard(self) -> WizardApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        wizard = self.wizard
        with Horizontal(id="frame"):
            yield StepRail(wizard.steps, self.STEP, wizard.step_states(), id="rail")
            with Vertical(id="main"):
                yield Static(safe(self.TITLE_TEXT or self.STEP.title()), id="title")
                if self.SHOW_WHERE:
                    # Outside the scrolled body: the lines stay in view whatever the list below does.
                    yield WhereBox()
                with VerticalScroll(id="body"):
                    yield from self.compose_body()
                with Horizontal(id="actions"):
                    yield from self.compose_actions()
            # A class, not an inline display: app.tcss hides the panel on narrow terminals whatever F1 says.
            yield WhyPanel(
                step_info(self.INFO or self.STEP),
                by_hand=wizard.by_hand(self.STEP),
                id="why",
                classes="" if wizard.show_why else "-off",
            )
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def compose_actions(self) -> ComposeResult:
        yield from ()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Hide "esc Back" where going back is not safe (or there is nothing to go back to).
        if action == "back" and (not self.CAN_GO_BACK or self.wizard.back_target() is None):
            return None
        return True

    def back_button(self) -> Button:
        """Back, disabled where there is no earlier choice to return to."""
        return Button("Back", id="back", disabled=self.wizard.back_target() is None)

    def action_back(self) -> None:
        if not self.CAN_GO_BACK:
            self.notify("Going back is not safe any more: this step changed things. Finish the run instead.")
        else:
            self.wizard.back()  # does nothing where there is no earlier choice

    def arm(self) -> None:
        """The decisive button is ready now: only a new press of Enter/Space, from now on, may press it."""
        self.ready_at = get_time()

    def on_key(self, event: events.Key) -> None:
        if event.key in ACTIVATION_KEYS and not self.wizard.fresh_press(self.ready_at, event.time):
            # A repeat from an earlier screen (Enter held or mashed): it must not choose what it never saw.
            event.prevent_default()
            event.stop()

    def where_loaded(self) -> None:
        for box in self.query(WhereBox).results(WhereBox):
            box.show_lines()

    def work_failed(self, name: str, text: str) -> None:
        """A worker started from this screen failed and its error box was closed: become usable again,
        with the error readable. Screens with work of their own override this."""
        self.notify(text, severity="error", timeout=10)

    def refresh_by_hand(self) -> None:
        text = self.wizard.by_hand(self.STEP)
        if text is not None:
            self.query_one("#why", WhyPanel).set_by_hand(text)

    def set_why(self, visible: bool) -> None:
        self.query_one("#why", WhyPanel).show(visible)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        handler = getattr(self, f"pressed_{(event.button.id or '').replace('-', '_')}", None)
        if handler is not None:
            event.stop()
            handler()
