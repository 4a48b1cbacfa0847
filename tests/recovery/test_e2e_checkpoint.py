"""`restore --from checkpoint:<run id>`: the command the guard prints brings the data back, to the byte.

A guarded stand-in migration deletes most users over the app's direct URL (a real process, real
PostgreSQL); then the exact command the guard printed runs as a subprocess in the app directory, with
--yes. The users are compared row by row, from outside, with what main held before the migration.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from recovery_wizard.neon.models import EndpointType
from recovery_wizard.recovery import checkpoint as cp
from recovery_wizard.recovery import envfile
from recovery_wizard.recovery.journal import Journal, list_runs
from tests.recovery.conftest import CliResult, World
from tests.recovery.test_e2e_guard import ALLOW, DELETE_USERS, guard

PRINTED = re.compile(r"recovery-wizard restore --from checkpoint:\S+")


def app_direct_url(world: World) -> str:
    url = envfile.EnvFile.read(world.app / ".env").get("DIRECT_URL")
    assert url
    return url


async def users(url: str) -> list[tuple[Any, ...]]:
    """Every user row, in id order: what "exactly as they were" is compared on."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return list(await (await conn.execute('SELECT * FROM "User" ORDER BY id')).fetchall())


async def branch_url(world: World, branch_id: str) -> str:
    """A direct URL of the branch, giving it a read-only compute first if it has none (a backup has none)."""
    project = world.sandbox.project_id
    if not await world.client.endpoints(project, branch_id):
        made = await world.client.create_endpoint(project, branch_id, type=EndpointType.READ_ONLY)
        await world.client.wait_for_operations(project, made.operations)
    uri = await world.client.connection_uri(
        world.sandbox.project_id, branch_id=branch_id, database_name="neondb", role_name="neondb_owner"
    )
    return uri.reveal()


async def guarded_migration(world: World) -> tuple[list[tuple[Any, ...]], cp.Checkpoint, str]:
    """Main's users before, the checkpoint, and the restore command the guard printed."""
    before = await users(app_direct_url(world))
    (world.app / "migrate.py").write_text(DELETE_USERS)
    ran = await guard(world, *ALLOW, "--", sys.executable, "migrate.py")
    assert ran.code == 0, ran.stderr
    assert "DATA LOSS" in ran.stderr
    [made] = cp.checkpoints(world.app)
    printed = PRINTED.findall(ran.stderr)
    assert printed == [made.restore_command], ran.stderr
    assert len(await users(app_direct_url(world))) < len(before)
    return before, made, printed[0]


async def run_printed(
    world: World, printed: str, *extra: str, env: dict[str, str] | None = None
) -> CliResult:
    """The printed command as the user would paste it (plus --yes, and whatever ``extra`` adds)."""
    argv = shlex.split(printed)
    assert argv[:2] == ["recovery-wizard", "restore"]
    return await world.cli(*argv[1:], "--yes", *extra, extra_env=env)


async def test_the_printed_command_brings_the_users_back_exactly_and_repoints_the_app(world: World) -> None:
    before, made, printed = await guarded_migration(world)
    damaged = await users(app_direct_url(world))

    result = await run_printed(world, printed, "--json")

    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "done" and out["strategy"] == "new-branch"
    source = out["source"]
    assert source["kind"] == "checkpoint" and source["run_id"] == made.run_id
    assert source["mode"] == "lsn" and source["lsn"] == made.lsn
    # The app's .env now reaches a branch holding the users exactly as they were at the checkpoint.
    assert await users(app_direct_url(world)) == before
    restored = await world.client.branch(world.sandbox.project_id, out["restore_branch"]["id"])
    assert restored.parent_id == world.main.id and restored.parent_lsn == made.lsn
    assert await users(await branch_url(world, world.main.id)) == damaged, "main is not changed"
    report = Path(out["report"]).read_text()
    assert made.name in report and made.run_id in report and "migrate.py`" in report
    assert f"LSN `{made.lsn}`" in report
    assert not world.leaked(result.stdout, result.stderr, report)


