"""Snapshot tests run the real wizard with a frozen clock and without its workers (no network, no database).

The screens start their work on mount (connect, plan, restore, verify…). Here that work is replaced by a
no-op and each test draws the state it wants through the screen's own methods, so a snapshot shows exactly
one state, the same on every run.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from types import SimpleNamespace
from typing import Self

import pytest

from recovery_wizard.tui.app import WizardApp
from recovery_wizard.tui.screens import backup_files, choices, sources, steps
from tests.tui_snapshots.scenes import CLOCK, NOW

# Every WizardApp method a screen calls that starts a worker doing I/O: on mount (most), or on a press
# (find_moment, peek, load_timeline) in case a test presses one. A renamed one fails here, loudly.
WORKERS = (
    "connect",
    "find_moment",
    "peek",
    "load_timeline",
    "load_snapshots",
    "make_plan",
    "run_restore",
    "run_verify",
    "run_env",
    "run_prisma",
    "run_cleanup",
    "finish",
    "load_backups",
    "check_backup_path",
    "load_whereis",
    "load_lost",
    "load_merge_plan",
)


class FrozenDatetime(datetime):
    """``datetime`` whose ``now()`` is always NOW: the moment screen checks typed moments against it."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Self:
        return cls.fromtimestamp(NOW.timestamp(), tz)


def _no_work(self: WizardApp, *args: object) -> None:
    """Stands in for a worker-starting method: the test draws the outcome itself."""


@pytest.fixture(autouse=True)
def frozen_wizard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(choices, "datetime", FrozenDatetime)
    monkeypatch.setattr(sources, "datetime", FrozenDatetime)
    monkeypatch.setattr(backup_files, "datetime", FrozenDatetime)
    # Only the steps module's view of time: asyncio (and so Textual's timers) must keep the real clock.
    monkeypatch.setattr(steps, "time", SimpleNamespace(monotonic=lambda: CLOCK))
    for name in WORKERS:
        monkeypatch.setattr(WizardApp, name, _no_work)


# Whether this run left collected tests out (-k, -m, --deselect, --lf): tests/tui_snapshots/test_no_stale_snapshots.py
# cannot tell a stale snapshot from one whose test was left out, so it does not judge then.
DESELECTED: list[pytest.Item] = []


def pytest_deselected(items: list[pytest.Item]) -> None:
    DESELECTED.extend(items)
