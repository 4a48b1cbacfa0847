"""The wizard app: which screen comes next, and the workers that do each step's work.

All I/O runs in workers owned by the app (a screen's workers would die with the screen when the wizard moves
on). Every worker failure goes through one path, :meth:`WizardApp.on_worker_state_changed`, which shows the
ErrorModal with Neon's message, the request id and the next thing to try, and offers to try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Button
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from recovery_wizard import __version__
from recovery_wizard.errors import RecoveryError
from recovery_wizard.recovery.outcome import RunError, StepFailedError, UsageError
from recovery_wizard.redact import Secret, redact
from recovery_wizard.textsafe import printable
from recovery_wizard.tui.adapters import TuiPrompter, TuiReporter
from recovery_wizard.tui.contrast import readable_variables
from recovery_wizard.tui.keys import ACTIVATION_KEYS, ARM_SECONDS
from recovery_wizard.tui.screens.base import WizardScreen
from recovery_wizard.tui.screens.connect import ConnectScreen
from recovery_wizard.tui.text import clip

# First paint waits for this module: it imports Textual and the Connect screen only. The runbook, the Neon
# client (httpx, msgspec), the time parser and the later screens load inside the methods that use them,
# once the first screen is up (tests/test_imports.py holds the line; docs/performance.md has the figures).
if TYPE_CHECKING:
    import httpx

    from recovery_wizard.neon import NeonClient
    from recovery_wizard.neon.models import Branch, Project, Snapshot
    from recovery_wizard.recovery.checkpoint import Checkpoint
    from recovery_wizard.recovery.files.detect import BackupInfo
    from recovery_wizard.recovery.files.find import FindResult
    from recovery_wizard.recovery.journal import Journal
    from recovery_wizard.recovery.lostwrites import LostRows
    from recovery_wizard.recovery.peek import Lens
    from recovery_wizard.recovery.plan import Plan, RunOptions
    from recovery_wizard.recovery.runner import Runner, RunResult
    from recovery_wizard.recovery.snapshot_list import SnapshotEntry
    from recovery_wizard.recovery.timepoint import RestoreWindow
    from recovery_wizard.recovery.whereis import Where
    from recovery_wizard.tui.onerun import RunGuard


class Mode(StrEnum):
    NORMAL = "normal"
    DEMO = "demo"
    DRILL = "drill"


RESTORE_STEPS = [
    ("connect", "Connect"),
    ("project", "Project"),
    ("branch", "Branch"),
    ("source", "Where from?"),
    ("moment", "Moment"),
    ("strategy", "Strategy"),
    ("plan", "Plan"),
    ("restore", "Restore"),
    ("verify", "Verify"),
    ("env", "Env files"),
    ("prisma", "Prisma"),
    ("done", "Done"),
]
DRILL_STEPS = [
    ("connect", "Connect"),
    ("project", "Project"),
    ("branch", "Branch"),
    ("source", "Where from?"),
    ("moment", "Moment"),
    ("plan", "Plan"),
    ("restore", "Restore"),
    ("verify", "Verify"),
    ("cleanup", "Clean up"),
    ("done", "Done"),
]
# Each step's screen as "module.Class" under tui/screens/: a module loads when its first screen is shown.
SCREENS: dict[str, str] = {
    "connect": "connect.ConnectScreen",
    "project": "choices.ProjectScreen",
    "branch": "choices.BranchScreen",
    "source": "sources.SourceScreen",
    "moment": "choices.MomentScreen",
    "strategy": "choices.StrategyScreen",
    "plan": "steps.PlanScreen",
    "restore": "steps.RestoreScreen",
    "verify": "steps.VerifyScreen",
    "env": "steps.EnvScreen",
    "prisma": "steps.PrismaScreen",
    "cleanup": "steps.CleanupScreen",
    "done": "steps.DoneScreen",
}
PEEK_VALUE_LIMIT = 200
# Up to here, Back is safe: nothing has been written.
CHOICE_STEPS = ("connect", "project", "branch", "source", "moment", "strategy", "plan")
# The "moment" step's screen and rail title for each source kind: where the data comes from decides what
# is chosen next (a moment in Neon's history, or one snapshot).
SOURCE_STEP: dict[str, tuple[str, str]] = {
    "history": ("choices.MomentScreen", "Moment"),
    "snapshot": ("sources.SnapshotScreen", "Snapshot"),
    "file": ("backup_files.BackupFileScreen", "Backup file"),
    # Chosen on "Where from?" itself (each checkpoint is listed there): the step after it is passed over.
    "checkpoint": ("sources.CheckpointScreen", "Checkpoint"),
}
# The run's own workers: only their failure can end the run.
RUN_WORKERS = frozenset({"restore", "verify", "env", "prisma", "cleanup", "finish"})
# Workers that belong to the screen they were started from (a search, a look, the plan's checks): cancelled
# when the user leaves that screen, so their outcome never lands on a later one.
SCREEN_WORKERS = frozenset(
    {"find-moment", "peek", "timeline", "plan", "snapshots", "backups", "backup-file", "lost", "merge-plan"}
)


@dataclass
class WizardConfig:
    workdir: Path
    mode: Mode = Mode.NORMAL
    api_key: str | None = None
    api_url: str | None = None
    project_id: str | None = None
    tz: str | None = None
    checks: list[str] = field(default_factory=list)
    env_files: list[Path] = field(default_factory=list)
    intro: str | None = None  # the demo's "what happened" text on the first screen
    learn: bool | None = None  # the why panel; default: on in demo and drill
    http: httpx.AsyncClient | None = None  # injected by tests (e.g. an ASGI transport)
    arm_seconds: float = ARM_SECONDS  # see ACTIVATION_KEYS
    # Work to finish before Begin (the demo's sandbox), run in a worker once the first screen is up. It fills
    # in this config (api_key, api_url, project_id, checks, intro) and reports its phases through the callback.
    starting: Callable[[WizardConfig, Callable[[str], None]], Awaitable[None]] | None = None


def _zone(name: str | None) -> tzinfo:
    from recovery_wizard.recovery.timepoint import resolve_zone

    return resolve_zone(name)


class WizardApp(App[int]):
    # Absolute: Textual resolves a relative CSS_PATH against a subclass's own file.
    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "recovery-wizard"
    # Small terminals get the step first (app.tcss): under 60 columns no rail, under 20 rows compact controls.
    # (Textual declares them as plain attributes, so they cannot be ClassVars here.)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (60, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS = [(0, "-short"), (20, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit_wizard", "Quit", priority=True),
        Binding("f1", "toggle_why", "Why", show=False),
        Binding("f2", "toggle_theme", "Light/dark"),
    ]

    def __init__(self, config: WizardConfig) -> None:
        super().__init__()
        self.config = config
        self.mode = config.mode
        self.show_why = config.learn if config.learn is not None else config.mode in (Mode.DEMO, Mode.DRILL)
        self._steps = DRILL_STEPS if config.mode == Mode.DRILL else RESTORE_STEPS
        self.done_steps: set[str] = set()  # choice steps made; run steps are read from the journal
        self.outcomes: dict[str, str] = {}  # run steps that ended in this session without a journal record
        self.skipped_steps: set[str] = set()  # steps decided for the user (one project): Back passes them
        self.current = "connect"
        # The zone is read when a time is first shown or parsed, not before the first paint (it loads the
        # time module and the zone database); a zone the user named is checked at once, as before.
        self._zone: tzinfo | None = _zone(config.tz) if config.tz else None
        self.client: NeonClient | None = None
        self._own_http: httpx.AsyncClient | None = None
        self.projects: list[Project] = []
        self.project: Project | None = None
        self.branches: list[Branch] = []
        self.branch: Branch | None = None
        self.window: RestoreWindow | None = None
        # Where the data comes from ("Where from?"): Neon history at a moment, or a snapshot.
        self.source_kind = "history"
        self.snapshot: SnapshotEntry | None = None
        self.raw_snapshots: list[Snapshot] | None = None  # the project's, once listed
        self.snapshots_error: str | None = None  # why they could not be listed (history still works)
        self.backup_file: BackupInfo | None = None  # the backup file chosen ("file:<path>")
        self.checkpoint: Checkpoint | None = None  # the guard checkpoint chosen ("checkpoint:<run id>")
        # Where the app's database URLs point (whereis), once looked up after connecting; None until then.
        self.where_lines: list[str] | None = None
        # The writes the damaged branch holds after the chosen moment (lost by a whole restore): per table.
        self.lost: list[LostRows] | None = None
        self.lost_for: tuple[str, datetime] | None = None  # (branch id, moment) the list was made for
        # Merge back: per table, the conflict rule and whether changed rows are reverted (opt in).
        self.merge_rules: dict[str, str] = {}
        self.revert_changed: set[str] = set()
        self.merge_plan: dict[str, Any] | None = None  # the reviewed plan (MergePlan.to_dict())
        # The backup files found, and the incident moment they were placed against (one search per moment).
        self.backups: tuple[datetime | None, FindResult] | None = None
        self.moment_text = ""
        self.moment_chosen_at: datetime | None = None
        self._lens_cache: Lens | None = None
        self._names: dict[str, list[str]] = {}
        self.search: dict[str, Any] | None = None
        self.strategy = "new-branch"
        self.options: RunOptions | None = None
        self.plan: Plan | None = None
        self.runner: Runner | None = None
        self.exit_code = 0
        self.prompter = TuiPrompter(self)
        self.reporter = TuiReporter(self)
        self._work: dict[str, tuple[Callable[[], Awaitable[None]], str]] = {}
        self._guard: RunGuard | None = None
        self._owners: dict[str, Screen[Any]] = {}  # SCREEN_WORKERS: the screen each was started from
        self._activation_at = self._previous_activation_at = float("-inf")
        self._quitting = False

    @property
    def zone(self) -> tzinfo:
        if self._zone is None:
            self._zone = _zone(self.config.tz)
        return self._zone

    @zone.setter
    def zone(self, zone: tzinfo) -> None:
        self._zone = zone

    # --- lifecycle -----------------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        # The first screen is the stack's bottom, not pushed over Textual's blank default screen: that one
        # would be composed, styled and resumed too before the first paint.
        if self.config.learn is None and self.size.width < 90:
            # At 80 columns the panel would squeeze the step itself; F1 still shows it.
            self.show_why = False
        screen = ConnectScreen()
        # What switch_screen does for a screen it puts on the stack (Textual 8.2, pinned): each step's
        # switch_screen pops the callback of the screen it replaces, this one included.
        screen._push_result_callback(screen, None)
        return screen

    @property
    def guard(self) -> RunGuard:
        """The app directory's lock while a run writes, and the unfinished runs there (see onerun.py). Made
        when first asked (a run is about to start): the journal and lock modules are not first paint's."""
        if self._guard is None:
            from recovery_wizard.tui.onerun import RunGuard

            self._guard = RunGuard(
                self.config.workdir, "drill" if self.config.mode == Mode.DRILL else "restore"
            )
        return self._guard

    async def on_unmount(self) -> None:
        if self._guard is not None:
            self._guard.release()
        if self._own_http is not None:
            await self._own_http.aclose()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and event.key in ACTIVATION_KEYS:
            # event.time is when the key arrived (Textual's monotonic clock), not when the loop got to it:
            # keys queued while the app was busy keep their true spacing.
            self._previous_activation_at, self._activation_at = self._activation_at, event.time
        await super().on_event(event)

    def fresh_press(self, ready_at: float | None, pressed_at: float) -> bool:
        """Was the activation key pressed at ``pressed_at`` a new press, made after the screen (``ready_at``)
        was ready and not a repeat of the one before?"""
        if ready_at is None:
            return True
        arm = self.config.arm_seconds
        return pressed_at - ready_at >= arm and pressed_at - self._previous_activation_at >= arm

    @property
    def run_running(self) -> bool:
        return self.runner is not None and self.runner.result.status == "running"

    def action_quit_wizard(self) -> None:
        """Ctrl+Q. Before the run and after it ends: quit at once. During the run: ask, then stop it on the
        documented interrupt path (journal, incident record, resume hint, exit 3)."""
        from recovery_wizard.tui.screens.modals import ConfirmModal

        if not self.run_running:
            self.close_run()
            # Before any run nothing was changed (0); after one: the run's own code (0 after success).
            self.exit(self.exit_code)
            return
        if self._quitting:
            return
        runner = self.runner
        assert runner is not None
        self._quitting = True
        command = "drill" if self.mode == Mode.DRILL else "restore"
        question = (
            f"The run is {self._where(runner)}. Stop it here? The journal keeps how far it got, the incident "
            f"record is written, and `recovery-wizard {command} --resume {runner.journal.run_id}` continues it."
        )

        def chosen(stop: bool | None) -> None:
            self._quitting = False
            if stop:
                self.run_worker(
                    self._interrupt("you (Ctrl+Q, Stop the run)"), name="interrupt", exit_on_error=False
                )

        self.push_screen(ConfirmModal(question, yes="Stop the run", no="Keep going"), chosen)

    def stop_on_signal(self, signum: int) -> None:
        """SIGTERM or SIGHUP (a closed terminal, an SSH drop): no one is there to ask; stop the run on the
        interrupt path (journal, record, resume hint) or, with no run going, just close."""
        self.log.warning(f"signal {signum}: closing")
        if self.run_running:
            why = signal.Signals(signum).name
            self.run_worker(self._interrupt(why), name="interrupt", exit_on_error=False)
        else:
            self.close_run()
            self.exit(self.exit_code)

    async def _interrupt(self, why: str) -> None:
        """Stop the run where it is: cancel its step, journal and report it as interrupted, exit 3."""
        from recovery_wizard.recovery.runner import interrupted

        runner = self.runner
        assert runner is not None
        # Cancelled at its next await (a request, a poll, a modal's answer): what it began stays "begun" in
        # the journal, which --resume reconciles, exactly as after Ctrl-C in the CLI.
        for name in RUN_WORKERS:
            for worker in self.workers.cancel_group(self, name):
                with contextlib.suppress(WorkerCancelled, WorkerFailed):
                    await worker.wait()
        result = runner.result
        if result.status == "running":
            # The CLI's interrupt path too: status "interrupted", the exact --resume command as the hint.
            interrupted(result, asyncio.CancelledError(why))
            self.outcomes.setdefault(result.step or self.current, "interrupted")
        self.exit_code = result.error.exit_code if result.error is not None else 3
        self.close_run()
        self.exit(self.exit_code)

    def _where(self, runner: Runner) -> str:
        step = runner.result.step or self.current
        finished = runner.journal.done(step) is not None or self.outcomes.get(step) in ("done", "skipped")
        return f"after the step {step!r}" if finished else f"at the step {step!r}"

    def close_run(self) -> None:
        """The run ended (or is stopped): make sure its incident record and journal end are written."""
        runner = self.runner
        if runner is None or runner.result.report_path is not None or self.client is None:
            return
        result = runner.result
        if result.status == "running":
            return
        from recovery_wizard.recovery.runner import finish_run

        try:
            finish_run(result, self.client)
        except OSError as exc:  # the summary still says what happened; the journal shows how far it got
            self.log.error(f"could not write the incident record: {exc}")

    def closing_summary(self) -> str:
        """What the terminal shows once the wizard has closed: the outcome, ids, record, undo, what is left."""
        from recovery_wizard.recovery.handoff import left_by_hand

        runner = self.runner
        if runner is None:
            return "recovery-wizard: nothing was changed."
        result = runner.result
        if result.status == "running":
            return f"recovery-wizard: the run {runner.journal.run_id} did not finish; its journal is in {runner.journal.run_dir}."
        lines = ["recovery-wizard: " + summary_text(result).replace("\n", "\n  ")]
        plan = result.plan
        if (
            result.restore_branch is not None
            and plan is not None
            and not plan.in_place
            and result.status != "done"
        ):
            branch = result.restore_branch
            fate = "deleted" if result.deleted else "kept"
            lines.append(f"  Restore branch: {branch.name} ({branch.id}), {fate}")
        if result.backup_branch:
            backup = result.backup_branch
            lines.append(f"  Backup of the damaged state: {backup['name']} ({backup['id']})")
        lines.append("  How to undo:")
        lines += [f"    {line}" for line in undo_lines(result)]
        left = left_by_hand(result)
        if left:
            lines.append("  Left to do by hand:")
            lines += [f"    - {line}" for line in left]
        # Names come from Neon: printed to the terminal, their control characters are shown, never obeyed.
        return redact(printable("\n".join(lines), multiline=True))

    def action_toggle_why(self) -> None:
        self.show_why = not self.show_why
        for screen in self.screen_stack:
            if isinstance(screen, WizardScreen):
                screen.set_why(self.show_why)

    def get_css_variables(self) -> dict[str, str]:
        # Every text colour at 4.5:1 or better on what it is drawn on, in the light theme too.
        return readable_variables(super().get_css_variables())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme != "textual-light" else "textual-dark"

    # --- navigation ----------------------------------------------------------------------------------

    @property
    def steps(self) -> list[tuple[str, str]]:
        """The runbook's steps as the rail shows them: the step after "Where from?" is named for the source."""
        title = SOURCE_STEP[self.source_kind][1]
        return [(key, title if key == "moment" else name) for key, name in self._steps]

    @property
    def step_keys(self) -> list[str]:
        return [key for key, _ in self.steps]

    def goto(self, key: str) -> None:
        keys = self.step_keys
        # Choices before this step are made; whether a run step happened is the journal's to say.
        self.done_steps |= {k for k in keys[: keys.index(key)] if k in CHOICE_STEPS}
        self.current = key
        for name in SCREEN_WORKERS:
            self.workers.cancel_group(self, name)
        self.switch_screen(self.screen_for(key)())

    def screen_for(self, key: str) -> type[WizardScreen]:
        return screen_class(SOURCE_STEP[self.source_kind][0] if key == "moment" else SCREENS[key])

    def step_states(self) -> dict[str, str]:
        """Each step's state for the rail and Done: done, failed, skipped, cancelled, interrupted or pending.
        Run steps come from the journal (what happened), then from this session's outcomes (no-op steps)."""
        states = {key: "done" for key in self.done_steps}
        states.update(self.outcomes)
        if self.runner is not None:
            states.update(journal_states(self.runner.journal))
        return states

    def by_hand(self, step: str) -> str | None:
        """The why panel's "By hand" for ``step`` when this run makes it concrete (the restore command)."""
        if step not in ("strategy", "plan", "restore"):
            return None
        from recovery_wizard.recovery.timepoint import parse_moment
        from recovery_wizard.tui import by_hand

        plan = self.plan
        if self.source_kind in ("file", "checkpoint") or self.strategy == "merge-back":
            return self.headless_command()
        if self.source_kind == "snapshot":
            if self.snapshot is None:
                return None
            return by_hand.snapshot_restore_command(
                self.project.id if self.project else None,
                self.snapshot.id,
                self.branch,
                in_place=self.strategy == "in-place",
            )
        if plan is not None:
            return by_hand.restore_command(
                plan.project.id, plan.branch, plan.moment.utc, name=plan.name, in_place=plan.in_place
            )
        at = None
        if self.moment_text:
            try:
                at = parse_moment(
                    self.moment_text, zone=self.zone, now=self.moment_chosen_at or datetime.now(UTC)
                ).utc
            except RecoveryError:
                at = None
        return by_hand.restore_command(
            self.project.id if self.project else None,
            self.branch,
            at,
            in_place=self.strategy == "in-place",
        )

    def advance(self) -> None:
        keys = self.step_keys
        self.goto(keys[keys.index(self.current) + 1])

    def back_target(self) -> str | None:
        """The choice step Back returns to: the previous one the user saw (not one chosen for them, such
        as the only project), or None on the first choice and once the plan is confirmed."""
        keys = self.step_keys
        if self.current not in CHOICE_STEPS:
            return None
        for key in reversed(keys[1 : keys.index(self.current)]):
            if key not in self.skipped_steps:
                return key
        return None

    def back(self) -> None:
        target = self.back_target()
        if target is None:
            return
        self.done_steps.discard(target)
        self.goto(target)

    # --- workers -------------------------------------------------------------------------------------

    def work(self, name: str, what: str, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` in an app-level worker; failures go to the one error modal (with Try again)."""
        self._work[name] = (job, what)
        if name in SCREEN_WORKERS:
            self._owners[name] = self.screen
        self.run_worker(job(), name=name, group=name, exclusive=True, exit_on_error=False)

    def owner_gone(self, name: str) -> bool:
        """A screen worker whose screen the user has left: its outcome belongs nowhere now."""
        owner = self._owners.get(name)
        return name in SCREEN_WORKERS and (owner is None or owner not in self.screen_stack)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        from recovery_wizard.tui.screens.modals import ErrorModal

        if event.state != WorkerState.ERROR or event.worker.name not in self._work:
            return
        name = event.worker.name
        error = event.worker.error
        assert error is not None
        if self.owner_gone(name):
            self.log.warning(f"{name} failed after its screen was left: {error!r}")
            return
        job, what = self._work[name]
        started_on = self._owners.get(name) if name in SCREEN_WORKERS else self.screen
        owner = started_on if isinstance(started_on, WizardScreen) else None

        def chosen(choice: str | None) -> None:
            if choice == "retry":
                if self.runner is not None:
                    self.runner.forget_uris()  # the fix may have been a reset password: ask Neon afresh
                self.work(name, what, job)
            elif name not in RUN_WORKERS or not self.run_running:
                # Not the run's worker: the screen it came from becomes usable again, the error readable on it.
                if owner is not None and owner in self.screen_stack:
                    owner.work_failed(name, error_text(error))
            elif self.runner is not None and self.runner.result.status == "running":
                from recovery_wizard.tui.stopped import record_stop

                # The run touched the world and cannot go on: record where it stopped, then show the summary.
                record_stop(self.runner.result, error)
                self.outcomes[self.current] = "failed"
                self.goto("done")

        self.push_screen(ErrorModal(error, what=what), chosen)

    # --- connect, project, branch, moment, strategy --------------------------------------------------

    def prepare(self) -> None:
        """Run the config's ``starting`` work (the demo's sandbox) behind the first screen, then enable Begin."""
        starting = self.config.starting
        if starting is None:
            return

        def progress(text: str) -> None:
            screen = self.screen
            if isinstance(screen, ConnectScreen) and screen.is_attached:
                screen.starting(text)

        async def job() -> None:
            await starting(self.config, progress)
            self.config.starting = None
            screen = self.screen
            if isinstance(screen, ConnectScreen) and screen.is_attached:
                screen.ready()

        self.work("prepare", "Starting the sandbox", job)

    def connect(self, key: str) -> None:
        async def job() -> None:
            from recovery_wizard.neon import DEFAULT_API_URL, NeonClient, UnauthorizedError
            from recovery_wizard.recovery.plan import list_projects

            http = self.config.http
            if http is None:
                from recovery_wizard.neon.apiurl import check_api_url
                from recovery_wizard.neon.transport import http_client

                # No key over plain http off this host.
                base_url = check_api_url(self.config.api_url or DEFAULT_API_URL)
                self._own_http = http = http_client(
                    base_url, headers={"User-Agent": f"recovery-wizard/{__version__}"}
                )
            client = NeonClient(
                http,
                Secret(key),
                base_url=self.config.api_url or DEFAULT_API_URL,
                # A 423 wait must be visible: the retry notice goes to the screen's progress line.
                on_retry=lambda notice: self.reporter.progress(
                    f"Neon answered {notice.reason}; asking again in {notice.delay:.0f} s"
                ),
            )
            try:
                projects = await list_projects(client)
            except UnauthorizedError as exc:
                screen = self.screen
                if isinstance(screen, ConnectScreen) and screen.is_attached:
                    screen.show_status(f"{exc}\nNext: {exc.hint}", error=True)
                    screen.ask_for_key()
                return
            self.client = client
            self.projects = projects
            self.load_whereis()  # its own worker: the lines appear when ready, nothing waits for them
            if not self.projects and not self.config.project_id:
                raise UsageError(
                    "The API key sees no Neon project.", hint="Check it belongs to the right account."
                )
            if await self._offer_resume():
                return
            if self.config.project_id or len(self.projects) == 1:
                # --project-id is loaded as given (a wrong id is Neon's 404 in the error box), never
                # swapped for another project the key happens to see.
                self.done_steps.add("project")
                self.skipped_steps.add("project")
                await self._load_project(self.config.project_id or self.projects[0].id)
                self.goto("branch")
            else:
                self.goto("project")

        self.work("connect", "Connecting to Neon", job)

    async def _offer_resume(self) -> bool:
        """Ask whether to continue the newest unfinished run here (True: it is being continued)."""
        from recovery_wizard.recovery.lock import holder_of
        from recovery_wizard.tui.onerun import RunGuard
        from recovery_wizard.tui.screens.modals import ConfirmModal

        holder = None if self.guard.lock.held else holder_of(self.config.workdir)  # never itself
        if holder is not None:
            # Its journal has no end yet because it is running, not because it was killed: offering to
            # continue it would be wrong. Start asks again under the lock, once the directory is free.
            self.notify(
                f"Another recovery-wizard is writing in this directory now: {holder.describe()}. A run "
                "started here is refused until it ends.",
                severity="warning",
                timeout=30,
                markup=False,  # a host or run id is text, not markup
            )
            return False
        pending = self.guard.pending()
        for run in pending:
            if run.superseded_by is not None:
                self.notify(RunGuard.superseded_note(run), severity="warning", timeout=20, markup=False)
        offer = self.guard.to_offer(pending)
        if offer is None:
            return False
        question = ConfirmModal(self.guard.question(offer), yes="Continue it", no="Start a new run")
        if not await self.push_screen_wait(question):
            self.guard.decline(pending)
            return False
        journal = self.guard.take(offer)
        try:
            await self._resume(journal)
        except BaseException:
            if self.runner is None:
                self.guard.release()  # it never got going: nothing of it holds the directory
            raise
        return True

    async def _resume(self, journal: Journal) -> None:
        from recovery_wizard.recovery.plan import RunOptions
        from recovery_wizard.recovery.runner import Runner, plan_from_journal

        assert self.client is not None
        options = RunOptions(
            command="drill" if self.mode == Mode.DRILL else "restore", workdir=self.config.workdir
        )
        self.plan = await plan_from_journal(self.client, journal, options)
        self.project, self.branch = self.plan.project, self.plan.branch
        self.options = options
        journal.append("run", "resume")
        self.runner = Runner(self.client, self.plan, journal, self.prompter, self.reporter, yes=False)
        # Steps already done return at once from the journal, loading what later steps need (the branch).
        if journal.done("restore") is not None:
            await self.runner.restore()
        if journal.done("verify") is not None:
            try:
                await self.runner.verify()
            except RunError as exc:
                self.runner.result.status, self.runner.result.error = exc.status, exc
                self.goto("done")
                return
        for key in ("restore", "verify"):
            if journal.done(key) is None:
                self.goto(key)
                return
        if self.mode == Mode.DRILL:
            self.goto("cleanup")
        elif any(
            r.step and r.step.startswith("env:") and r.event == "begin" for r in journal.records
        ) or not (journal.done("prisma")):
            self.goto("env")
        else:
            self.goto("done")

    async def _load_project(self, project_id: str) -> None:
        from recovery_wizard.recovery.plan import project_and_branches
        from recovery_wizard.recovery.timepoint import RestoreWindow

        assert self.client is not None
        project, self.branches = await project_and_branches(self.client, project_id)
        self.project = project
        self.window = RestoreWindow.from_retention(project.history_retention_seconds, datetime.now(UTC))
        self.raw_snapshots, self.snapshots_error, self.snapshot = None, None, None

    def choose_project(self, project_id: str) -> None:
        async def job() -> None:
            await self._load_project(project_id)
            self.goto("branch")

        self.work("project", "Loading the project", job)

    def choose_branch(self, branch_id: str) -> None:
        self.branch = next(b for b in self.branches if b.id == branch_id)
        self.goto("source")

    # --- where from: history or a snapshot -----------------------------------------------------------

    @property
    def source_text(self) -> str:
        """The source as `--from` says it (RunOptions.source)."""
        if self.source_kind == "snapshot" and self.snapshot is not None:
            return f"snapshot:{self.snapshot.id}"
        if self.source_kind == "file" and self.backup_file is not None:
            return f"file:{self.backup_file.path}"
        if self.source_kind == "checkpoint" and self.checkpoint is not None:
            return f"checkpoint:{self.checkpoint.run_id}"
        return "history"

    def source_moment(self) -> datetime | None:
        """The moment the chosen source's data is from (UTC), where it is known."""
        if self.source_kind == "snapshot":
            return self.snapshot.at if self.snapshot else None
        if self.source_kind == "file":
            return self.backup_file.taken_at if self.backup_file else None
        if self.source_kind == "checkpoint":
            return self.checkpoint.at if self.checkpoint else None
        if not self.moment_text:
            return None
        from recovery_wizard.recovery.timepoint import parse_moment

        try:
            return parse_moment(
                self.moment_text, zone=self.zone, now=self.moment_chosen_at or datetime.now(UTC)
            ).utc
        except RecoveryError:
            return None

    def incident_moment(self) -> datetime | None:
        """When the damage happened, as far as the wizard knows: the first bad moment a search found, else
        the moment chosen (the restore point is just before the incident); None when nothing says."""
        first_bad = self.search.get("first_bad") if self.search is not None else None
        if isinstance(first_bad, datetime):
            return first_bad
        if self.source_kind == "history" and self.moment_text:
            return self.source_moment()
        return None

    def headless_command(self) -> str:
        """The restore as one `recovery-wizard` command (the why panel's "By hand" for file and checkpoint)."""
        import shlex

        parts = ["recovery-wizard", "restore", "--from", shlex.quote(self.source_text)]
        at = self.source_moment() if self.source_kind == "history" else None
        if at is not None:
            parts += ["--at", at.strftime("%Y-%m-%dT%H:%M:%SZ")]
        if self.strategy != "new-branch":
            parts += ["--strategy", self.strategy]
        if self.strategy == "merge-back" and self.revert_changed:
            parts += ["--revert-changed", ",".join(sorted(self.revert_changed))]
        return " ".join(parts)

    def snapshot_entries(self, now: datetime | None = None) -> list[SnapshotEntry] | None:
        """The project's live snapshots at ``now``, newest first, marked for the chosen branch; None until
        listed."""
        if self.raw_snapshots is None:
            return None
        from recovery_wizard.recovery.snapshot_list import usable_snapshots

        branch_id = self.branch.id if self.branch else None
        return usable_snapshots(self.raw_snapshots, self.branches, branch_id, now or datetime.now(UTC))

    def load_snapshots(self) -> None:
        """List the project's snapshots once; the screen on top is told (``snapshots_loaded``) either way."""
        if self.raw_snapshots is not None or self.snapshots_error is not None:
            return
        if self.client is None or self.project is None:
            return  # not connected (a screen shown on its own, as the snapshot tests do)

        async def job() -> None:
            from recovery_wizard.neon.errors import NeonError

            assert self.client is not None and self.project is not None
            try:
                self.raw_snapshots = await self.client.snapshots(self.project.id)
            except NeonError as exc:
                # Not worth an error box: history still works, and the choice says why snapshots do not.
                self.snapshots_error = str(exc) + (f" Next: {exc.hint}" if exc.hint else "")
            screen = self.screen
            loaded = getattr(screen, "snapshots_loaded", None)
            if loaded is not None and screen.is_attached:
                loaded()

        self.work("snapshots", "Listing the snapshots", job)

    def choose_source(self, kind: str) -> None:
        """Go on to the screen that chooses within ``kind`` (a moment, a snapshot). A source joins by
        getting an entry in SOURCE_STEP (and its reason in sources.py set to None)."""
        if kind not in SOURCE_STEP:
            self.notify(f"Restoring from {kind!r} is not available in this version.", severity="warning")
            return
        self.source_kind = kind
        self.skipped_steps.discard("moment")
        self.goto("moment")

    def choose_file(self, info: BackupInfo) -> None:
        """Restore from this backup file (``file:<path>``): it is loaded into a new branch by the run."""
        self.backup_file = info
        self.source_kind = "file"
        self.goto("plan" if self.mode == Mode.DRILL else "strategy")

    def choose_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Restore to a guard checkpoint (``checkpoint:<run id>``): the moment is the checkpoint's own, so
        the step after "Where from?" has nothing to ask and Back passes it."""
        self.checkpoint = checkpoint
        self.source_kind = "checkpoint"
        self.skipped_steps.add("moment")
        self.goto("plan" if self.mode == Mode.DRILL else "strategy")

    def load_backups(self) -> None:
        """Look for the team's backup files (the app directory, ./backups, ~/Downloads…) in a worker; the
        screen on top is told (``backups_found``)."""

        incident = self.incident_moment()

        async def job() -> None:
            from recovery_wizard.recovery.files.find import default_dirs, find_backups

            if self.backups is not None and self.backups[0] == incident:
                result = self.backups[1]
            else:
                # A thread: it reads files (bounded, but a slow disk must not freeze the screen).
                dirs = default_dirs(self.config.workdir)
                result = await asyncio.to_thread(find_backups, dirs, incident=incident)
                self.backups = (incident, result)
            screen = self.screen
            found = getattr(screen, "backups_found", None)
            if found is not None and screen.is_attached:
                found(result)

        self.work("backups", "Looking for backup files", job)

    def check_backup_path(self, text: str) -> None:
        """A path typed by hand: look at it (in a worker); the screen is told (``path_checked``)."""

        async def job() -> None:
            from recovery_wizard.recovery.files.detect import examine

            def look() -> tuple[Path, BackupInfo | None]:
                path = Path(text).expanduser()
                if not path.is_absolute():
                    path = self.config.workdir / path
                return path, examine(path) if path.exists() else None

            path, info = await asyncio.to_thread(look)
            screen = self.screen
            checked = getattr(screen, "path_checked", None)
            if checked is not None and screen.is_attached:
                checked(path, info)

        self.work("backup-file", "Looking at the file", job)

    def list_checkpoints(self) -> list[Checkpoint]:
        """The guard's checkpoints in the app directory (read from its journals: no API call)."""
        from recovery_wizard.recovery.checkpoint import checkpoints

        try:
            return checkpoints(self.config.workdir)
        except OSError as exc:  # an unreadable journal must not take "Where from?" down
            self.log.warning(f"checkpoints: {exc}")
            return []

    def load_whereis(self) -> None:
        """Where the app's database URLs point (whereis), once, in a worker after connecting: it never holds
        up a screen, and a failure only leaves the lines out."""
        if self.where_lines is not None or self.client is None:
            return
        self.where_lines = []

        async def job() -> None:
            from recovery_wizard.recovery.whereis import app_urls, whereis

            assert self.client is not None
            try:
                urls = app_urls(self.config.workdir, os.environ)
                found, _notes = await whereis(self.client, urls, sizes=False)
            except Exception as exc:  # a nicety: the wizard works without it
                self.log.warning(f"whereis: {redact(str(exc))}")
                return
            self.where_lines = [redact(printable(where_line(w))) for w in found]
            for screen in self.screen_stack:
                shown = getattr(screen, "where_loaded", None)
                if shown is not None and screen.is_attached:
                    shown()

        self.run_worker(job(), name="whereis", group="whereis", exclusive=True, exit_on_error=False)

    def load_lost(self) -> bool:
        """The writes on the damaged branch after the source's moment (what a whole restore loses), in a
        worker; the strategy screen is told (``lost_loaded``). Failing is not an error: no recommendation.
        False: no list is coming (not connected, or no moment known)."""
        at = self.source_moment()
        if self.client is None or self.branch is None or at is None:
            return False
        key = (self.branch.id, at)
        if self.lost_for == key and self.lost is not None:
            return True

        async def job() -> None:
            from recovery_wizard.recovery.lostwrites import lost_writes

            try:
                await self._load_names()
                lens = self._lens()
                direct, _endpoint = await lens._direct(lens.branch.id)
                lost = await lost_writes(Secret(direct), at)
            except Exception as exc:  # the recommendation is a nicety: no error box, no guess
                self.log.warning(f"lost writes: {redact(str(exc))}")
                lost = []
            self.lost, self.lost_for = lost, key
            screen = self.screen
            loaded = getattr(screen, "lost_loaded", None)
            if loaded is not None and screen.is_attached:
                loaded()

        self.work("lost", "Counting the writes since the moment", job)
        return True

    def merge_reviewable(self) -> str | None:
        """Why the merge plan cannot be shown before Go for this source (None: it can). The plan needs the
        past readable without writing to Neon: history (time travel) and a checkpoint (its branch) are."""
        if self.source_kind == "history":
            return None
        if self.source_kind == "checkpoint":
            cp, window = self.checkpoint, self.window
            if cp is None or cp.at is None or (self.branch is not None and cp.branch_id != self.branch.id):
                return "this checkpoint is not of the chosen branch, or does not say when it was taken"
            if window is not None and not window.disabled and cp.at < window.earliest:
                return "the checkpoint is older than the restore window, so its rows cannot be read without making a branch"
            return None
        what = "snapshot" if self.source_kind == "snapshot" else "backup file"
        return f"a {what} must first be loaded into a branch; this version shows the merge plan before Go only for Neon history and guard checkpoints"

    def load_merge_plan(self) -> None:
        """Compare the past with the live branch (read-only on both) and show the merge plan; the screen on
        top is told (``merge_planned``)."""

        async def job() -> None:
            from recovery_wizard.recovery.merge import MergeOptions, plan_merge

            assert self.client is not None and self.project is not None and self.branch is not None
            await self._load_names()
            lens = self._lens()
            live, _endpoint = await lens._direct(lens.branch.id)
            options = MergeOptions(revert_changed=sorted(self.revert_changed), rules=dict(self.merge_rules))
            # The past read through time travel on the live branch at the source's moment (a checkpoint's
            # branch has no compute, and giving it one would be a write to Neon before Go).
            at = self.source_moment()
            if at is None:
                raise UsageError("No moment is chosen to merge back from.", hint="Go back and choose one.")
            async with lens.at(at) as (past_url, _lens):
                plan = await plan_merge(past_url, Secret(live), options)
            self.merge_plan = plan.to_dict()
            screen = self.screen
            shown = getattr(screen, "merge_planned", None)
            if shown is not None and screen.is_attached:
                shown(self.merge_plan)

        self.work("merge-plan", "Comparing the past with the live branch", job)

    def choose_snapshot(self, snapshot_id: str, at: datetime) -> None:
        """Restore from this snapshot (listed as live at ``at``, when the user chose it)."""
        from recovery_wizard.recovery.snapshot_list import usable_snapshots

        entries = self.raw_snapshots and usable_snapshots(
            self.raw_snapshots, self.branches, self.branch.id if self.branch else None, at
        )
        self.snapshot = next(e for e in entries or [] if e.id == snapshot_id)
        self.source_kind = "snapshot"
        self.goto("plan" if self.mode == Mode.DRILL else "strategy")

    def _lens(self) -> Lens:
        from recovery_wizard.recovery.peek import Lens

        assert self.client is not None and self.project is not None and self.branch is not None
        if self._lens_cache is None or self._lens_cache.branch.id != self.branch.id:
            self._lens_cache = Lens(self.client, self.project.id, self.branch, self.database(), self.role())
        return self._lens_cache

    def database(self) -> str:
        return self._single("databases")

    def role(self) -> str:
        return self._single("roles")

    def _single(self, what: str) -> str:
        names = self._names.get(what) or []
        return names[0] if names else ("neondb" if what == "databases" else "neondb_owner")

    async def _load_names(self) -> None:
        """The branch's databases and roles, for looks at the past (the plan resolves them properly later)."""
        assert self.client is not None and self.project is not None and self.branch is not None
        self._names = {
            "databases": [d.name for d in await self.client.databases(self.project.id, self.branch.id)],
            "roles": [r.name for r in await self.client.roles(self.project.id, self.branch.id)],
        }

    def find_moment(self, canary: str) -> None:
        async def job() -> None:
            from recovery_wizard.recovery.findmoment import EDGE_MARGIN, Probe
            from recovery_wizard.recovery.findmoment import find_moment as search_moment
            from recovery_wizard.tui.screens import choices

            screen = self.screen
            assert self.window is not None
            await self._load_names()
            now = datetime.now(UTC)
            good = now - (self.window.now - self.window.earliest) + EDGE_MARGIN

            def on_probe(p: Probe) -> None:
                if isinstance(screen, choices.MomentScreen) and screen.is_attached:
                    verdict = "holds" if p.holds else "fails"
                    screen.show_find(f"Looked at {p.at:%Y-%m-%d %H:%M:%S} UTC: the canary {verdict}…")

            try:
                found = await search_moment(self._lens(), canary, good=good, bad=now, on_probe=on_probe)
            except UsageError as exc:
                if isinstance(screen, choices.MomentScreen) and screen.is_attached:
                    screen.show_find(f"{exc} {exc.hint}", error=True)
                return
            self.search = {
                "run_id": "(in the wizard)",
                "searched_at": datetime.now(UTC),
                # Where the search looked: it is linked only to a run of this project, branch and moment.
                "project_id": self.project.id if self.project else None,
                "branch_id": self.branch.id if self.branch else None,
                "canary": canary,
                "last_good": found.last_good,
                "first_bad": found.first_bad,
                "probes": [p.to_dict() for p in found.probes],
            }
            if isinstance(screen, choices.MomentScreen) and screen.is_attached:
                screen.found_moment(
                    found.last_good.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    f"Last good moment: {found.last_good:%Y-%m-%d %H:%M:%S} UTC (the canary fails from "
                    f"{found.first_bad:%H:%M:%S}); {len(found.probes)} looks in {found.seconds:.1f} s. "
                    "It is filled in above as the restore point.",
                )

        self.work("find-moment", "Finding the last good moment", job)

    def peek(self, text: str, sql: str) -> None:
        async def job() -> None:
            from recovery_wizard.recovery.peek import PeekError
            from recovery_wizard.recovery.peek import peek as peek_at
            from recovery_wizard.recovery.timepoint import parse_moment
            from recovery_wizard.tui.screens import choices

            screen = self.screen
            await self._load_names()
            moment = parse_moment(text, zone=self.zone, now=datetime.now(UTC))
            from recovery_wizard.recovery.sqlguard import require_read_only

            require_read_only(sql, what="query")  # as the CLI's peek: judged before anything connects
            try:
                result = await peek_at(self._lens(), moment.utc, sql)
            except PeekError as exc:
                if isinstance(screen, choices.MomentScreen) and screen.is_attached:
                    screen.show_peek(str(exc), error=True)
                return
            # Each value on one line with its controls made visible, and cut at 200 characters: a value is
            # data, not layout, and a 1 MB jsonb must not take the screen (or the time to lay it out).
            rows = [" | ".join(printable(c) for c in result.columns)] + [
                " | ".join(clip(printable(str(v)), PEEK_VALUE_LIMIT) for v in row) for row in result.rows[:20]
            ]
            if isinstance(screen, choices.MomentScreen) and screen.is_attached:
                screen.show_peek(f"At {moment.describe()} ({result.lens}):\n" + "\n".join(rows))

        self.work("peek", "Looking at the past", job)

    def load_timeline(self) -> None:
        async def job() -> None:
            from recovery_wizard.recovery.timeline import build_timeline, render_timeline
            from recovery_wizard.tui.screens import choices

            screen = self.screen
            assert self.client is not None and self.project is not None and self.window is not None
            events = await build_timeline(self.client, self.project, self.window)
            if isinstance(screen, choices.MomentScreen) and screen.is_attached:
                screen.show_timeline(render_timeline(events[:40], self.zone))

        self.work("timeline", "Loading the timeline", job)

    def choose_moment(self, text: str, at: datetime) -> None:
        # "35 minutes ago" means 35 minutes before the user confirmed it, not before the plan is made.
        self.moment_text, self.moment_chosen_at = text, at
        self.goto("plan" if self.mode == Mode.DRILL else "strategy")

    def choose_strategy(self, strategy: str) -> None:
        self.strategy = strategy
        if strategy == "merge-back":
            # The merge plan first (what comes back, what conflicts, per table rules), then the run's plan.
            from recovery_wizard.tui.screens import merge_review

            self.merge_plan = None
            self.switch_screen(merge_review.MergePlanScreen())
            return
        self.goto("plan")

    def accept_merge_plan(self) -> None:
        """The user reviewed the merge plan: on to the run's plan with its tables, rules and reverts."""
        self.goto("plan")

    # --- plan and run --------------------------------------------------------------------------------

    def make_plan(self) -> None:
        async def job() -> None:
            from recovery_wizard.recovery.plan import RunOptions, resolve_plan
            from recovery_wizard.tui.screens import steps

            assert self.client is not None and self.project is not None and self.branch is not None
            self.options = RunOptions(
                command="drill" if self.mode == Mode.DRILL else "restore",
                workdir=self.config.workdir,
                project_id=self.project.id,
                branch=self.branch.id,
                at=self.moment_text if self.source_kind == "history" else None,
                source=self.source_text,
                tz=self.config.tz,
                strategy=self.strategy,
                env_files=list(self.config.env_files),
                checks=list(self.config.checks),
            )
            if self.strategy == "merge-back":
                self.options.merge_tables = [
                    t["table"] for t in (self.merge_plan or {}).get("tables", [])
                ] or None
                self.options.revert_changed = sorted(self.revert_changed)
                self.options.merge_rules = dict(self.merge_rules)
            screen = self.screen
            try:
                self.plan = await resolve_plan(
                    self.client, self.options, self.prompter, self.reporter, now=self.moment_chosen_at
                )
            except UsageError as exc:
                if isinstance(screen, steps.PlanScreen) and screen.is_attached:
                    screen.show_refusal(str(exc), exc.hint)
                return
            if isinstance(screen, steps.PlanScreen) and screen.is_attached:
                screen.show_plan()

        self.work("plan", "Planning", job)

    def start_run(self) -> None:
        from recovery_wizard.tui.screens.modals import ConfirmModal

        async def job() -> None:
            from recovery_wizard.recovery.runner import Runner, begin_run
            from recovery_wizard.tui.screens import steps

            assert self.client is not None and self.options is not None and self.plan is not None
            screen = self.screen
            try:
                # Before the first write: a second run in this directory would make a second branch.
                self.guard.acquire()
                pending = self.guard.pending()  # read again under the lock: one may have stopped since
                undecided = self.guard.to_offer(pending)
                if undecided is not None:
                    question = ConfirmModal(
                        self.guard.question(undecided), yes="Continue it", no="Start a new run"
                    )
                    if await self.push_screen_wait(question):
                        await self._resume(self.guard.take(undecided))
                        return
                    self.guard.decline(pending)
                journal = begin_run(self.options, self.plan, linked_search(self.search, self.plan))
            except BaseException:
                self.guard.release()
                if isinstance(screen, steps.PlanScreen):
                    screen.query_one("#start", Button).disabled = False  # Start again once it is free
                raise
            self.guard.started(journal, pending)
            self.runner = Runner(self.client, self.plan, journal, self.prompter, self.reporter, yes=False)
            self.goto("restore")

        self.work("start", "Starting the run", job)

    def _step(self, name: str, what: str, body: Callable[[Runner], Awaitable[str]]) -> None:
        """Run one runbook step; RunErrors (cancelled, verification failed…) end the run on the done screen."""

        async def job() -> None:
            from recovery_wizard.tui.screens import steps

            runner = self.runner
            assert runner is not None
            screen = self.screen
            try:
                message = await body(runner)
            except StepFailedError:
                raise  # a failed step goes to the error modal, with Neon's words and "Try again"
            except RunError as exc:
                runner.result.status, runner.result.error = exc.status, exc
                self.exit_code = exc.exit_code
                self.outcomes[name] = "failed" if exc.status == "verification-failed" else exc.status
                if isinstance(screen, steps.RunStepScreen):
                    screen.finished(str(exc), ok=False)
                    screen.offer_summary()
                    self.current = self.step_keys[-2]  # Continue goes to "done"
                return
            # A step that had nothing to do leaves no journal record: it was skipped, not done.
            self.outcomes[name] = "done" if journal_states(runner.journal).get(name) == "done" else "skipped"
            if isinstance(screen, steps.RunStepScreen):
                screen.finished(message)

        self.work(name, what, job)

    def run_restore(self) -> None:
        async def body(runner: Runner) -> str:
            await runner.restore()
            if runner.plan.in_place and not runner.plan.source.previews_in_place:
                return f"{runner.plan.branch.name} is restored in place; the old state is {runner.plan.name}."
            branch = runner.result.restore_branch
            return f"The branch {branch.name if branch else '?'} is ready."

        self._step("restore", "The restore", body)

    def run_verify(self) -> None:
        async def body(runner: Runner) -> str:
            from recovery_wizard.tui.screens import steps

            try:
                await runner.verify()
            finally:
                screen = self.screen
                if isinstance(screen, steps.VerifyScreen) and runner.result.verification:
                    screen.show_verification(runner.result.verification)
            return str((runner.result.verification or {}).get("summary") or "The restored data checks out.")

        self._step("verify", "Verification", body)

    def run_env(self) -> None:
        async def body(runner: Runner) -> str:
            # What the strategy does after the verification (a snapshot's finalize), before the app's files.
            await runner.finish()
            if runner.plan.in_place:
                return "Nothing to change: an in-place restore keeps the connection strings."
            if not runner.plan.env_targets:
                return "No env file found in this directory (pass --env-file): nothing changed."
            await runner.rewrite_env()
            return f"Rewrote {len(runner.result.env_files)} env file(s); backups are in the run directory."

        self._step("env", "Rewriting the env files", body)

    def run_prisma(self) -> None:
        async def body(runner: Runner) -> str:
            if runner.plan.prisma is None:
                note = next((w for w in runner.plan.warnings if "Prisma" in w), "")
                return note or "No Prisma project here: nothing to do."
            await runner.run_prisma()
            return "Schema pulled and client generated."

        self._step("prisma", "Prisma", body)

    def run_cleanup(self) -> None:
        async def body(runner: Runner) -> str:
            await runner.cleanup()
            return "The drill branch is deleted." if runner.result.deleted else "The drill branch is kept."

        self._step("cleanup", "Cleaning up", body)

    def finish(self) -> None:
        from recovery_wizard.recovery.handoff import left_by_hand

        async def job() -> None:
            from recovery_wizard.recovery.runner import finish_run
            from recovery_wizard.tui.screens import steps

            runner = self.runner
            screen = self.screen
            if runner is None:
                if isinstance(screen, steps.DoneScreen):
                    screen.show_summary("Nothing was done.", [], ok=True)
                return
            result = runner.result
            if result.status == "running":
                result.status = "done"
            # The wizard's exit code is the CLI's: 0 done, 1 failed, 3 cancelled, 4 verification failed.
            self.exit_code = result.error.exit_code if result.error is not None else 0
            assert self.client is not None
            if result.report_path is None:
                finish_run(result, self.client)
            self.guard.release()  # the run's record is written: another run may start here now
            if isinstance(screen, steps.DoneScreen):
                screen.show_summary(
                    summary_text(result),
                    undo_lines(result),
                    ok=result.status == "done",
                    steps=self.run_step_lines(),
                )
                screen.show_by_hand(left_by_hand(result))

        self.work("finish", "Writing the incident record", job)

    def run_step_lines(self) -> list[str]:
        """The run's steps as they ended, for Done: ✔ done, – skipped, ✘ failed, · not run."""
        states = self.step_states()
        marks = {"done": "✔", "skipped": "–", "failed": "✘", "cancelled": "✘", "interrupted": "✘"}
        words = {
            "skipped": "nothing to do",
            "failed": "failed",
            "cancelled": "cancelled",
            "interrupted": "stopped",
        }
        lines = []
        for key, title in self.steps:
            if key in CHOICE_STEPS or key == "done":
                continue
            state = states.get(key, "pending")
            word = words.get(state, "" if state == "done" else "not run")
            lines.append(f"{marks.get(state, '·')} {title}" + (f" ({word})" if word else ""))
        return lines


def screen_class(where: str) -> type[WizardScreen]:
    """The screen class at ``where`` ("module.Class" under tui/screens/), importing its module."""
    module, name = where.rsplit(".", 1)
    found: type[WizardScreen] = getattr(import_module(f"recovery_wizard.tui.screens.{module}"), name)
    return found


def where_line(where: Where) -> str:
    """One URL the app uses, in one short line (``whereis`` has the long form): what a person must see before
    restoring: which project and branch, whether it is the default or protected one, pooled or direct."""
    head = f"{where.variable} ({where.source}) →"
    if where.kind != "neon" or where.project is None or where.branch is None:
        return f"{head} " + {
            "not-neon": f"{where.host}: not a Neon endpoint",
            "foreign": f"{where.host}: Neon, but not an endpoint this API key can see",
        }.get(where.kind, "not a connection URL this tool can read")
    flags = ", ".join(where.flags) or "not default"
    how = "pooled" if where.pooled else "direct"
    return f"{head} {where.project.name} / {where.branch.name} ({flags}), {how}"


def error_text(error: BaseException) -> str:
    """An error as the screen it came from shows it after the error box is closed."""
    text = str(error) if isinstance(error, RecoveryError) else f"{type(error).__name__}: {error}"
    hint = error.hint if isinstance(error, RecoveryError) else ""
    return text + (f"\nNext: {hint}" if hint else "")


def journal_states(journal: Journal) -> dict[str, str]:
    """What the journal says each run step did: done, failed, or (begun, never done) interrupted."""
    states: dict[str, str] = {}
    for key in ("restore", "prisma", "cleanup"):
        last = journal.last(key)
        if last is not None:
            states[key] = {"done": "done", "failed": "failed"}.get(last.event, "interrupted")
    verified = journal.done("verify")
    if verified is not None:
        states["verify"] = "done" if verified.data.get("ok") else "failed"
    env = [r for r in journal.records if r.kind == "step" and (r.step or "").startswith("env:")]
    if env:
        finished = {r.step for r in env if r.event == "done"}
        states["env"] = "done" if all(r.step in finished for r in env) else "interrupted"
    return states


def linked_search(search: dict[str, Any] | None, plan: Plan) -> dict[str, Any] | None:
    """The wizard's find-moment search, if it was made on this plan's project and branch for its moment."""
    if search is None:
        return None
    if search.get("project_id") != plan.project.id or search.get("branch_id") != plan.branch.id:
        return None
    last_good = search.get("last_good")
    if not isinstance(last_good, datetime) or abs(last_good - plan.moment.utc) > timedelta(milliseconds=1):
        return None
    return search


def summary_text(result: RunResult) -> str:
    plan = result.plan
    assert plan is not None
    lines = []
    if result.status == "done":
        if plan.command == "drill":
            lines.append(
                f"Drill passed: {plan.branch.name} restored to {plan.moment.describe()} and verified."
            )
        elif plan.in_place:
            lines.append(f"{plan.branch.name} is restored in place to {plan.moment.describe()}.")
        elif result.restore_branch is not None:
            lines.append(
                f"{plan.branch.name} is restored to {plan.moment.describe()} as the branch "
                f"{result.restore_branch.name} ({result.restore_branch.id})."
            )
        for env in result.env_files:
            lines.append(f"{env['path']}: {', '.join(env['variables'])} now point at the restored branch.")
    else:
        lines.append(f"The run ended: {result.status}.")
        if result.error is not None:
            lines.append(str(result.error))
            if result.error.hint:
                lines.append(f"Next: {result.error.hint}")
    if result.lost:
        lost = ", ".join(f"{x['table']} ({x['rows']})" for x in result.lost)
        lines.append(f"Written after the restore point, not in the restored data: {lost}.")
    lines.append(f"Incident record: {result.report_path}")
    return "\n".join(lines)


def undo_lines(result: RunResult) -> list[str]:
    from recovery_wizard.recovery.report import undo_lines as lines

    return lines(result)


def make_app(config: WizardConfig) -> WizardApp:
    """The factory tests and the CLI share."""
    return WizardApp(config)


def freeze_startup_objects() -> None:
    """Put what the process has imported so far out of the garbage collector's sight, once, before the app.

    Everything imported by now (Textual, Rich, the first screen) lives as long as the process: frozen, the full
    collections that building the first screen triggers stop walking it again and again (a fifth of the time
    to the first paint, measured; docs/performance.md). Called by the commands that run one app per process,
    never by ``make_app``: a test process builds hundreds of apps, and a freeze there would also freeze the
    previous ones' garbage for good.
    """
    gc.freeze()


def exit_code(app: WizardApp, code: int | None) -> int:
    """The process's exit code once ``app`` has stopped with ``code``.

    Textual ends the app on an unhandled exception with no return value (which would be 0) and return code
    1: that is a failure, never a success, and a run it cut short still gets its incident record.
    """
    if not app.return_code:
        return int(code or 0)
    runner = app.runner
    if runner is not None and runner.result.report_path is None and app.client is not None:
        from recovery_wizard.recovery.runner import finish_run

        result = runner.result
        error = app._exception  # Textual keeps the unhandled exception here; it has no public accessor
        result.status = "failed"
        result.error = StepFailedError(
            result.step or "run",
            f"The wizard stopped on an unexpected error: {type(error).__name__}: {error}",
            hint="This is a bug in recovery-wizard: the journal in .recovery-wizard/runs/ shows how far the "
            "run got; resume it with `recovery-wizard restore --resume`.",
        )
        try:
            finish_run(result, app.client)
        except OSError as exc:  # a full disk must not hide the error the user is about to read
            print(f"The incident record could not be written: {exc}", file=sys.stderr)
    return max(int(code or 0), int(app.return_code), 1)


class _HangupSafeStream:
    """The terminal stream Textual's output thread writes to, minus the errors of a terminal that is gone.

    Hand-written because Textual's writer thread dies on the first failed write (EIO after a hang-up) and
    its bounded queue then blocks the event loop on the next writes: the wizard would never reach its
    clean-up (the interrupt path, the demo's sandbox). Writes to a terminal that is gone are dropped."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except OSError:
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _on_hangup(app: WizardApp, signum: int) -> None:
    if signum == signal.SIGHUP:
        # No terminal any more: input reads /dev/null (EOF) instead of failing, so only our path ends the app.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.close(devnull)
    app.stop_on_signal(signum)


async def run_until_closed(app: WizardApp) -> int:
    """Run the wizard; SIGTERM and SIGHUP close it the way Ctrl+Q and "Stop the run" would."""
    loop = asyncio.get_running_loop()
    handled = (signal.SIGTERM, signal.SIGHUP)
    for signum in handled:
        loop.add_signal_handler(signum, _on_hangup, app, signum)
    # Textual's terminal driver writes to sys.__stderr__ (read when the driver starts).
    original = sys.__stderr__
    if original is not None:
        sys.__stderr__ = _HangupSafeStream(original)  # type: ignore[misc,assignment]
    try:
        return exit_code(app, await app.run_async())
    finally:
        sys.__stderr__ = original  # type: ignore[misc]
        for signum in handled:
            loop.remove_signal_handler(signum)


def print_closing_summary(app: WizardApp) -> None:
    """The screen is gone: the terminal keeps what matters (the record, the ids, how to undo)."""
    # If the terminal itself is gone (SIGHUP), the report and the journal still say it all.
    with contextlib.suppress(OSError):
        print(app.closing_summary(), file=sys.stderr, flush=True)


def run_wizard(config: WizardConfig) -> int:
    freeze_startup_objects()
    app = make_app(config)
    code = asyncio.run(run_until_closed(app))
    print_closing_summary(app)
    return code
