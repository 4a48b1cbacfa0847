"""A fixed incident and helpers that put the wizard on one screen in one state, for snapshot tests.

Everything here is a constant: ids, names, sizes and times are fixed so that a snapshot only changes when
the wizard's rendering does. The story is the demo's: HomeCheff's production branch lost its users to a
migration run against the wrong database at about 02:35 Amsterdam time; we restore to 02:29.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input

from recovery_wizard.neon.models import Branch, Project, Snapshot
from recovery_wizard.recovery import verify
from recovery_wizard.recovery.journal import Journal
from recovery_wizard.recovery.plan import EnvTarget, Plan
from recovery_wizard.recovery.prisma import PrismaProject
from recovery_wizard.recovery.runner import RunResult
from recovery_wizard.recovery.timepoint import Moment, RestoreWindow
from recovery_wizard.tui.app import Mode, WizardApp, WizardConfig, make_app
from recovery_wizard.tui.screens.base import WizardScreen
from recovery_wizard.tui.screens.steps import RunStepScreen


class SnapCompare(Protocol):
    """The ``snap_compare`` fixture of pytest-textual-snapshot (the plugin ships no type hints)."""

    def __call__(
        self,
        app: App[Any],
        press: Iterable[str] = (),
        terminal_size: tuple[int, int] = (80, 24),
        run_before: Callable[[Pilot[Any]], Awaitable[None] | None] | None = None,
    ) -> bool: ...


# --- the clock ----------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 21, 2, 5, tzinfo=UTC)  # 03:05 in Amsterdam, half an hour after the incident
ZONE = "Europe/Amsterdam"
# What the fake time.monotonic() always answers: run screens compute their elapsed time against it.
CLOCK = 1000.0

# --- the world ----------------------------------------------------------------------------------------

WORKDIR = Path("/srv/homecheff")
ENV_FILE = WORKDIR / ".env"
CANARY = 'SELECT count(*) >= 10 FROM "User"'
LISTINGS_CHECK = 'SELECT count(*) >= 40 FROM "Listing"'
WEEK = 7 * 24 * 3600

PROJECTS = [
    Project(
        id="autumn-sound-12345678",
        name="homecheff-prod",
        region_id="aws-eu-central-1",
        pg_version=17,
        history_retention_seconds=WEEK,
        created_at=datetime(2026, 3, 2, 9, 14, tzinfo=UTC),
    ),
    Project(
        id="misty-river-87654321",
        name="homecheff-staging",
        region_id="aws-eu-central-1",
        pg_version=17,
        history_retention_seconds=24 * 3600,
    ),
    Project(
        id="quiet-pine-24681357",
        name="internal-tools",
        region_id="aws-us-east-2",
        pg_version=16,
        history_retention_seconds=WEEK,
    ),
]
PROD = PROJECTS[0]

MAIN = Branch(
    id="br-wild-sun-a1b2c3d4",
    project_id=PROD.id,
    name="main",
    current_state="ready",
    default=True,
    protected=True,
    logical_size=117_440_512,
    created_at=datetime(2026, 3, 2, 9, 14, tzinfo=UTC),
    last_reset_at=datetime(2026, 10, 2, 8, 11, tzinfo=UTC),
)
BRANCHES = [
    MAIN,
    Branch(
        id="br-green-lake-b2c3d4e5",
        project_id=PROD.id,
        name="dev/sari-allergens",
        current_state="ready",
        parent_id=MAIN.id,
        logical_size=102_760_448,
        created_at=datetime(2026, 11, 18, 13, 52, tzinfo=UTC),
    ),
    Branch(
        id="br-late-moon-c3d4e5f6",
        project_id=PROD.id,
        name="preview/checkout-redesign",
        current_state="ready",
        parent_id=MAIN.id,
        logical_size=110_100_480,
        created_at=datetime(2026, 11, 18, 13, 5, tzinfo=UTC),
    ),
    Branch(
        id="br-old-tide-d4e5f6a7",
        project_id=PROD.id,
        name="main_old_2026-10-02T08-11-04Z",
        current_state="ready",
        parent_id=MAIN.id,
        logical_size=98_566_144,
        created_at=datetime(2026, 10, 2, 8, 11, tzinfo=UTC),
    ),
    Branch(
        id="br-dry-field-e5f6a7b8",
        project_id=PROD.id,
        name="analytics",
        current_state="init",
        logical_size=None,
        created_at=datetime(2026, 11, 20, 22, 40, tzinfo=UTC),
    ),
]
PREVIEW = BRANCHES[2]

WINDOW = RestoreWindow.from_retention(WEEK, NOW)
MOMENT_TEXT = "2026-11-21 02:29"  # read in Europe/Amsterdam: 01:29 UTC
MOMENT = Moment(datetime(2026, 11, 21, 1, 29, tzinfo=UTC), MOMENT_TEXT, ZoneInfo(ZONE))
TOO_OLD_TEXT = "2026-11-10 23:59"  # eleven days back, the window keeps seven


def _snapshot(
    ident: str, name: str, at: str, *, branch: str = MAIN.id, expires_at: str | None = None
) -> Snapshot:
    return Snapshot(
        id=ident, name=name, created_at=at, timestamp=at, source_branch_id=branch, expires_at=expires_at
    )


# Newest first, as Neon lists them: the nightly schedule (kept a week), Daan's manual one before the release,
# an expired one (never listed), one of a root branch since deleted, and one older than the window.
SNAPSHOTS = [
    _snapshot("snap-n21", "nightly 2026-11-21", "2026-11-21T02:00:00Z", expires_at="2026-11-28T02:00:00Z"),
    _snapshot("snap-rel", "before release", "2026-11-20T17:02:41Z"),
    _snapshot("snap-n20", "nightly 2026-11-20", "2026-11-20T02:00:00Z", expires_at="2026-11-27T02:00:00Z"),
    _snapshot("snap-old", "expired test", "2026-11-19T09:00:00Z", expires_at="2026-11-20T09:00:00Z"),
    _snapshot("snap-lab", "analytics copy", "2026-11-18T12:30:00Z", branch="br-gone-root-99887766"),
    _snapshot("snap-v2", "before the v2 migration", "2026-11-08T14:12:00Z"),
]

RESTORED = Branch(
    id="br-cool-frost-f6a7b8c9",
    project_id=PROD.id,
    name="main-restore-2026-11-21T01-29-00Z",
    current_state="ready",
    parent_id=MAIN.id,
    parent_timestamp=MOMENT.utc,
)
RUN_DIR = WORKDIR / ".recovery-wizard" / "runs" / "20261121T020812Z"

INTRO = (
    "Demo: homecheff-prod is the production database of HomeCheff, a small Next.js + Prisma marketplace "
    "for home-cooked meals. About 30 minutes ago a migration meant for a developer's local database ran "
    "against production: it recreated the User table and kept only the 2 admin accounts, so 16 cooks and "
    "customers can no longer sign in and their listings and orders point at nobody. Restore the data as it "
    "was just before the incident (3 small writes made since then will need redoing).\n\n"
    "This is a local sandbox (no Neon account). The app directory is /tmp/homecheff-demo-k2j4; its .env "
    "points at the damaged branch. Press Enter to begin."
)


def make_plan(*, strategy: str = "new-branch") -> Plan:
    """The plan resolve_plan would make for the incident: new branch, one env file, Prisma, one warning."""
    in_place = strategy == "in-place"
    return Plan(
        command="restore",
        strategy=strategy,
        project=PROD,
        branch=MAIN,
        moment=MOMENT,
        window=WINDOW,
        database="neondb",
        role="neondb_owner",
        name="main_old_2026-11-21T02-08-12Z" if in_place else RESTORED.name,
        env_targets=[] if in_place else [EnvTarget(ENV_FILE, "DATABASE_URL", "DIRECT_URL", False, [])],
        checks=[CANARY],
        prisma=PrismaProject(
            root=WORKDIR,
            binary=WORKDIR / "node_modules" / ".bin" / "prisma",
            version="6.19.0",
            major=6,
            minor=19,
            schema_path=WORKDIR / "prisma" / "schema.prisma",
            config_path=None,
            url_var="DATABASE_URL",
            direct_var="DIRECT_URL",
            config_loads_dotenv=False,
        ),
        children=BRANCHES[1:4],
        warnings=[
            "1 Neon operation(s) are still running on the project (start_compute…): the restore will wait "
            "for them (Neon answers 423 until they finish)."
        ],
    )


def verification() -> dict[str, Any]:
    """Damaged and restored counts as the runbook reports them, with one passing and one failing check."""

    def count(table: str, rows: int) -> verify.TableCount:
        return verify.TableCount("public", table, rows, True)

    def side_by_side(table: str, damaged: int, restored: int) -> verify.TableComparison:
        return verify.TableComparison("public", table, count(table, damaged), count(table, restored))

    return verify.Verification(
        tables=[
            side_by_side("Listing", 24, 24),
            side_by_side("Order", 63, 61),
            side_by_side("Review", 41, 40),
            side_by_side("User", 2, 18),
            side_by_side("_prisma_migrations", 7, 7),
        ],
        checks=[
            verify.CheckComparison(
                CANARY, verify.CheckOutcome("f", False, None), verify.CheckOutcome("t", True, None)
            ),
            verify.CheckComparison(
                LISTINGS_CHECK, verify.CheckOutcome("f", False, None), verify.CheckOutcome("f", False, None)
            ),
        ],
    ).to_dict()


def finished_run() -> RunResult:
    """A run that restored to a new branch, rewrote .env and ran Prisma: what the done screen summarises."""
    return RunResult(
        journal=Journal(RUN_DIR),
        plan=make_plan(),
        status="done",
        restore_branch=RESTORED,
        endpoint_id="ep-cool-frost-f6a7b8c9",
        lost=[{"table": "Order", "rows": 2}, {"table": "Review", "rows": 1}],
        env_files=[
            {
                "path": str(ENV_FILE),
                "variables": ["DATABASE_URL", "DIRECT_URL"],
                "backup": str(RUN_DIR / "env-backups" / "0-.env"),
            }
        ],
        prisma={"schema_backup": str(RUN_DIR / "prisma" / "schema.prisma")},
        report_path=RUN_DIR / "report.md",
    )


# --- putting the wizard on a screen ---------------------------------------------------------------------


def make_wizard(
    *,
    mode: Mode = Mode.NORMAL,
    learn: bool | None = None,
    api_key: str | None = None,
    intro: str | None = None,
) -> WizardApp:
    # A fixed zone: the moment screen echoes local time, and the machine's zone must not leak in.
    return make_app(
        WizardConfig(
            workdir=WORKDIR,
            mode=mode,
            api_key=api_key,
            tz=ZONE,
            intro=intro,
            learn=learn,
            checks=[CANARY],
            arm_seconds=0.0,  # arming has tests of its own (tests/tui/test_stress.py); scenes press at once
        )
    )


def wizard(pilot: Pilot[Any]) -> WizardApp:
    app = pilot.app
    assert isinstance(app, WizardApp)
    return app


def seed(app: WizardApp, key: str) -> None:
    """The state the wizard holds when it reaches ``key``: every earlier choice made, as a user would.

    A test may set a choice first (another branch, in place); only what is still unset is filled in.
    """
    keys = app.step_keys
    reached = set(keys[: keys.index(key) + 1])
    if "project" in reached and not app.projects:
        app.projects = list(PROJECTS)
    if "branch" in reached and app.project is None:
        app.project, app.branches, app.window = PROD, list(BRANCHES), WINDOW
    if "source" in reached and app.branch is None:
        app.branch = MAIN
    if "plan" in reached and app.plan is None:
        app.moment_text, app.moment_chosen_at = MOMENT_TEXT, NOW
        app.plan = make_plan(strategy=app.strategy)


def steady(screen: Screen[Any]) -> None:
    """Stop what would make two screenshots of one state differ: a blinking cursor shows or not at random."""
    for field in screen.query(Input):
        field.cursor_blink = False


async def show(pilot: Pilot[Any], key: str, *, theme: str | None = None) -> WizardScreen:
    """Switch the wizard to step ``key`` as :meth:`WizardApp.goto` would, and wait until it has mounted."""
    app = wizard(pilot)
    if theme is not None:
        app.theme = theme
    seed(app, key)
    keys = app.step_keys
    app.done_steps = set(keys[: keys.index(key)])
    app.current = key
    await app.switch_screen(app.screen_for(key)())
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, WizardScreen)
    steady(screen)
    return screen


async def show_run(pilot: Pilot[Any], key: str, *, theme: str | None = None) -> RunStepScreen:
    screen = await show(pilot, key, theme=theme)
    assert isinstance(screen, RunStepScreen)
    # Draw the progress line as the step's 0.5 s timer does, now: whether a tick lands before the screenshot
    # then changes nothing, since with the frozen clock every tick draws the same line.
    screen._tick()
    return screen


def finish(screen: RunStepScreen, message: str, seconds: float, *, ok: bool = True) -> None:
    """End a run step the way the app's worker does, as if it took ``seconds``."""
    screen.started = CLOCK - seconds
    screen.finished(message, ok=ok)
    if not ok:
        # What WizardApp._step does when a step raises RunError: Continue now leads to the summary.
        screen.offer_summary()


async def paste(pilot: Pilot[Any], selector: str, text: str) -> None:
    """Put ``text`` in a field in one edit, as a paste does (one Changed event, not one per key: the moment
    screen parses on every change, and partial dates go through dateparser, which is slow)."""
    field = wizard(pilot).screen.query_one(selector, Input)
    field.insert_text_at_cursor(text)
    await pilot.pause()


async def push_modal(pilot: Pilot[Any], modal: Screen[Any]) -> None:
    await wizard(pilot).push_screen(modal)
    await pilot.pause()
    steady(modal)
