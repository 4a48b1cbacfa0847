"""The wizard app: which screen comes next, and the workers that do each step's work.

All I/O runs in workers owned by the app (a screen's workers would die with the screen when the wizard moves
on). Every worker failure goes through one path, :meth:`WizardApp.on_worker_state_changed`, which shows the
ErrorModal with Neon's message, the request id and the next thing to try, and offers to try again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import httpx
from textual.app import App
from textual.binding import Binding, BindingType
from textual.worker import Worker, WorkerState

from recovery_wizard import __version__
from recovery_wizard.errors import RecoveryError
from recovery_wizard.neon import DEFAULT_API_URL, NeonClient, NeonError, UnauthorizedError
from recovery_wizard.neon.models import Branch, Project
from recovery_wizard.recovery.findmoment import EDGE_MARGIN, Probe
from recovery_wizard.recovery.findmoment import find_moment as search_moment
from recovery_wizard.recovery.journal import Journal, latest_resumable
from recovery_wizard.recovery.outcome import RunError, StepFailedError, UsageError
from recovery_wizard.recovery.peek import Lens, PeekError
from recovery_wizard.recovery.peek import peek as peek_at
from recovery_wizard.recovery.plan import Plan, RunOptions, list_projects, project_and_branches, resolve_plan
from recovery_wizard.recovery.runner import Runner, RunResult, begin_run, fail, finish_run, plan_from_journal
from recovery_wizard.recovery.timeline import build_timeline, render_timeline
from recovery_wizard.recovery.timepoint import RestoreWindow, parse_moment, resolve_zone
from recovery_wizard.redact import Secret
from recovery_wizard.tui.adapters import TuiPrompter, TuiReporter
from recovery_wizard.tui.screens import choices, steps
from recovery_wizard.tui.screens.base import WizardScreen
from recovery_wizard.tui.screens.modals import ConfirmModal, ErrorModal


class Mode(StrEnum):
    NORMAL = "normal"
    DEMO = "demo"
    DRILL = "drill"


RESTORE_STEPS = [
    ("connect", "Connect"),
    ("project", "Project"),
    ("branch", "Branch"),
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
    ("moment", "Moment"),
    ("plan", "Plan"),
    ("restore", "Restore"),
    ("verify", "Verify"),
    ("cleanup", "Clean up"),
    ("done", "Done"),
]
SCREENS: dict[str, type[WizardScreen]] = {
    "connect": choices.ConnectScreen,
    "project": choices.ProjectScreen,
    "branch": choices.BranchScreen,
    "moment": choices.MomentScreen,
    "strategy": choices.StrategyScreen,
    "plan": steps.PlanScreen,
    "restore": steps.RestoreScreen,
    "verify": steps.VerifyScreen,
    "env": steps.EnvScreen,
    "prisma": steps.PrismaScreen,
    "cleanup": steps.CleanupScreen,
    "done": steps.DoneScreen,
}
# Up to here, Back is safe: nothing has been written.
CHOICE_STEPS = ("connect", "project", "branch", "moment", "strategy", "plan")


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


class WizardApp(App[int]):
    # Absolute: Textual resolves a relative CSS_PATH against a subclass's own file.
    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "recovery-wizard"
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
        self.steps = DRILL_STEPS if config.mode == Mode.DRILL else RESTORE_STEPS
        self.done_steps: set[str] = set()
        self.skipped_steps: set[str] = set()  # steps decided for the user (one project): Back passes them
        self.current = "connect"
        self.zone: tzinfo = resolve_zone(config.tz)
        self.client: NeonClient | None = None
        self._own_http: httpx.AsyncClient | None = None
        self.projects: list[Project] = []
        self.project: Project | None = None
        self.branches: list[Branch] = []
        self.branch: Branch | None = None
        self.window: RestoreWindow | None = None
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

    # --- lifecycle -----------------------------------------------------------------------------------

    async def on_mount(self) -> None:
        if self.config.learn is None and self.size.width < 90:
            # At 80 columns the panel would squeeze the step itself; F1 still shows it.
            self.show_why = False
        self.push_screen(choices.ConnectScreen())

    async def on_unmount(self) -> None:
        if self._own_http is not None:
            await self._own_http.aclose()

    def action_quit_wizard(self) -> None:
        self.exit(self.exit_code if self.runner is None else (self.exit_code or 1))

    def action_toggle_why(self) -> None:
        self.show_why = not self.show_why
        for screen in self.screen_stack:
            if isinstance(screen, WizardScreen):
                screen.set_why(self.show_why)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme != "textual-light" else "textual-dark"

    # --- navigation ----------------------------------------------------------------------------------

    @property
    def step_keys(self) -> list[str]:
        return [key for key, _ in self.steps]

    def goto(self, key: str) -> None:
        keys = self.step_keys
        self.done_steps |= set(keys[: keys.index(key)])
        self.current = key
        self.switch_screen(SCREENS[key]())

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
        self.run_worker(job(), name=name, group=name, exclusive=True, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR or event.worker.name not in self._work:
            return
        error = event.worker.error
        assert error is not None
        job, what = self._work[event.worker.name]

        def chosen(choice: str | None) -> None:
            if choice == "retry":
                if self.runner is not None:
                    self.runner.forget_uris()  # the fix may have been a reset password: ask Neon afresh
                self.work(event.worker.name, what, job)
            elif self.runner is not None and self.runner.result.status == "running":
                # The run touched the world and cannot go on: record where it stopped, then show the summary.
                result = self.runner.result
                if isinstance(error, NeonError):
                    fail(result, error)
                else:
                    result.status = "failed"
                    result.error = StepFailedError(
                        result.step or "run",
                        error.args[0]
                        if isinstance(error, RecoveryError) and error.args
                        else f"{type(error).__name__}: {error}",
                        hint=error.hint
                        if isinstance(error, RecoveryError)
                        else "This is a bug in recovery-wizard: "
                        "the journal in .recovery-wizard/runs/ shows how far the run got; resume it with "
                        "`recovery-wizard restore --resume`.",
                    )
                self.goto("done")

        self.push_screen(ErrorModal(error, what=what), chosen)

    # --- connect, project, branch, moment, strategy --------------------------------------------------

    def connect(self, key: str) -> None:
        async def job() -> None:
            http = self.config.http
            if http is None:
                from recovery_wizard.neon.apiurl import check_api_url

                check_api_url(self.config.api_url or DEFAULT_API_URL)  # no key over plain http off this host
                self._own_http = http = httpx.AsyncClient(
                    headers={"User-Agent": f"recovery-wizard/{__version__}"},
                    timeout=httpx.Timeout(30, connect=10),
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
                if isinstance(screen, choices.ConnectScreen):
                    screen.show_status(f"{exc}\nNext: {exc.hint}", error=True)
                return
            self.client = client
            self.projects = projects
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
        command = "drill" if self.mode == Mode.DRILL else "restore"
        journal = latest_resumable(self.config.workdir, command)
        if journal is None or (journal.done("restore") is None and journal.begun_not_done("restore") is None):
            return False
        start = journal.start
        plan = start.data.get("plan", {}) if start else {}
        question = (
            f"An unfinished {command} run ({journal.run_id}) was found here: {plan.get('branch', {}).get('name')} "
            f"to {plan.get('restore_point')}. Continue it where it stopped?"
        )
        if not await self.push_screen_wait(ConfirmModal(question, yes="Continue it", no="Start a new run")):
            return False
        await self._resume(journal)
        return True

    async def _resume(self, journal: Journal) -> None:
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
            await (self.runner.restore_in_place() if self.plan.in_place else self.runner.restore_new_branch())
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
        assert self.client is not None
        project, self.branches = await project_and_branches(self.client, project_id)
        self.project = project
        self.window = RestoreWindow.from_retention(project.history_retention_seconds, datetime.now(UTC))

    def choose_project(self, project_id: str) -> None:
        async def job() -> None:
            await self._load_project(project_id)
            self.goto("branch")

        self.work("project", "Loading the project", job)

    def choose_branch(self, branch_id: str) -> None:
        self.branch = next(b for b in self.branches if b.id == branch_id)
        self.goto("moment")

    def _lens(self) -> Lens:
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
            screen = self.screen
            assert self.window is not None
            await self._load_names()
            now = datetime.now(UTC)
            good = now - (self.window.now - self.window.earliest) + EDGE_MARGIN

            def on_probe(p: Probe) -> None:
                if isinstance(screen, choices.MomentScreen):
                    verdict = "holds" if p.holds else "fails"
                    screen.show_find(f"Looked at {p.at:%Y-%m-%d %H:%M:%S} UTC: the canary {verdict}…")

            try:
                found = await search_moment(self._lens(), canary, good=good, bad=now, on_probe=on_probe)
            except UsageError as exc:
                if isinstance(screen, choices.MomentScreen):
                    screen.show_find(f"{exc} {exc.hint}", error=True)
                return
            self.search = {
                "run_id": "(in the wizard)",
                "canary": canary,
                "last_good": found.last_good,
                "first_bad": found.first_bad,
                "probes": [p.to_dict() for p in found.probes],
            }
            if isinstance(screen, choices.MomentScreen):
                screen.found_moment(
                    found.last_good.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    f"Last good moment: {found.last_good:%Y-%m-%d %H:%M:%S} UTC (the canary fails from "
                    f"{found.first_bad:%H:%M:%S}); {len(found.probes)} looks in {found.seconds:.1f} s. "
                    "It is filled in above as the restore point.",
                )

        self.work("find-moment", "Finding the last good moment", job)

    def peek(self, text: str, sql: str) -> None:
        async def job() -> None:
            screen = self.screen
            await self._load_names()
            moment = parse_moment(text, zone=self.zone, now=datetime.now(UTC))
            from recovery_wizard.recovery.sqlguard import require_read_only

            require_read_only(sql, what="query")  # as the CLI's peek: judged before anything connects
            try:
                result = await peek_at(self._lens(), moment.utc, sql)
            except PeekError as exc:
                if isinstance(screen, choices.MomentScreen):
                    screen.show_peek(str(exc), error=True)
                return
            rows = [" | ".join(result.columns)] + [
                " | ".join(str(v) for v in row) for row in result.rows[:20]
            ]
            if isinstance(screen, choices.MomentScreen):
                screen.show_peek(f"At {moment.describe()} ({result.lens}):\n" + "\n".join(rows))

        self.work("peek", "Looking at the past", job)

    def load_timeline(self) -> None:
        async def job() -> None:
            screen = self.screen
            assert self.client is not None and self.project is not None and self.window is not None
            events = await build_timeline(self.client, self.project, self.window)
            if isinstance(screen, choices.MomentScreen):
                screen.show_timeline(render_timeline(events[:40], self.zone))

        self.work("timeline", "Loading the timeline", job)

    def choose_moment(self, text: str, at: datetime) -> None:
        # "35 minutes ago" means 35 minutes before the user confirmed it, not before the plan is made.
        self.moment_text, self.moment_chosen_at = text, at
        self.goto("plan" if self.mode == Mode.DRILL else "strategy")

    def choose_strategy(self, strategy: str) -> None:
        self.strategy = strategy
        self.goto("plan")

    # --- plan and run --------------------------------------------------------------------------------

    def make_plan(self) -> None:
        async def job() -> None:
            assert self.client is not None and self.project is not None and self.branch is not None
            self.options = RunOptions(
                command="drill" if self.mode == Mode.DRILL else "restore",
                workdir=self.config.workdir,
                project_id=self.project.id,
                branch=self.branch.id,
                at=self.moment_text,
                tz=self.config.tz,
                strategy=self.strategy,
                env_files=list(self.config.env_files),
                checks=list(self.config.checks),
            )
            screen = self.screen
            try:
                self.plan = await resolve_plan(
                    self.client, self.options, self.prompter, self.reporter, now=self.moment_chosen_at
                )
            except UsageError as exc:
                if isinstance(screen, steps.PlanScreen):
                    screen.show_refusal(str(exc), exc.hint)
                return
            if isinstance(screen, steps.PlanScreen):
                screen.show_plan()

        self.work("plan", "Planning", job)

    def start_run(self) -> None:
        assert self.client is not None and self.options is not None and self.plan is not None
        journal = begin_run(self.options, self.plan, self.search)
        self.runner = Runner(self.client, self.plan, journal, self.prompter, self.reporter, yes=False)
        self.goto("restore")

    def _step(self, name: str, what: str, body: Callable[[Runner], Awaitable[str]]) -> None:
        """Run one runbook step; RunErrors (cancelled, verification failed…) end the run on the done screen."""

        async def job() -> None:
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
                if isinstance(screen, steps.RunStepScreen):
                    screen.finished(str(exc), ok=False)
                    screen.offer_summary()
                    self.current = self.step_keys[-2]  # Continue goes to "done"
                return
            if isinstance(screen, steps.RunStepScreen):
                screen.finished(message)

        self.work(name, what, job)

    def run_restore(self) -> None:
        async def body(runner: Runner) -> str:
            if runner.plan.in_place:
                await runner.restore_in_place()
                return f"{runner.plan.branch.name} is restored in place; the old state is {runner.plan.name}."
            await runner.restore_new_branch()
            branch = runner.result.restore_branch
            return f"The branch {branch.name if branch else '?'} is ready."

        self._step("restore", "The restore", body)

    def run_verify(self) -> None:
        async def body(runner: Runner) -> str:
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
        async def job() -> None:
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
            if isinstance(screen, steps.DoneScreen):
                screen.show_summary(summary_text(result), undo_lines(result), ok=result.status == "done")

        self.work("finish", "Writing the incident record", job)


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


def run_wizard(config: WizardConfig) -> int:
    app = make_app(config)
    code = app.run()
    return int(code or 0)
