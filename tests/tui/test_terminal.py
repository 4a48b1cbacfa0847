"""The demo in a real terminal (tmux): a closed terminal (SIGHUP) must leave nothing behind.

The demo runs as a real process in a tmux pane, as a person would start it; closing the tmux session sends
SIGHUP to it, as closing a terminal window or losing an SSH connection does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from recovery_wizard.recovery import envfile

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def poll(
    predicate: Callable[[], bool], what: str, timeout: float, seen: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{seen()}")
        time.sleep(0.2)


async def database_of(url: str) -> str:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (await conn.execute("SELECT current_database()")).fetchone()
    assert row is not None
    return str(row[0])


def databases_like(admin_dsn: str, prefix: str) -> list[str]:
    with psycopg.connect(admin_dsn) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix.replace("_", r"\_") + "%",)
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_closing_the_terminal_of_a_demo_drops_its_sandbox_and_removes_its_app_dir(tmp_path: Path) -> None:
    admin_dsn = os.environ.get("RECOVERY_WIZARD_TEST_PG_DSN")
    if not admin_dsn:
        pytest.skip("needs RECOVERY_WIZARD_TEST_PG_DSN (to see the sandbox's databases)")
    session = f"rw-demo-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RECOVERY_WIZARD_PG_DSN": admin_dsn, "TMPDIR": str(tmp_path)}
    command = f"{sys.executable} -m recovery_wizard demo"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "110", "-y", "32", command],
        check=True,
        env=env,
    )
    try:
        poll(lambda: "Begin" in tmux("capture-pane", "-p", "-t", session), "the demo's first screen", 60)
        [app_dir] = list(tmp_path.glob("homecheff-demo-*"))
        direct = envfile.EnvFile.read(app_dir / ".env").get("DIRECT_URL")
        assert direct is not None
        database = asyncio.run(database_of(direct))
        prefix = "_".join(database.split("_")[:2])  # rwsb_<hex>: every database of this sandbox
        assert prefix.startswith("rwsb_") and databases_like(admin_dsn, prefix)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)  # SIGHUP, as a closed terminal
    # Generous: dropping a sandbox's databases on a busy shared server can take a while.
    poll(lambda: not databases_like(admin_dsn, prefix), "the sandbox's databases to be dropped", 120)
    poll(lambda: not app_dir.exists(), "the demo's app directory to be removed", 30)


def test_the_terminal_keeps_the_wizards_summary_after_it_closes(tmp_path: Path) -> None:
    admin_dsn = os.environ.get("RECOVERY_WIZARD_TEST_PG_DSN")
    if not admin_dsn:
        pytest.skip("needs RECOVERY_WIZARD_TEST_PG_DSN")
    session = f"rw-demo-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RECOVERY_WIZARD_PG_DSN": admin_dsn, "TMPDIR": str(tmp_path)}
    # The pane outlives the process (remain-on-exit), so what it printed last stays readable.
    command = f"{sys.executable} -m recovery_wizard demo; echo exit=$?; sleep 30"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "110", "-y", "32", command], check=True, env=env
    )
    try:
        poll(lambda: "Begin" in tmux("capture-pane", "-p", "-t", session), "the demo's first screen", 60)
        tmux("send-keys", "-t", session, "C-q")
        poll(lambda: "exit=" in tmux("capture-pane", "-p", "-t", session), "the demo to exit", 30)
        screen = tmux("capture-pane", "-p", "-t", session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert "recovery-wizard: nothing was changed." in screen
    assert "exit=0" in screen


def test_a_closed_terminal_mid_run_takes_the_interrupt_path(tmp_path: Path) -> None:
    """SIGHUP while the restore branch is made: the journal ends "interrupted", the record is written and
    names the resume command; the sandbox is dropped (the app directory is kept with --keep-app)."""
    admin_dsn = os.environ.get("RECOVERY_WIZARD_TEST_PG_DSN")
    if not admin_dsn:
        pytest.skip("needs RECOVERY_WIZARD_TEST_PG_DSN")
    session = f"rw-demo-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RECOVERY_WIZARD_PG_DSN": admin_dsn, "TMPDIR": str(tmp_path)}
    command = f"{sys.executable} -m recovery_wizard demo --keep-app"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "110", "-y", "32", command], check=True, env=env
    )

    pane = [""]

    def shows(text: str) -> Callable[[], bool]:
        def check() -> bool:
            pane[0] = tmux("capture-pane", "-p", "-t", session)
            return text in pane[0]

        return check

    def step(wait_for: str, what: str, *keys: str) -> None:
        poll(shows(wait_for), what, 60, lambda: pane[0])
        time.sleep(0.6)  # a person reads before pressing (and decisive buttons take a new press)
        if keys:
            tmux("send-keys", "-t", session, *keys)

    try:
        step("Begin", "the demo's first screen", "Enter")
        step("Which branch was damaged?", "the branch screen", "Enter")
        step("Where should the data come from?", "the source screen", "Enter")
        step("Restore to which moment?", "the moment screen", "-l", "35 minutes ago")
        step("→ ", "the moment to be read", "Enter")
        step("How should the data come back?", "the strategy screen", "Tab", "Tab", "Enter")
        step("Create the restore branch", "the plan", "Enter")
        step("Restoring", "the restore to start")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)  # SIGHUP
    [app_dir] = list(tmp_path.glob("homecheff-demo-*"))
    runs = app_dir / ".recovery-wizard" / "runs"
    poll(lambda: any(runs.glob("*/report.md")), "the incident record", 60, lambda: pane[0])
    [run_dir] = list(runs.iterdir())
    from recovery_wizard.recovery.journal import Journal

    journal = Journal.open(run_dir)
    assert journal.status == "interrupted" and journal.resumable
    report = (run_dir / "report.md").read_text()
    assert "Interrupted by SIGHUP" in report
    assert f"recovery-wizard restore --resume {run_dir.name}" in report
