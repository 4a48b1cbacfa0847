"""The proofs a run needs before adopting or deleting a branch, one fact at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recovery_wizard.neon import NeonClient
from recovery_wizard.neon.errors import NeonError
from recovery_wizard.neon.models import Branch
from recovery_wizard.plain.prompts import ScriptPrompter
from recovery_wizard.recovery import ownership
from recovery_wizard.recovery import peek as peek_module
from recovery_wizard.recovery import runner as runner_module
from recovery_wizard.recovery.outcome import StepFailedError
from recovery_wizard.recovery.plan import resolve_plan
from recovery_wizard.recovery.runner import Runner, begin_run
from recovery_wizard.sandbox.faults import parse_fault
from recovery_wizard.sandbox.service import Sandbox
from tests.recovery.test_findmoment import CANARY, incident
from tests.recovery.test_findmoment import served as served
from tests.recovery.test_runner import Recorder, options
from tests.recovery.test_runner import client as client

BEGUN = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
MOMENT = datetime(2026, 11, 21, 1, 29, 59, 123000, tzinfo=UTC)


def branch(**fields: object) -> Branch:
    base: dict[str, object] = {
        "id": "br-ours-1",
        "project_id": "p",
        "name": "main-restore",
        "current_state": "ready",
        "parent_id": "br-main",
        "parent_timestamp": MOMENT,
        "created_at": BEGUN + timedelta(seconds=2),
    }
    return Branch(**{**base, **fields})  # type: ignore[arg-type]


def reasons(b: Branch, annotation: dict[str, str] | None = None) -> list[str]:
    return ownership.why_not_ours(
        b,
        ownership.marker("run-1") if annotation is None else annotation,
        run_id="run-1",
        parent_id="br-main",
        moment=MOMENT,
        begun_at=BEGUN,
    )


def test_a_branch_the_run_made_is_proven() -> None:
    assert reasons(branch()) == []


def test_each_missing_fact_is_named() -> None:
    assert reasons(branch(), {}) == ["it carries no recovery-wizard run marker"]
    assert "another recovery-wizard run (run-2)" in reasons(branch(), ownership.marker("run-2"))[0]
    assert "its parent is br-other" in reasons(branch(parent_id="br-other"))[0]
    assert "not at the restore point" in reasons(branch(parent_timestamp=MOMENT + timedelta(seconds=2)))[0]
    assert reasons(branch(created_at=BEGUN - timedelta(hours=1))) == ["it was created before this run began"]
    assert reasons(branch(default=True)) == ["it is the project's default branch"]
    assert reasons(branch(protected=True)) == ["it is the project's protected branch"]


def test_a_backup_is_proven_by_the_restore_not_by_its_name() -> None:
    target = branch(id="br-main", name="main", parent_id=None, last_reset_at=BEGUN + timedelta(seconds=3))
    backup = branch(id="br-bak", name="main_old", parent_id=None, parent_timestamp=None)
    assert ownership.why_not_our_backup(backup, target, begun_at=BEGUN) == []
    not_restored = branch(id="br-main", name="main", parent_id=None, last_reset_at=None)
    copy = branch(id="br-copy", name="main_old", parent_id="br-main")
    found = ownership.why_not_our_backup(copy, not_restored, begun_at=BEGUN)
    assert found == [
        "main has not been restored since this run began",
        "it is a branch made from main (a copy), not the backup Neon keeps",
    ]


def test_env_files_pointing_at_a_branch(tmp_path: Path) -> None:
    (tmp_path / "prisma").mkdir()
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://u:p@ep-cool-1234-pooler.eu.neon.tech/db\n")
    (tmp_path / ".env.local").write_text("DIRECT_URL=postgresql://u:p@127.0.0.1:54321/db\n")
    (tmp_path / "prisma" / ".env").write_text("X=ep-cool-12\n")
    files = ownership.env_files_of(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in files} == {".env", ".env.local", "prisma/.env"}
    assert ownership.env_files_pointing_at(files, ["ep-cool-1234"]) == [tmp_path / ".env"]
    assert ownership.env_files_pointing_at(files, ["ep-cool-123"]) == []  # ids end where they end
    assert ownership.env_files_pointing_at(files, ["127.0.0.1:5432"]) == []
    assert ownership.env_files_pointing_at(files, ["127.0.0.1:54321"]) == [tmp_path / ".env.local"]


async def test_a_peek_never_deletes_a_branch_that_only_has_its_name(
    served: tuple[Sandbox, NeonClient, Branch], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, client, main = served
    monkeypatch.setattr("recovery_wizard.recovery.peek.secrets.token_hex", lambda n: "ab" * n)
    moment = incident(sandbox) - timedelta(seconds=1)
    name = f"peek-{main.name}-{moment:%Y%m%dT%H%M%S}-abab"
    # Someone's branch with the very name the peek will ask for; then the peek's create answer is lost.
    theirs = await client.create_branch(sandbox.project_id, parent_id=main.id, name=name, endpoints=[])
    sandbox.app.faults.append(parse_fault("POST /projects/*/branches=500:when=before"))
    lens = peek_module.Lens(client, sandbox.project_id, main, "neondb", "neondb_owner", time_travel=False)
    with pytest.raises(NeonError):
        await peek_module.peek(lens, moment, CANARY)
    sandbox.app.faults.clear()
    assert theirs.branch.id in {b.id for b in await client.branches(sandbox.project_id)}


async def _planned(client: NeonClient, tmp_path: Path, **kwargs: object) -> Runner:
    """A runner whose plan is resolved and whose journal has begun (as `run` leaves them)."""
    prompter, reporter = ScriptPrompter(assume_yes=True), Recorder()
    opts = options(tmp_path, **kwargs)
    plan = await resolve_plan(client, opts, prompter, reporter)
    return Runner(client, plan, begin_run(opts, plan), prompter, reporter, yes=True)


async def test_a_lost_create_answer_never_adopts_someone_elses_branch_of_that_name(
    sandbox: Sandbox, client: NeonClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "RECONCILE_PAUSE", 0.01)
    runner = await _planned(client, tmp_path)
    plan = runner.plan
    # After planning, someone makes the very branch the plan names: same parent, same moment.
    theirs = await client.create_branch(
        sandbox.project_id, parent_id=plan.branch.id, name=plan.name, parent_timestamp=plan.moment.utc
    )
    await client.wait_for_operations(sandbox.project_id, theirs.operations)
    # The run's create never reaches Neon, and its answer is lost: the name now points at their branch.
    sandbox.app.faults.append(parse_fault("POST /projects/*/branches=500:when=before"))
    with pytest.raises(
        StepFailedError, match="cannot prove it made it: it carries no recovery-wizard run marker"
    ):
        await runner.restore_new_branch()
    assert runner.result.restore_branch is None
    assert runner.journal.done("restore") is None


async def test_a_lost_in_place_answer_never_takes_a_copy_for_the_backup(
    sandbox: Sandbox, client: NeonClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "RECONCILE_PAUSE", 0.01)
    runner = await _planned(client, tmp_path, strategy="in-place")
    plan = runner.plan
    copy = await client.create_branch(sandbox.project_id, parent_id=plan.branch.id, name=plan.name)
    await client.wait_for_operations(sandbox.project_id, copy.operations)
    sandbox.app.faults.append(parse_fault("POST /projects/*/branches/*/restore=500:when=before"))
    with pytest.raises(StepFailedError, match="main has not been restored since this run began"):
        await runner.restore_in_place()
    assert runner.result.backup_branch is None
    assert runner.journal.done("restore") is None