async def test_in_place_restores_main_to_the_checkpoint_and_keeps_the_damage(world: World) -> None:
    before, made, printed = await guarded_migration(world)
    damaged = await users(app_direct_url(world))
    env_before = (world.app / ".env").read_bytes()

    result = await run_printed(world, printed, "--json", "--strategy", "in-place", "--name", "main-damaged")

    assert result.code == 0, result.stderr
    out = result.json()
    assert out["strategy"] == "in-place" and out["source"]["mode"] == "lsn"
    assert (world.app / ".env").read_bytes() == env_before, "in place keeps the connection strings"
    assert await users(app_direct_url(world)) == before
    backup = out["backup_branch"]
    assert backup["name"] == "main-damaged"
    assert await users(await branch_url(world, backup["id"])) == damaged
    report = Path(out["report"]).read_text()
    assert "main-damaged" in report and made.name in report


async def test_with_the_checkpoint_branch_deleted_the_lsn_in_the_window_still_brings_them_back(
    world: World,
) -> None:
    before, made, printed = await guarded_migration(world)
    deleted = await world.client.delete_branch(world.sandbox.project_id, made.id)
    if deleted is not None:
        await world.client.wait_for_operations(world.sandbox.project_id, deleted.operations)
    assert made.name not in await world.branch_names()

    plan = await run_printed(world, printed, "--dry-run")
    assert plan.code == 0, plan.stderr
    assert f"at the checkpoint's LSN {made.lsn}" in plan.stdout + plan.stderr
    assert "not needed" in plan.stdout + plan.stderr

    result = await run_printed(world, printed, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["source"]["mode"] == "lsn"
    assert await users(app_direct_url(world)) == before

    # The same command again: its branch exists, so the plan refuses before writing anything.
    names = await world.branch_names()
    again = await run_printed(world, printed)
    assert again.code == 2 and "already exists" in again.stderr and "--name" in again.stderr
    assert await world.branch_names() == names


async def test_outside_the_window_the_checkpoint_branch_itself_is_restored_from(world: World) -> None:
    before, made, printed = await guarded_migration(world)
    # The checkpoint is seconds old: a one-minute window puts it at the window's sliding edge.
    assert world.sandbox.project is not None
    world.sandbox.project.history_retention_seconds = 60

    result = await run_printed(world, printed, "--json")

    assert result.code == 0, result.stderr
    out = result.json()
    assert out["source"]["mode"] == "branch" and "outside the restore window" in out["source"]["reason"]
    restored = await world.client.branch(world.sandbox.project_id, out["restore_branch"]["id"])
    assert restored.parent_id == made.id
    assert await users(app_direct_url(world)) == before


async def test_outside_the_window_with_the_branch_gone_it_says_what_else_to_try(world: World) -> None:
    _, made, printed = await guarded_migration(world)
    deleted = await world.client.delete_branch(world.sandbox.project_id, made.id)
    if deleted is not None:
        await world.client.wait_for_operations(world.sandbox.project_id, deleted.operations)
    assert world.sandbox.project is not None
    world.sandbox.project.history_retention_seconds = 60
    names = await world.branch_names()

    result = await run_printed(world, printed)

    assert result.code == 2, result.stderr
    assert f"The checkpoint {made.name} cannot be restored" in result.stderr
    assert "outside the restore window" in result.stderr and "no longer exists" in result.stderr
    assert "--from snapshot:" in result.stderr and "backups find" in result.stderr
    assert await world.branch_names() == names, "nothing was written"


async def test_an_unknown_run_id_is_a_usage_error_naming_guard_list(world: World) -> None:
    result = await world.cli("restore", "--yes", "--from", "checkpoint:20261201T000000Z-nope")
    assert result.code == 2, result.stderr
    assert "no guard run '20261201T000000Z-nope'" in result.stderr and "guard list" in result.stderr

    latest = await world.cli("restore", "--yes", "--from", "checkpoint:latest")
    assert latest.code == 2 and "No guard checkpoint was made" in latest.stderr


async def test_checkpoint_latest_and_a_mismatched_branch(world: World) -> None:
    before, made, _ = await guarded_migration(world)

    other = await world.cli("restore", "--yes", "--from", "checkpoint:latest", "--branch", "dev")
    assert other.code == 2 and f"is of the branch 'main' ({world.main.id}), not 'dev'" in other.stderr
    at = await world.cli("restore", "--yes", "--from", "checkpoint:latest", "--at", "1h ago")
    assert at.code == 2 and "--at" in at.stderr

    result = await world.cli("restore", "--yes", "--json", "--from", "checkpoint:latest")
    assert result.code == 0, result.stderr
    assert result.json()["source"]["run_id"] == made.run_id
    assert await users(app_direct_url(world)) == before


@pytest.mark.parametrize(
    ("variable", "point"),
    [("RECOVERY_WIZARD_CRASH_AT", "begin:restore"), ("RECOVERY_WIZARD_CRASH_BEFORE", "done:restore")],
)
async def test_killed_during_the_restore_resumes_and_adopts_its_branch_once(
    world: World, variable: str, point: str
) -> None:
    before, _, printed = await guarded_migration(world)

    killed = await run_printed(world, printed, "--name", "from-checkpoint", env={variable: point})
    assert killed.code == -9, killed.stderr
    resumed = await world.cli("restore", "--yes", "--json", "--resume")

    assert resumed.code == 0, resumed.stderr
    assert (await world.branch_names()).count("from-checkpoint") == 1
    assert resumed.json()["source"]["kind"] == "checkpoint"
    assert await users(app_direct_url(world)) == before


async def test_a_branch_named_like_the_restore_but_not_this_runs_is_not_adopted(world: World) -> None:
    _, _, printed = await guarded_migration(world)
    killed = await run_printed(
        world, printed, "--name", "from-checkpoint", env={"RECOVERY_WIZARD_CRASH_AT": "begin:restore"}
    )
    assert killed.code == -9
    # Someone makes a branch with that name (at main's head, unmarked) before the resume.
    await world.client.create_branch(
        world.sandbox.project_id, parent_id=world.main.id, name="from-checkpoint"
    )

    resumed = await world.cli("restore", "--yes", "--resume")

    assert resumed.code == 1, resumed.stderr
    assert "cannot prove it made it" in resumed.stderr and "no recovery-wizard run marker" in resumed.stderr


async def test_a_history_plan_names_the_checkpoint_near_its_moment(world: World) -> None:
    from datetime import timedelta

    _, made, _ = await guarded_migration(world)
    assert made.at is not None
    # Half a minute before the checkpoint: a moment a person might guess for "before the migration".
    moment = (made.at - timedelta(seconds=30)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    plan = await world.cli("restore", "--yes", "--dry-run", "--at", moment)

    assert plan.code == 0, plan.stderr
    text = plan.stdout + plan.stderr
    assert "A guard checkpoint was made" in text and made.restore_command in text


def test_the_journal_of_a_checkpoint_restore_rebuilds_its_source(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from recovery_wizard.recovery.sources import source_from_dict
    from recovery_wizard.recovery.sources.checkpoint import CheckpointSource

    source = CheckpointSource(
        run_id="20261201T150846Z-ae1718",
        name="guard-20261201T150846Z-ae1718",
        id="br-a-1",
        lsn="0/1F3A5C8",
        at=datetime(2026, 12, 1, 15, 8, 46, 120000, tzinfo=UTC),
        command="npx prisma migrate deploy",
        guarded_id="br-main-1",
        guarded_name="main",
        mode="lsn",
        reason="Its LSN is inside the restore window.",
        exit_code=0,
        asked_as="latest",
    )
    journal = Journal.create(tmp_path)
    journal.append("run", "start", command="restore", plan={"source": source.to_dict()})
    [run] = list_runs(tmp_path)
    recorded = Journal.open(run).start
    assert recorded is not None
    assert source_from_dict(recorded.data["plan"]["source"]) == source


async def test_in_place_past_the_window_restores_from_the_checkpoint_branch_then_again(world: World) -> None:
    before, _, printed = await guarded_migration(world)
    assert world.sandbox.project is not None
    world.sandbox.project.history_retention_seconds = 60

    first = await run_printed(world, printed, "--json", "--strategy", "in-place", "--name", "main-damaged")

    assert first.code == 0, first.stderr
    assert first.json()["source"]["mode"] == "branch"
    assert await users(app_direct_url(world)) == before
    # Main was restored in place after the checkpoint: its history since is another timeline, so a second
    # restore from the same checkpoint (window wide again) comes from the checkpoint branch, not the LSN.
    world.sandbox.project.history_retention_seconds = 7 * 24 * 3600
    again = await run_printed(world, printed, "--json", "--name", "main-again")
    assert again.code == 0, again.stderr
    source = again.json()["source"]
    assert source["mode"] == "branch" and "restored in place since" in source["reason"]
    assert await users(app_direct_url(world)) == before


async def test_a_snapshot_checkpoint_is_restored_as_its_snapshot(world: World) -> None:
    before = await users(app_direct_url(world))
    (world.app / "migrate.py").write_text(DELETE_USERS)
    ran = await guard(world, *ALLOW, "--checkpoint", "snapshot", "--", sys.executable, "migrate.py")
    assert ran.code == 0, ran.stderr
    [printed] = PRINTED.findall(ran.stderr)
    [made] = cp.checkpoints(world.app)
    assert made.kind == "snapshot"

    result = await run_printed(world, printed, "--json")

    assert result.code == 0, result.stderr
    out = result.json()
    assert out["source"]["kind"] == "checkpoint" and out["source"]["checkpoint_kind"] == "snapshot"
    assert out["source"]["id"] == made.id
    restored = await world.client.branch(world.sandbox.project_id, out["restore_branch"]["id"])
    assert restored.restored_from == made.id
    assert await users(app_direct_url(world)) == before
    report = Path(out["report"]).read_text()
    assert made.run_id in report and "migrate.py`" in report


async def test_a_drill_rehearses_the_checkpoint_and_leaves_nothing(world: World) -> None:
    _, made, _ = await guarded_migration(world)
    names = await world.branch_names()

    drill = await world.cli("drill", "--yes", "--json", "--from", f"checkpoint:{made.run_id}")

    assert drill.code == 0, drill.stderr
    out = drill.json()
    assert out["status"] == "done" and out["deleted"] and out["source"]["mode"] == "lsn"
    assert await world.branch_names() == names


@pytest.mark.parametrize("fault", ["POST /projects/*/branches=500", "POST /projects/*/branches=drop"])
async def test_a_lost_answer_to_the_restore_branch_is_reconciled_never_repeated(
    world: World, fault: str
) -> None:
    from recovery_wizard.sandbox.faults import parse_fault

    before, _, printed = await guarded_migration(world)
    assert world.sandbox.app is not None
    world.sandbox.app.faults[:] = [parse_fault(fault)]

    result = await run_printed(world, printed, "--json", "--name", "from-checkpoint")
    world.sandbox.app.faults.clear()

    assert result.code == 0, result.stderr
    assert (await world.branch_names()).count("from-checkpoint") == 1
    assert "answer was lost" in result.stderr
    assert await users(app_direct_url(world)) == before


def test_a_run_that_made_no_checkpoint_is_named_as_such(tmp_path: Path) -> None:
    from recovery_wizard.recovery.outcome import UsageError
    from recovery_wizard.recovery.sources.checkpoint import read_checkpoint

    journal = Journal.create(tmp_path)
    journal.append("run", "start", command="restore", plan={})

    with pytest.raises(UsageError, match="made no checkpoint to restore") as caught:
        read_checkpoint(tmp_path, journal.run_id)
    assert "guard list" in caught.value.hint
    with pytest.raises(UsageError, match=r"no guard run 'x/\.\./y'"):
        read_checkpoint(tmp_path, "x/../y")


def test_another_project_or_branch_than_the_checkpoints_is_refused(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from recovery_wizard.recovery.outcome import UsageError
    from recovery_wizard.recovery.plan import RunOptions
    from recovery_wizard.recovery.sources.checkpoint import scoped_options

    made = cp.Checkpoint(
        run_id="r1",
        kind="branch",
        name="guard-r1",
        id="br-ck-1",
        lsn="0/1F3A5C8",
        at=datetime(2026, 12, 1, tzinfo=UTC),
        command="npx prisma migrate deploy",
        project_id="proj-a",
        branch_id="br-main-1",
        branch_name="main",
        expires_at=None,
        begun_at=datetime(2026, 12, 1, tzinfo=UTC),
        exit_code=0,
        lost=("User",),
        pruned=False,
    )
    options = RunOptions(command="restore", workdir=tmp_path, source="checkpoint:r1")
    scoped = scoped_options(options, made)
    assert (scoped.project_id, scoped.branch) == ("proj-a", "br-main-1")
    assert scoped_options(RunOptions("restore", tmp_path, project_id="proj-a", branch="main"), made)
    with pytest.raises(UsageError, match="is of project proj-a") as caught:
        scoped_options(RunOptions("restore", tmp_path, project_id="proj-b"), made)
    assert "NEON_PROJECT_ID=proj-a" in caught.value.hint
    with pytest.raises(UsageError, match="not 'dev'"):
        scoped_options(RunOptions("restore", tmp_path, branch="dev"), made)
