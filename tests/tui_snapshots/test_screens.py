"""Snapshots of every wizard screen and modal, in fixed states (see scenes.py for the incident).

The main size is 100×32; 80×24 is the smallest terminal the wizard promises to be usable in, so the screens a
user types or reads the most on are also taken there. The light theme is checked where colour carries
meaning: the step rail, the window bar, error and success lines, the error modal's hint. Update with ``pytest tests/tui_snapshots --snapshot-update``
and look at every changed SVG before committing it.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from recovery_wizard.neon.errors import LockedError
from recovery_wizard.recovery import envfile
from recovery_wizard.tui.app import Mode, summary_text, undo_lines
from recovery_wizard.tui.screens.choices import ConnectScreen
from recovery_wizard.tui.screens.modals import ConfirmModal, ErrorModal, TypeToConfirmModal
from recovery_wizard.tui.screens.steps import DoneScreen, PlanScreen, VerifyScreen
from tests.tui_snapshots.scenes import (
    CLOCK,
    ENV_FILE,
    INTRO,
    MAIN,
    MOMENT,
    MOMENT_TEXT,
    PREVIEW,
    RESTORED,
    RUN_DIR,
    SNAPSHOTS,
    TOO_OLD_TEXT,
    SnapCompare,
    finish,
    finished_run,
    make_wizard,
    paste,
    push_modal,
    show,
    show_run,
    steady,
    verification,
    wizard,
)

WIDE = (100, 32)
SMALL = (80, 24)
LIGHT = "textual-light"
# A key from the sandbox's format; never shown (the connect screen only says where the key came from).
API_KEY = "napi_snapshot0key1never2shown3anywhere4qwertyuiop"


async def steady_first_screen(pilot: Pilot[Any]) -> None:
    """The connect screen is the one the app opens with; only its cursor needs calming."""
    await pilot.pause()
    steady(pilot.app.screen)


# --- connect ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [WIDE, SMALL], ids=["100x32", "80x24"])
def test_connect_paste_key(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """No NEON_API_KEY: the key is pasted into a masked box."""
    app = make_wizard()
    assert snap_compare(app, terminal_size=size, run_before=steady_first_screen)


def test_connect_paste_key_typed(snap_compare: SnapCompare) -> None:
    """A typed key shows as dots only."""
    app = make_wizard()
    assert snap_compare(app, terminal_size=WIDE, run_before=steady_first_screen, press=[*"napi_abc123"])


def test_connect_key_given(snap_compare: SnapCompare) -> None:
    """NEON_API_KEY set: the screen checks it at once (the check itself is disabled here)."""
    app = make_wizard(api_key=API_KEY)
    assert snap_compare(app, terminal_size=WIDE, run_before=steady_first_screen)


def test_connect_key_refused(snap_compare: SnapCompare) -> None:
    """A refused key: the error sits under the box and Check and continue works again."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, ConnectScreen)
        steady(screen)
        # What WizardApp.connect shows for an UnauthorizedError: f"{exc} {exc.hint}".
        screen.show_status(
            "The API key was refused (HTTP 401) (request id 5f0c9a2e-1b7d-4e3a-9c61-0d8e2f4b7a13) "
            "Check NEON_API_KEY (or --api-key): create a key in the Neon Console under Account → API keys.",
            error=True,
        )

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


