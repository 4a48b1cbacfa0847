"""The wizard under Pilot: a homecheff sandbox, an app directory pointed at it, and helpers to drive screens.

The sandbox's API runs in-process (``httpx.ASGITransport``) but its endpoint proxies listen on real sockets in
this event loop, so the test, the sandbox and the Textual app all share pytest-asyncio's loop. The wizard
waits for things in workers, which ``pilot.pause()`` does not; :func:`wait_until` polls for the outcome a
step leads to (a screen, an enabled button, a modal) instead of sleeping for a guessed time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from textual.content import Content
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Static

from recovery_wizard.neon import NeonClient
from recovery_wizard.neon.models import Branch
from recovery_wizard.recovery import envfile
from recovery_wizard.sandbox.service import Sandbox
from recovery_wizard.tui.app import Mode, WizardApp, WizardConfig
from recovery_wizard.tui.screens import choices, sources, steps
from recovery_wizard.tui.screens.modals import ErrorModal
from tests.recovery.conftest import write_app
from tests.sandbox.conftest import in_process_http, neon_client
from tests.sandbox.conftest import sandbox as sandbox  # the same fresh homecheff sandbox per test

S = TypeVar("S", bound=Screen[Any])
WizardPilot = Pilot[int]
SIZE = (100, 32)
# Generous: a restore waits for Neon's operations with the app's default polling (0.5 s first interval).
STEP_TIMEOUT = 45.0


@dataclass
class Incident:
    """The homecheff incident as a wizard user meets it: an app directory whose .env points at main."""

    sandbox: Sandbox
    app_dir: Path
    http: httpx.AsyncClient  # what the wizard talks to Neon through (in-process)
    client: NeonClient  # the test's own view of Neon, for assertions
    main: Branch
    env_before: bytes

    @property
    def env_path(self) -> Path:
        return self.app_dir / ".env"

    @property
    def canary(self) -> str:
        assert self.sandbox.project is not None and self.sandbox.project.scenario is not None
        return self.sandbox.project.scenario.canary

    def config(self, mode: Mode = Mode.NORMAL, **overrides: Any) -> WizardConfig:
        settings: dict[str, Any] = {
            "workdir": self.app_dir,
            "api_key": self.sandbox.api_key.reveal(),
            "api_url": self.sandbox.api_url,
            "http": self.http,
            "checks": [self.canary],
            "mode": mode,
            # Fixed, so the moment the wizard echoes does not depend on the machine's zone.
            "tz": "Europe/Amsterdam",
            # Flows press keys at machine speed; the arming delay has tests of its own (test_stress.py).
            "arm_seconds": 0.0,
        }
        settings.update(overrides)
        return WizardConfig(**settings)

    async def branches(self) -> list[Branch]:
        return await self.client.branches(self.sandbox.project_id)

    async def branch_names(self) -> list[str]:
        return sorted(b.name for b in await self.branches())

    async def main_direct_url(self) -> str:
        uri = await self.client.connection_uri(
            self.sandbox.project_id,
            branch_id=self.main.id,
            database_name="neondb",
            role_name="neondb_owner",
            pooled=False,
        )
        return uri.reveal()

    def env_value(self, name: str) -> str:
        value = envfile.EnvFile.read(self.env_path).get(name)
        assert value is not None, f"{name} is not set in {self.env_path}"
        return value

    def standin_commands(self) -> list[str]:
        """`db pull`, `generate`…: what the stand-in Prisma CLI was asked to do, in order."""
        log = self.app_dir / ".prisma-standin.log"
        if not log.exists():
            return []
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        return [" ".join(c["argv"][1:3]) for c in calls]


async def count_users(url: str) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (await conn.execute('SELECT count(*) FROM "User"')).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
async def incident(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Incident]:
    async with in_process_http(sandbox) as http:
        client = neon_client(sandbox, http)
        main = next(b for b in await client.branches(sandbox.project_id) if b.default)
        params = {"branch_id": main.id, "database_name": "neondb", "role_name": "neondb_owner"}
        pooled = await client.connection_uri(sandbox.project_id, pooled=True, **params)
        direct = await client.connection_uri(sandbox.project_id, pooled=False, **params)
        app_dir = tmp_path / "homecheff"
        app_dir.mkdir()
        env = write_app(app_dir, pooled.reveal(), direct.reveal())
        yield Incident(sandbox, app_dir, http, client, main, env.read_bytes())


# --- driving the app -------------------------------------------------------------------------------------


async def wait_until(
    pilot: WizardPilot, predicate: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT
) -> None:
    """Let the app run until ``predicate`` holds; fail with where the wizard is if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        app = pilot.app
        if isinstance(app.screen, ErrorModal):
            # A failed worker waits for an answer forever: say what failed now rather than time out.
            raise AssertionError(f"waiting for {what}, the wizard failed: {app.screen.error!r}")
        if loop.time() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}; the wizard shows "
                f"{type(app.screen).__name__} ({[type(s).__name__ for s in app.screen_stack]})"
            )
        await pilot.pause(0.02)
    await pilot.pause()


async def on_screen(pilot: WizardPilot, kind: type[S], timeout: float = STEP_TIMEOUT) -> S:
    """Wait until the top screen is a ``kind`` (a wizard step or a modal) and return it."""
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind), kind.__name__, timeout)
    screen = pilot.app.screen
    assert isinstance(screen, kind)
    return screen


