"""Faults: a kill inside the merge's transaction, two merges at once, a merge resumed after it committed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from recovery_wizard.recovery import merge
from tests.merge.conftest import Pair

ROOT = Path(__file__).resolve().parents[2]


def _child(pair: Pair, run_id: str, hold: bool) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "MERGE_PAST": pair.server.dsn(pair.past_db),
        "MERGE_LIVE": pair.server.dsn(pair.live_db),
        "MERGE_HOLD": "1" if hold else "",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.merge.merge_child", run_id],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_kill_just_before_commit_applies_nothing_and_a_rerun_applies_once(homecheff: Pair) -> None:
    child = _child(homecheff, "run-kill", hold=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY", child.stderr.read() if child.stderr else ""
        # Inside the transaction every row is written; from outside, none is visible yet.
        assert homecheff.live_sql('SELECT count(*) FROM "User"') == [(5,)]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    # PostgreSQL rolled the transaction back when the connection died: nothing half-applied, no ledger row.
    deadline = time.monotonic() + 60  # the server notices the dead connection at once; a loaded one, later
    while time.monotonic() < deadline:
        busy = homecheff.live_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'recovery-wizard merge%%' AND datname = current_database()"
        )
        if busy == [(0,)]:
            break
        time.sleep(0.1)
    assert homecheff.live_sql('SELECT count(*) FROM "User"') == [(5,)]
    assert homecheff.live_sql("SELECT count(*) FROM profile") == [(5,)]
    assert asyncio.run(merge.merged(homecheff.live, "run-kill")) is None
    # The re-run applies the merge, once.
    rerun = _child(homecheff, "run-kill", hold=False)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert out.split("DONE", 1)[1].split()[1] == "False", out
    assert homecheff.live_sql('SELECT count(*) FROM "User"') == [(24,)]
    again = _child(homecheff, "run-kill", hold=False)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "True" in out.split("DONE", 1)[1]  # already applied: the ledger said so
    assert homecheff.live_sql('SELECT count(*) FROM "User"') == [(24,)]


async def test_two_merges_of_one_run_at_once_apply_once(homecheff: Pair) -> None:
    plan = await merge.plan_merge(homecheff.past, homecheff.live)
    first, second = await asyncio.gather(
        merge.apply_merge(homecheff.live, plan, "run-twice"),
        merge.apply_merge(homecheff.live, plan, "run-twice"),
    )
    assert sorted([first.already_applied, second.already_applied]) == [False, True]
    assert homecheff.live_sql('SELECT count(*) FROM "User"') == [(24,)]


async def test_a_serializable_write_during_the_merge_is_retried_never_half_applied(homecheff: Pair) -> None:
    import psycopg

    plan = await merge.plan_merge(homecheff.past, homecheff.live)
    app_committed: list[bool] = []

    async def the_app_writes() -> None:
        # The app, in SERIALIZABLE too: it reads what the merge writes and writes what the merge read.
        if app_committed:
            return  # the retry runs undisturbed
        async with await psycopg.AsyncConnection.connect(homecheff.server.dsn(homecheff.live_db)) as app:
            try:
                await app.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
                await app.execute("SELECT count(*) FROM profile")
                await app.execute("INSERT INTO \"User\" (email, name) VALUES ('during@example.nl', 'During')")
                await app.execute("COMMIT")
                app_committed.append(True)
            except psycopg.errors.SerializationFailure:
                await app.rollback()
                app_committed.append(False)

    result = await merge.apply_merge(homecheff.live, plan, "run-ssi", before_commit=the_app_writes)
    # The app committed first, so PostgreSQL failed the merge's COMMIT; the merge ran again, whole.
    assert app_committed == [True] and result.attempts == 2
    assert homecheff.live_sql("SELECT count(*) FROM \"User\" WHERE email = 'during@example.nl'") == [(1,)]
    assert (await merge.verify_merge(homecheff.live, plan)).ok
    assert homecheff.live_sql('SELECT count(*) FROM "User"') == [(24 + app_committed.count(True),)]
    assert homecheff.live_sql(
        "SELECT count(*) FROM recovery_wizard.merge_ledger WHERE run_id = 'run-ssi'"
    ) == [(1,)]
