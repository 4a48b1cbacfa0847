"""How a run ends once it has written: every failure and every cancellation on one path (in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from recovery_wizard.neon import NeonClient
from recovery_wizard.plain.prompts import ScriptPrompter
from recovery_wizard.recovery.journal import Journal
from recovery_wizard.recovery.outcome import EXIT_CANCELLED, EXIT_STEP_FAILED, StepFailedError
from recovery_wizard.recovery.plan import RunOptions
from recovery_wizard.recovery.runner import run
from recovery_wizard.sandbox.faults import parse_fault
from recovery_wizard.sandbox.service import Sandbox
from tests.recovery.conftest import write_app
from tests.recovery.test_runner import Recorder
from tests.sandbox.conftest import in_process_http, neon_client


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[NeonClient]:
    async with in_process_http(sandbox) as http:
        yield neon_client(sandbox, http)


async def _app(sandbox: Sandbox, client: NeonClient, root: Path) -> Path:
    main = next(b for b in await client.branches(sandbox.project_id) if b.default)
    params = {"branch_id": main.id, "database_name": "neondb", "role_name": "neondb_owner"}
    pooled = await client.connection_uri(sandbox.project_id, pooled=True, **params)
    direct = await client.connection_uri(sandbox.project_id, pooled=False, **params)
    app = root / "app"
    app.mkdir()
    write_app(app, pooled.reveal(), direct.reveal())
    return app


def _options(app: Path) -> RunOptions:
    return RunOptions(command="restore", workdir=app, at="35 minutes ago", yes=True, prisma=False)


async def test_a_file_error_after_the_branch_exists_is_a_resumable_failure(
    sandbox: Sandbox, client: NeonClient, tmp_path: Path
) -> None:
    app = await _app(sandbox, client, tmp_path)

    def block_backups(journal: Journal) -> None:
        # Where the env step will put its backup, a file: the backup cannot be written (any OSError).
        (journal.run_dir / "env-backups").write_text("in the way")

    result = await run(
        client, _options(app), ScriptPrompter(assume_yes=True), Recorder(), on_journal=block_backups
    )
    assert result.status == "failed"
    assert isinstance(result.error, StepFailedError) and result.error.step == "env"
    assert result.error.exit_code == EXIT_STEP_FAILED
    assert f"recovery-wizard restore --resume {result.journal.run_id}" in result.error.hint
    assert "re-run" not in result.error.hint
    assert result.restore_branch is not None and result.to_dict()["restore_branch"] is not None
    assert result.report_path is not None and result.report_path.is_file()
    assert Journal.open(result.journal.run_dir).status == "failed"

    (result.journal.run_dir / "env-backups").unlink()
    resumed = await run(
        client,
        _options(app),
        ScriptPrompter(assume_yes=True),
        Recorder(),
        resume=Journal.open(result.journal.run_dir),
    )
    assert resumed.status == "done", resumed.error
    assert resumed.restore_branch is not None and resumed.restore_branch.id == result.restore_branch.id


async def test_a_cancelled_run_ends_interrupted_with_its_record(
    sandbox: Sandbox, client: NeonClient, tmp_path: Path
) -> None:
    app = await _app(sandbox, client, tmp_path)
    sandbox.app.faults.append(parse_fault("GET /projects/*/operations/*=stall:seconds=30"))
    journals: list[Journal] = []
    task = asyncio.create_task(
        run(client, _options(app), ScriptPrompter(assume_yes=True), Recorder(), on_journal=journals.append)
    )
    while not (journals and journals[0].last("restore", "begin")):
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    task.cancel(msg="SIGTERM")
    result = await task
    sandbox.app.faults.clear()
    assert result.status == "interrupted"
    assert result.error is not None and result.error.exit_code == EXIT_CANCELLED
    assert "SIGTERM" in str(result.error) and "'restore'" in str(result.error)
    assert f"recovery-wizard restore --resume {result.journal.run_id}" in result.error.hint
    journal = Journal.open(result.journal.run_dir)
    assert journal.status == "interrupted" and journal.resumable
    assert result.report_path is not None and "status **interrupted**" in result.report_path.read_text()
