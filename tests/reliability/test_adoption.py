"""A resumed run adopts, and a drill deletes, only a branch it can prove it made (not one that has its name).

Real CLI subprocesses against the sandbox. The two scenarios of "reconciliation trusts a name":

- a drill killed before its create, then a real restore under the same ``--name`` (whose branch the app now
  uses), then ``drill --resume``: the drill must neither verify nor delete the restore's branch;
- an in-place restore killed before it asked Neon, then a person's safety copy under the backup's name,
  then ``restore --resume``: the copy must not be taken for the backup, and the run must not say "restored".

And the proof must not refuse what the run did make: an in-place restore killed after Neon restored (before
its ``done`` record) resumes and adopts the real backup.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from recovery_wizard.neon import NeonClient
from recovery_wizard.neon.models import EndpointType
from recovery_wizard.recovery.journal import Journal, list_runs
from tests.recovery.conftest import World
from tests.reliability.conftest import Shared, count

AT = ("--at", "35 minutes ago")
IN_PLACE = ("restore", "--yes", "--json", *AT, "--strategy", "in-place", "--no-prisma")


def _exists(shared: Shared, branch_id: str) -> Callable[[NeonClient], Awaitable[bool]]:
    async def look(client: NeonClient) -> bool:
        return any(b.id == branch_id for b in await client.branches(shared.project_id))

    return look


def _records(app: Path) -> list[tuple[str, str | None]]:
    return [(r.event, r.step) for r in Journal.open(list_runs(app)[-1]).records]


async def test_drill_resume_never_adopts_or_deletes_a_restore_branch_of_the_same_name(
    shared: Shared, tmp_path: Path
) -> None:
    count("adoption:foreign branches refused")
    drill_app = shared.make_app(tmp_path / "drill")
    name = "incident-restore-7"
    # Killed right after the drill's "restore begin" record: it never asked Neon for its branch.
    killed = await shared.cli(
        drill_app,
        "drill",
        "--yes",
        *AT,
        "--name",
        name,
        extra_env={"RECOVERY_WIZARD_CRASH_AT": "begin:restore"},
    )
    assert killed.code == -9, killed.stderr
    assert _records(drill_app)[-1] == ("begin", "restore")
    assert ("done", "restore") not in _records(drill_app)

    # The real incident: a restore under the same name, and the app pointed at it.
    prod_app = shared.make_app(tmp_path / "prod")
    restored = await shared.cli(prod_app, "restore", "--yes", "--json", *AT, "--name", name)
    assert restored.code == 0, restored.stderr
    branch_id = json.loads(restored.stdout)["restore_branch"]["id"]
    prod_env = (prod_app / ".env").read_bytes()

    resumed = await shared.cli(drill_app, "drill", "--resume", "--yes", "--json")
    assert resumed.code == 1, resumed.stderr
    assert name in resumed.stderr and branch_id in resumed.stderr
    assert "cannot prove" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["status"] == "failed" and out["deleted"] is False and out["restore_branch"] is None

    assert await shared.with_client(_exists(shared, branch_id)), (
        "the drill deleted the branch production uses"
    )
    assert (prod_app / ".env").read_bytes() == prod_env
    events = _records(drill_app)
    assert ("begin", "cleanup") not in events and ("done", "verify") not in events


async def test_in_place_resume_refuses_a_persons_copy_named_like_the_backup(world: World) -> None:
    count("adoption:foreign branches refused")
    name = "main_safety_copy"
    # Killed right after the restore's begin record: before the restore was asked for.
    killed = await world.cli(
        *IN_PLACE, "--name", name, extra_env={"RECOVERY_WIZARD_CRASH_AT": "begin:restore"}
    )
    assert killed.code == -9, killed.stderr
    assert _records(world.app)[-1] == ("begin", "restore")
    before = await world.client.branch(world.sandbox.project_id, world.main.id)

    # Meanwhile a person makes a safety copy of main under that very name.
    copy = await world.client.create_branch(
        world.sandbox.project_id, parent_id=world.main.id, name=name, endpoints=[EndpointType.READ_WRITE]
    )
    await world.client.wait_for_operations(world.sandbox.project_id, copy.operations)

    resumed = await world.cli("restore", "--resume", "--yes", "--json")
    assert resumed.code == 1, resumed.stderr
    assert name in resumed.stderr and copy.branch.id in resumed.stderr
    assert "has not been restored" in resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["status"] == "failed" and out["backup_branch"] is None
    assert "is restored" not in resumed.stderr
    after = await world.client.branch(world.sandbox.project_id, world.main.id)
    assert after.last_reset_at == before.last_reset_at, "main was not restored, and must not be said to be"
    names = await world.branch_names()
    assert names.count(name) == 1
    assert ("done", "restore") not in _records(world.app)


async def test_in_place_resume_adopts_the_backup_its_own_restore_made(world: World) -> None:
    count("adoption:own branches adopted")
    name = "main_old_resumed"
    # Killed just before the restore's done record: Neon restored main and kept the backup.
    killed = await world.cli(
        *IN_PLACE, "--name", name, extra_env={"RECOVERY_WIZARD_CRASH_BEFORE": "done:restore"}
    )
    assert killed.code == -9, killed.stderr
    assert _records(world.app)[-1] == ("begin", "restore")

    resumed = await world.cli("restore", "--resume", "--yes", "--json")
    assert resumed.code == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["status"] == "done"
    assert out["backup_branch"]["name"] == name
    assert (await world.branch_names()).count(name) == 1


async def test_drill_resume_never_deletes_its_branch_once_an_env_file_points_at_it(
    shared: Shared, tmp_path: Path
) -> None:
    count("adoption:foreign branches refused")
    app = shared.make_app(tmp_path)
    name = "drill-now-in-use"
    # Killed right after the verify's done record: before the cleanup began.
    killed = await shared.cli(
        app, "drill", "--yes", *AT, "--name", name, extra_env={"RECOVERY_WIZARD_CRASH_AT": "done:verify"}
    )
    assert killed.code == -9, killed.stderr
    assert _records(app)[-1] == ("done", "verify")
    branch_id = str(Journal.open(list_runs(app)[-1]).done("restore").data["branch_id"])  # type: ignore[union-attr]

    async def endpoint_host(client: NeonClient) -> str:
        return (await client.endpoints(shared.project_id, branch_id))[0].host

    # Someone liked the drill's data and pointed a local override at it.
    host = await shared.with_client(endpoint_host)
    (app / ".env.local").write_text(f"DATABASE_URL=postgresql://u:p@{host}/neondb\n")

    resumed = await shared.cli(app, "drill", "--resume", "--yes", "--json")
    assert resumed.code == 1, resumed.stderr
    assert "Not deleting" in resumed.stderr and ".env.local" in resumed.stderr
    assert await shared.with_client(_exists(shared, branch_id))
    assert json.loads(resumed.stdout)["deleted"] is False


async def test_drill_resume_after_its_delete_was_sent_finishes(shared: Shared, tmp_path: Path) -> None:
    count("adoption:drill cleanup resumed")
    app = shared.make_app(tmp_path)
    name = "drill-delete-sent"
    # Killed after the delete went through, just before the cleanup's done record.
    killed = await shared.cli(
        app, "drill", "--yes", *AT, "--name", name, extra_env={"RECOVERY_WIZARD_CRASH_BEFORE": "done:cleanup"}
    )
    assert killed.code == -9, killed.stderr
    assert _records(app)[-1] == ("begin", "cleanup")
    assert name not in await shared.branch_names()

    resumed = await shared.cli(app, "drill", "--resume", "--yes", "--json")
    assert resumed.code == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["status"] == "done" and out["deleted"] is True
    assert Journal.open(list_runs(app)[-1]).status == "done"