async def settle(pilot: WizardPilot, timeout: float = STEP_TIMEOUT) -> None:
    """Wait for every worker to finish (app-level workers: pilot.pause() does not), then for the screen."""
    await asyncio.wait_for(pilot.app.workers.wait_for_complete(), timeout)
    await pilot.pause()


async def step_finished(pilot: WizardPilot, kind: type[S], timeout: float = STEP_TIMEOUT) -> S:
    """A run step's screen once its work is over (its Continue button is enabled)."""
    screen = await on_screen(pilot, kind, timeout)
    await wait_until(
        pilot,
        lambda: pilot.app.screen is screen and not screen.query_one("#next", Button).disabled,
        f"{kind.__name__} to finish",
        timeout,
    )
    return screen


async def press_button(pilot: WizardPilot, button_id: str) -> None:
    """Keyboard only: Tab to the button, then Enter, as a user who never touches the mouse would."""
    for _ in range(20):
        focused = pilot.app.focused
        if focused is not None and focused.id == button_id:
            break
        await pilot.press("tab")
    else:
        raise AssertionError(f"Tab never reached #{button_id} on {type(pilot.app.screen).__name__}")
    await pilot.press("enter")


@pytest.fixture
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A HOME of the test's own: ~/Downloads and ~/Desktop are searched for backups, and the machine's own
    must not leak into the list."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


def text_of(widget: Widget) -> str:
    """What a Static shows, without markup."""
    assert isinstance(widget, Static), widget
    visual = widget.visual
    return visual.plain if isinstance(visual, Content) else str(widget.content)


def rail_of(screen: Screen[Any]) -> list[str]:
    """The step rail's lines as shown: each step's mark, a space and its title."""
    from recovery_wizard.tui.widgets.rail import StepRail

    return screen.query_one(StepRail).lines


def screen_text(screen: Screen[Any], selector: str) -> str:
    return text_of(screen.query_one(selector))


def all_text(screen: Screen[Any]) -> str:
    """Every Static on the screen, for "does it say X anywhere" checks."""
    return "\n".join(text_of(w) for w in screen.query(Static))


def check_verdict(verify: Screen[Any], sql: str) -> str:
    """PASS or FAIL: what the verify screen says about the check ``sql`` (however the line is decorated)."""
    checks = screen_text(verify, "#checks")
    line = next((line for line in checks.splitlines() if sql in line), "")
    verdicts = {v for v in ("PASS", "FAIL") if v in line}
    assert len(verdicts) == 1, f"no single verdict for {sql!r} in {checks!r}"
    return verdicts.pop()


def wizard(pilot: WizardPilot) -> WizardApp:
    app = pilot.app
    assert isinstance(app, WizardApp)
    return app


def record_steps(app: WizardApp) -> list[str]:
    """Every step the wizard goes to, in order (to prove which screens a flow did and did not show)."""
    visited: list[str] = []
    goto = app.goto

    def recording(key: str) -> None:
        visited.append(key)
        goto(key)

    app.goto = recording  # type: ignore[method-assign]
    return visited


async def through_source(pilot: WizardPilot) -> sources.SourceScreen:
    """ "Where from?": Enter on the highlighted choice (Neon history, unless the test chose otherwise)."""
    screen = await on_screen(pilot, sources.SourceScreen)
    await pilot.press("enter")
    return screen


async def walk_to_plan(
    pilot: WizardPilot, *, moment: str = "35 minutes ago", in_place: bool = False
) -> steps.PlanScreen:
    """Connect (the key is in the config), Enter on main, type the moment, pick the strategy: the plan, ready."""
    await on_screen(pilot, choices.BranchScreen)
    await pilot.press("enter")
    await through_source(pilot)
    await on_screen(pilot, choices.MomentScreen)
    await pilot.press(*moment)
    await pilot.press("enter")
    if wizard(pilot).mode != Mode.DRILL:
        await on_screen(pilot, choices.StrategyScreen)
        if in_place:
            await pilot.press("down", "space")  # the list has focus: next option, select it
        await press_button(pilot, "next")
    plan = await on_screen(pilot, steps.PlanScreen)
    await wait_until(pilot, lambda: not plan.query_one("#start", Button).disabled, "the plan")
    return plan


async def start_run(pilot: WizardPilot) -> None:
    """From a ready plan: Start (it has the focus once the plan is shown)."""
    plan = pilot.app.screen
    assert isinstance(plan, steps.PlanScreen)
    assert pilot.app.focused is plan.query_one("#start", Button)
    await pilot.press("enter")


async def stop_the_run(pilot: WizardPilot) -> None:
    """Ctrl+Q mid-run: the wizard asks first (No has the focus); "Stop the run" takes the interrupt path."""
    from recovery_wizard.tui.screens.modals import ConfirmModal

    await pilot.press("ctrl+q")
    question = await on_screen(pilot, ConfirmModal)
    assert "Stop it here?" in question.question
    assert pilot.app.focused is question.query_one("#no", Button)
    await press_button(pilot, "yes")
    await wait_until(pilot, lambda: pilot.app.return_value is not None, "the wizard to exit")