@pytest.mark.parametrize("size", [WIDE, SMALL], ids=["100x32", "80x24"])
def test_connect_demo_intro(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """`recovery-wizard demo`: the story first, learning mode on."""
    app = make_wizard(mode=Mode.DEMO, api_key=API_KEY, intro=INTRO)
    assert snap_compare(app, terminal_size=size, run_before=steady_first_screen)


# --- project, branch --------------------------------------------------------------------------------------


def test_project(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await show(pilot, "project")

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


@pytest.mark.parametrize("size", [WIDE, SMALL], ids=["100x32", "80x24"])
def test_branch(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """The default branch is preselected; flags, state, size and last reset tell the branches apart."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await show(pilot, "branch")

    assert snap_compare(make_wizard(), terminal_size=size, run_before=run_before)


def test_branch_filter_no_match(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await show(pilot, "branch")
        await paste(pilot, "#filter", "staging")

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


# --- moment -----------------------------------------------------------------------------------------------


def test_moment_empty(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await show(pilot, "moment")

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


@pytest.mark.parametrize(
    ("size", "theme", "learn"),
    [
        (WIDE, None, False),
        (WIDE, None, True),
        (WIDE, LIGHT, False),
        (SMALL, None, False),
        (SMALL, None, True),
    ],
    ids=["dark-100x32", "dark-100x32-why", "light-100x32", "dark-80x24", "dark-80x24-why"],
)
def test_moment_valid(
    snap_compare: SnapCompare, size: tuple[int, int], theme: str | None, learn: bool
) -> None:
    """A moment inside the window: echoed in UTC and Amsterdam time, a dot on the bar, Continue enabled."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await show(pilot, "moment", theme=theme)
        await paste(pilot, "#at", MOMENT_TEXT)

    assert snap_compare(make_wizard(learn=learn), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [WIDE, SMALL], ids=["100x32", "80x24"])
def test_moment_out_of_window(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """Eleven days back in a seven-day window: refused with the reason, the bar points off its left end."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await show(pilot, "moment")
        await paste(pilot, "#at", TOO_OLD_TEXT)

    assert snap_compare(make_wizard(), terminal_size=size, run_before=run_before)


# --- where from: history, a snapshot, a file -------------------------------------------------------------


@pytest.mark.parametrize("size", [WIDE, SMALL], ids=["100x32", "80x24"])
def test_source(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """The three sources: history (highlighted), the snapshots as listed, the backup file."""

    async def run_before(pilot: Pilot[Any]) -> None:
        wizard(pilot).raw_snapshots = list(SNAPSHOTS)
        await show(pilot, "source")

    assert snap_compare(make_wizard(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [WIDE, SMALL], ids=["100x32", "80x24"])
def test_snapshot_list(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """Live snapshots, newest data first; the expired one left out, one of another branch marked."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = wizard(pilot)
        app.raw_snapshots, app.source_kind = list(SNAPSHOTS), "snapshot"
        await show(pilot, "moment")

    assert snap_compare(make_wizard(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [WIDE, SMALL], ids=["100x32", "80x24"])
def test_moment_out_of_window_offers_a_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """Eleven days back: refused as history, the newest snapshot before it offered; snapshots on the bar."""

    async def run_before(pilot: Pilot[Any]) -> None:
        wizard(pilot).raw_snapshots = list(SNAPSHOTS)
        await show(pilot, "moment")
        await paste(pilot, "#at", TOO_OLD_TEXT)

    assert snap_compare(make_wizard(), terminal_size=size, run_before=run_before)


# --- strategy, plan ---------------------------------------------------------------------------------------


def test_strategy(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await show(pilot, "strategy")

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


def test_strategy_in_place_non_root(snap_compare: SnapCompare) -> None:
    """In place chosen for a child branch: the consequences change and a warning says Neon refuses it."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = wizard(pilot)
        app.strategy, app.branch = "in-place", PREVIEW
        await show(pilot, "strategy")

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


def test_plan(snap_compare: SnapCompare) -> None:
    """Every step in order and one warning; Start is the only way on."""

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await show(pilot, "plan")
        assert isinstance(screen, PlanScreen)
        screen.show_plan()

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


def test_plan_refused(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await show(pilot, "plan")
        assert isinstance(screen, PlanScreen)
        screen.show_refusal(
            f"A branch named {RESTORED.name!r} already exists.",
            "Pass --name with a new name, or resume the run that created it (restore --resume).",
        )

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


# --- the run ----------------------------------------------------------------------------------------------


def test_restore_finished(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await show_run(pilot, "restore")
        screen.add_line("step", "Restore")
        screen.add_line("info", f"Creating {RESTORED.name} ({RESTORED.id}) at {MOMENT.describe()}…")
        screen.add_line("info", f"Branch {RESTORED.name} ({RESTORED.id}) is ready.")
        finish(screen, f"The branch {RESTORED.name} is ready.", 42.4)

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


@pytest.mark.parametrize(
    ("size", "theme"),
    [(WIDE, None), (WIDE, LIGHT), (SMALL, None)],
    ids=["dark-100x32", "light-100x32", "dark-80x24"],
)
def test_verify(snap_compare: SnapCompare, size: tuple[int, int], theme: str | None) -> None:
    """Counts side by side; the canary passes, the second check fails and the run stops before env files."""

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await show_run(pilot, "verify", theme=theme)
        assert isinstance(screen, VerifyScreen)
        screen.show_verification(verification())
        finish(
            screen,
            "Verification failed: 1 check(s) did not pass on the restored data "
            '(SELECT count(*) >= 40 FROM "Listing"). No env file was touched.',
            6.8,
            ok=False,
        )

    assert snap_compare(make_wizard(), terminal_size=size, run_before=run_before)


ENV_BEFORE = (
    "# HomeCheff production database (Neon). Pooled for the app, direct for Prisma's CLI.\n"
    'DATABASE_URL="postgresql://neondb_owner:npg_Xk3v9QmT2aLp@ep-wild-sun-a1b2c3d4-pooler.eu-central-1.aws.neon.tech'
    '/neondb?sslmode=require&pgbouncer=true&connect_timeout=15"\n'
    'DIRECT_URL="postgresql://neondb_owner:npg_Xk3v9QmT2aLp@ep-wild-sun-a1b2c3d4.eu-central-1.aws.neon.tech'
    '/neondb?sslmode=require"\n'
    "NEXTAUTH_URL=http://localhost:3000\n"
    "NEXTAUTH_SECRET=s3cr3t-n0t-f0r-y0ur-eyes\n"
)
ENV_AFTER = ENV_BEFORE.replace("ep-wild-sun-a1b2c3d4", "ep-cool-frost-f6a7b8c9").replace(
    "npg_Xk3v9QmT2aLp", "npg_Rw8cZ1nB4yHd"
)


def env_diff() -> str:
    # The runbook's own masking: passwords and secret-looking values never reach the screen.
    return envfile.masked_diff(ENV_FILE, ENV_BEFORE, ENV_AFTER)


def test_env(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await show_run(pilot, "env")
        screen.add_line("step", "Env files")
        screen.show_block(f"Changes to {ENV_FILE}", env_diff())
        screen.add_line(
            "info",
            f"Rewrote DATABASE_URL, DIRECT_URL in {ENV_FILE} (backup: {RUN_DIR}/env-backups/0-.env).",
        )
        finish(screen, "Rewrote 1 env file(s); backups are in the run directory.", 1.2)

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


PRISMA_DIFF = """\
--- prisma/schema.prisma (before)
+++ prisma/schema.prisma (after)
@@ -14,9 +14,8 @@
 model User {
   id        String   @id
   email     String   @unique
   name      String?
-  phone     String?
   role      Role     @default(USER)
   createdAt DateTime @default(now())
   updatedAt DateTime @updatedAt
 }"""

PRISMA_LOG = [
    "Environment variables loaded from .env",
    "Prisma schema loaded from prisma/schema.prisma",
    'Datasource "db": PostgreSQL database "neondb", schema "public" at "ep-cool-frost-f6a7b8c9.eu-central-1.aws.neon.tech"',
    "- Introspecting based on datasource defined in prisma/schema.prisma",
    "✔ Introspected 6 models and wrote them into prisma/schema.prisma in 1.21s",
    "✔ Generated Prisma Client (v6.19.0) to ./node_modules/@prisma/client in 112ms",
]


def test_prisma(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await show_run(pilot, "prisma")
        screen.add_line("step", "Prisma")
        for line in PRISMA_LOG[:5]:
            screen.add_line("output", line)
        screen.show_block("Schema changes from `prisma db pull`", PRISMA_DIFF)
        screen.add_line("output", PRISMA_LOG[5])
        finish(screen, "Schema pulled and client generated.", 9.6)

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


def test_cleanup_drill(snap_compare: SnapCompare) -> None:
    """A drill's last step (learning mode is on by default in a drill)."""

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await show_run(pilot, "cleanup")
        screen.add_line("info", "Deleted the drill branch drill-main-20261121T020812Z.")
        finish(screen, "The drill branch is deleted.", 3.1)

    assert snap_compare(make_wizard(mode=Mode.DRILL), terminal_size=WIDE, run_before=run_before)


@pytest.mark.parametrize("theme", [None, LIGHT], ids=["dark", "light"])
def test_done(snap_compare: SnapCompare, theme: str | None) -> None:
    """The summary the app builds from a finished run, and how to undo each change."""

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await show(pilot, "done", theme=theme)
        assert isinstance(screen, DoneScreen)
        result = finished_run()
        screen.show_summary(summary_text(result), undo_lines(result), ok=True)

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


# --- modals -----------------------------------------------------------------------------------------------


def test_confirm_modal(snap_compare: SnapCompare) -> None:
    """Asked under the masked diff it is about, which stays readable above the modal."""

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await show_run(pilot, "env")
        screen.show_block(f"Changes to {ENV_FILE}", env_diff())
        await push_modal(pilot, ConfirmModal(f"Write these changes to {ENV_FILE}?"))

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


def test_confirm_modal_at_80x24_holds_the_diff_it_asks_about(snap_compare: SnapCompare) -> None:
    """At 80×24 the modal covers most of the screen: the diff is inside it, as the wizard's prompter puts it."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await show_run(pilot, "env")
        details = f"Changes to {ENV_FILE}\n{env_diff()}"
        await push_modal(pilot, ConfirmModal(f"Write these changes to {ENV_FILE}?", details=details))

    assert snap_compare(make_wizard(learn=False), terminal_size=SMALL, run_before=run_before)


def test_type_to_confirm_modal(snap_compare: SnapCompare) -> None:
    """In place: typing the branch name is the only way to Overwrite."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = wizard(pilot)
        app.strategy = "in-place"
        await show_run(pilot, "restore")
        question = (
            f"This overwrites every database on {MAIN.name!r} with its state at {MOMENT.describe()}. "
            "Type the branch name to confirm"
        )
        await push_modal(pilot, TypeToConfirmModal(question, MAIN.name))

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before, press=["m", "a"])


@pytest.mark.parametrize("theme", [None, LIGHT], ids=["dark", "light"])
def test_error_modal(snap_compare: SnapCompare, theme: str | None) -> None:
    """A 423 while creating the restore branch: Neon's message, the request id and what to do next."""

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await show_run(pilot, "restore", theme=theme)
        screen.add_line("step", "Restore")
        # Neon refused 37 s into the step. The progress line is drawn as the step's timer draws it (tick), so
        # a tick that lands before the screenshot changes nothing: the frozen clock makes every tick equal.
        screen.started = CLOCK - 37
        # The runbook's own wording (Runner._progress) for the restore's operations.
        screen.set_progress("restore: 0/1 operations done, 37 s")
        screen._tick()  # after set_progress, as the timer would: the line is "running" again
        error = LockedError(
            "Neon refused POST /projects/p/branches with HTTP 423: project already has running conflicting "
            "operations, scheduling of new ones is prohibited",
            status=423,
            request_id="d3b07384-d9a0-4c5b-9f1e-2a6f4c8e7b10",
            method="POST",
            path="/projects/p/branches",
        )
        await push_modal(pilot, ErrorModal(error, what="The restore"))

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)


def test_error_modal_bug(snap_compare: SnapCompare) -> None:
    """Not a Neon error: the modal says it is a bug and where the journal is."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await show(pilot, "plan")
        await push_modal(pilot, ErrorModal(KeyError("endpoints"), what="Planning", can_retry=False))

    assert snap_compare(make_wizard(), terminal_size=WIDE, run_before=run_before)
