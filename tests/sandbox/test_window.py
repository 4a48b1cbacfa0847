"""A shrunk restore window (`Sandbox(history_seconds=…)`, `sandbox serve --history 10m`): the incident falls
outside it, so Neon's history refuses the moment before it while snapshots still bring the users back."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from recovery_wizard.neon import NeonClient, NeonHTTPError
from recovery_wizard.sandbox.engine import rfc3339
from recovery_wizard.sandbox.pgserver import PgServer
from recovery_wizard.sandbox.service import Sandbox
from tests.sandbox.conftest import SpecChecker, in_process_http, neon_client
from tests.sandbox.test_serve_cli import read_lines, start_serve, stop
from tests.sandbox.test_snapshots import Api, users_on, wait


@pytest.fixture
async def shrunk(pg_server: PgServer) -> AsyncIterator[tuple[Sandbox, Api, NeonClient, SpecChecker]]:
    async with Sandbox(
        pg_dsn=pg_server.admin_dsn.reveal(), operation_seconds=0.05, seed=1, history_seconds=600
    ) as sandbox:
        checker = SpecChecker()
        async with in_process_http(sandbox, checker) as http:
            yield sandbox, Api(sandbox, http), neon_client(sandbox, http), checker


async def test_the_moment_before_the_incident_is_refused_and_snapshots_remain(
    shrunk: tuple[Sandbox, Api, NeonClient, SpecChecker],
) -> None:
    sandbox, api, client, checker = shrunk
    assert sandbox.project is not None and sandbox.project.scenario is not None
    scenario = sandbox.project.scenario
    project = await client.project(sandbox.project_id)
    assert project.history_retention_seconds == 600
    assert "restore window is only 10 minutes" in scenario.description
    main = next(b for b in await client.branches(sandbox.project_id) if b.default)
    before = await client.branches(sandbox.project_id)

    just_before = scenario.incident_at - timedelta(seconds=1)
    body = {"branch": {"parent_id": main.id, "parent_timestamp": rfc3339(just_before)}}
    await api.refused("POST", "/branches", 400, "outside the history retention period", body=body)
    # The project's client maps it to a refusal carrying the status and Neon's words, nothing made.
    with pytest.raises(NeonHTTPError) as refused:
        await client.create_branch(sandbox.project_id, parent_id=main.id, parent_timestamp=just_before)
    assert refused.value.status == 400
    assert "earliest restorable moment" in refused.value.neon_message
    restore = {
        "source_branch_id": main.id,
        "source_timestamp": rfc3339(just_before),
        "preserve_under_name": "x",
    }
    await api.refused(
        "POST", f"/branches/{main.id}/restore", 400, "outside the history retention", body=restore
    )
    taken = {"name": "too old", "timestamp": rfc3339(just_before)}
    await api.refused("POST", f"/branches/{main.id}/snapshot", 400, "outside the history", params=taken)
    assert [b.id for b in await client.branches(sandbox.project_id)] == [b.id for b in before]

    # Inside the window all is as before: a branch five minutes ago holds the damaged data.
    inside = await client.create_branch(
        sandbox.project_id, parent_id=main.id, parent_timestamp=datetime.now(UTC) - timedelta(minutes=5)
    )
    await client.wait_for_operations(sandbox.project_id, inside.operations)
    assert await users_on(client, sandbox.project_id, inside.branch.id) == 3  # 2 admins + a re-signup

    # The manual snapshot from the evening before is older than the window and restores all the same.
    snapshots = (await api.call("GET", "/snapshots"))["snapshots"]
    manual = next(s for s in snapshots if s["name"] == "before release")
    assert datetime.fromisoformat(manual["created_at"]) < datetime.now(UTC) - timedelta(seconds=600)
    restored = await api.call("POST", f"/snapshots/{manual['id']}/restore", body={"name": "from-snapshot"})
    await wait(client, sandbox.project_id, restored["operations"])
    assert await users_on(client, sandbox.project_id, restored["branch"]["id"]) >= 10
    assert checker.checked > 0 or not checker.enabled


async def test_window_bounds_are_neons() -> None:
    for wrong in (-1, 30 * 24 * 3600 + 1):
        with pytest.raises(ValueError, match="between 0 and 2592000"):
            Sandbox(history_seconds=wrong)


def test_serve_with_a_short_window_and_a_backups_folder(pg_server: PgServer, tmp_path: Path) -> None:
    app = tmp_path / "app"
    proc = start_serve(
        "--pg-dsn", pg_server.admin_dsn.reveal(), "--history", "10m", "--backups-into", str(app)
    )
    try:
        env = read_lines(proc)
        # The folder is complete once the four lines are out.
        assert len(list((app / "backups").glob("main-*.dump"))) == 6
        assert len(list((app / "backups").glob("main-*.dump.manifest.json"))) == 6
        assert len(list((app / "backups" / "cron").glob("backup-*.json"))) == 3
        assert len(list((app / "Downloads").glob("*.sql"))) == 1
        headers = {"Authorization": f"Bearer {env['NEON_API_KEY']}"}
        url = f"{env['NEON_API_URL']}/projects/{env['NEON_PROJECT_ID']}"
        project = httpx.get(url, headers=headers, timeout=10).json()["project"]
        assert project["history_retention_seconds"] == 600
        code, err = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert code == 0, err
    assert "the restore window is 600 s, so the incident is outside it" in err
    assert re.search(r"wrote 10 backups into \S+ in \d+\.\d\d s", err), err
    assert env["NEON_API_KEY"] not in err


@pytest.mark.parametrize(
    ("value", "words"),
    [("abc", "as a duration"), ("31d", "at most 30 days"), ("-5m", "as a duration")],
)
def test_serve_refuses_a_window_neon_would_not_have(value: str, words: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "recovery_wizard", "sandbox", "serve", "--history", value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert words in done.stderr
    assert "--history" in done.stderr
