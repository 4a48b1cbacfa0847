"""The demo's first screen: the story at once, the sandbox's progress under it, Begin once it is up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.widgets import Button, Static

from recovery_wizard.tui.app import Mode, WizardApp, WizardConfig
from recovery_wizard.tui.screens.connect import ConnectScreen


def text_of(screen: ConnectScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_the_story_shows_while_the_sandbox_starts_and_begin_waits_for_it(tmp_path: Path) -> None:
    up = asyncio.Event()
    phases: list[str] = []

    async def starting(config: WizardConfig, progress: Callable[[str], None]) -> None:
        progress("Starting PostgreSQL…")
        phases.append("started")
        await up.wait()
        config.api_key, config.api_url, config.intro = (
            "napi_x",
            "http://127.0.0.1:9/api/v2",
            "The full story.",
        )

    config = WizardConfig(workdir=tmp_path, mode=Mode.DEMO, intro="The short story.", starting=starting)
    app = WizardApp(config)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConnectScreen)
        begin = screen.query_one("#next", Button)
        assert "The short story." in text_of(screen, "#intro")
        assert phases == ["started"] and "Starting PostgreSQL…" in text_of(screen, "#key-source")
        assert begin.disabled and str(begin.label) == "Starting…"
        await pilot.press("enter")  # nothing to begin yet: it stays here
        await pilot.pause()
        assert app.screen is screen and app.client is None
        up.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not begin.disabled and str(begin.label) == "Begin" and app.focused is begin
        assert "The full story." in text_of(screen, "#intro")
        assert config.starting is None


async def test_a_sandbox_that_cannot_start_says_so_and_leaves_begin_off(tmp_path: Path) -> None:
    async def starting(config: WizardConfig, progress: Callable[[str], None]) -> None:
        raise OSError("no space left on device")

    app = WizardApp(WizardConfig(workdir=tmp_path, mode=Mode.DEMO, intro="Story.", starting=starting))
    async with app.run_test(size=(100, 32)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("escape")  # the error box: Close
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConnectScreen)
        assert "could not start" in text_of(screen, "#key-source")
        assert "no space left on device" in text_of(screen, "#key-source")
        assert screen.query_one("#next", Button).disabled
