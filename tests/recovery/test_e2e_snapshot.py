"""`restore --from snapshot:…` and `drill --from snapshot:latest` as subprocesses against the sandbox.

pgBackRest-style markers prove which data came back: a row written before the snapshot is there after the
restore, a row written after it is not. The homecheff scenario's `before release` snapshot (the evening
before the incident) brings the users back; its nightly snapshots make `snapshot:latest`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from recovery_wizard.recovery import envfile
from recovery_wizard.recovery.journal import Journal, list_runs
from tests.recovery.conftest import World

BEFORE_RELEASE = "snapshot:before release"


async def api(world: World, method: str, path: str, **kwargs: Any) -> Any:
    """A raw call to the sandbox's Neon API (creating snapshots is another part's client method).

    A 423 (the previous call's operation still runs) is asked again, as Neon's docs say it is safe to.
    """
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            response = await http.request(
                method,
                f"{world.url}/projects/{world.sandbox.project_id}{path}",
                headers={"Authorization": f"Bearer {world.sandbox.api_key.reveal()}"},
                **kwargs,
            )
            if response.status_code != 423:
                break
            await asyncio.sleep(0.05)
    assert response.status_code < 300, response.text
    return response.json()


async def take_snapshot(world: World, name: str) -> str:
    body = await api(world, "POST", f"/branches/{world.main.id}/snapshot", params={"name": name})
    return str(body["snapshot"]["id"])


async def direct_url(world: World, branch_id: str) -> str:
    uri = await world.client.connection_uri(
        world.sandbox.project_id, branch_id=branch_id, database_name="neondb", role_name="neondb_owner"
    )
    return uri.reveal()


async def execute(url: str, *statements: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for sql in statements:
            await conn.execute(sql)


async def markers(url: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (await conn.execute("SELECT label FROM restore_marker ORDER BY label")).fetchall()
    return [str(r[0]) for r in rows]


async def branch_by_name(world: World, name: str) -> Any:
    return next(b for b in await world.client.branches(world.sandbox.project_id) if b.name == name)


async def test_markers_before_the_snapshot_come_back_and_after_it_do_not(world: World) -> None:
    main_url = await direct_url(world, world.main.id)
    await execute(
        main_url,
        "CREATE TABLE restore_marker (label text PRIMARY KEY)",
        "INSERT INTO restore_marker VALUES ('before-snapshot')",
    )
    snapshot_id = await take_snapshot(world, "marker snapshot")
    await execute(main_url, "INSERT INTO restore_marker VALUES ('after-snapshot')")

    result = await world.cli("restore", "--yes", "--json", "--no-prisma", "--from", f"snapshot:{snapshot_id}")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["source"]["kind"] == "snapshot" and out["source"]["id"] == snapshot_id
    restored = out["restore_branch"]
    assert restored["name"].startswith("main-from-snapshot-")
    assert await markers(await direct_url(world, restored["id"])) == ["before-snapshot"]
    # The damaged branch is untouched, and the app now points at the restored branch.
    assert await markers(main_url) == ["after-snapshot", "before-snapshot"]
    direct = envfile.EnvFile.read(world.app / ".env").get("DIRECT_URL")
    assert direct is not None and await markers(direct) == ["before-snapshot"], "the app points at it"
    assert not world.leaked(result.stdout, result.stderr)


async def test_restore_from_a_named_snapshot_to_a_new_branch_brings_the_users_back(world: World) -> None:
    # Shrink the restore window below the snapshot's age: a snapshot is the way back past it.
    assert world.sandbox.project is not None
    world.sandbox.project.history_retention_seconds = 600
    damaged_users = await world.users(await direct_url(world, world.main.id))
    assert damaged_users < 14
    history = await world.cli("restore", "--yes", "--dry-run", "--at", "yesterday 20:00")
    assert history.code == 2, history.stderr  # history refuses a moment outside the window

    result = await world.cli("restore", "--yes", "--json", "--from", BEFORE_RELEASE)
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "done" and out["strategy"] == "new-branch"
    assert out["source"]["name"] == "before release"
    restored = await world.client.branch(world.sandbox.project_id, out["restore_branch"]["id"])
    assert restored.restored_from == out["source"]["id"]
    direct = envfile.EnvFile.read(world.app / ".env").get("DIRECT_URL")
    assert direct is not None
    assert await world.users(direct) >= 14, "the app's direct URL reaches the restored users"
    assert await world.users(await direct_url(world, world.main.id)) == damaged_users, "main is unchanged"
    report = Path(out["report"]).read_text()
    assert "Neon snapshot 'before release'" in report and out["source"]["id"] in report
    assert not world.leaked(result.stdout, result.stderr, report)


async def test_restore_in_place_finalizes_the_snapshot_into_mains_place(world: World) -> None:
    before_env = (world.app / ".env").read_bytes()
    old_main_id = world.main.id
    damaged_users = await world.users(await direct_url(world, old_main_id))
    result = await world.cli(
        "restore",
        "--yes",
        "--json",
        "--from",
        BEFORE_RELEASE,
        "--strategy",
        "in-place",
        "--name",
        "main-damaged",
    )
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["strategy"] == "in-place" and out["status"] == "done"
    live = await branch_by_name(world, "main")
    assert live.id != old_main_id, "finalize gives main a new id"
    assert live.id == out["restore_branch"]["id"] and out["restore_branch"]["name"] == "main"
    assert live.default and live.restore_status == "finalized"
    assert out["backup_branch"] == {"id": old_main_id, "name": "main-damaged"}
    # The app's connection strings did not change and now reach the restored users.
    assert (world.app / ".env").read_bytes() == before_env
    direct = envfile.EnvFile.read(world.app / ".env").get("DIRECT_URL")
    assert direct is not None and await world.users(direct) >= 14
    # The damaged state is kept: its computes moved to the new main, so give it one to look.
    made = await world.client.create_endpoint(world.sandbox.project_id, old_main_id)
    await world.client.wait_for_operations(world.sandbox.project_id, made.operations)
    assert await world.users(await direct_url(world, old_main_id)) == damaged_users
    names = await world.branch_names()
    assert not any("snapshot-preview" in n for n in names), "the preview became main"
    report = Path(out["report"]).read_text()
    assert "Undo the finalize" in report and old_main_id in report and live.id in report
    journal = Journal.open(list_runs(world.app)[0])
    steps = [(r.event, r.step) for r in journal.records if r.kind == "step"]
    assert ("begin", "finalize") in steps and ("done", "finalize") in steps
    assert steps.index(("done", "verify")) < steps.index(("begin", "finalize")), "verified before finalize"


async def test_drill_from_the_latest_snapshot_verifies_and_cleans_up(world: World) -> None:
    names = await world.branch_names()
    result = await world.cli(
        "drill", "--yes", "--json", "--from", "snapshot:latest", "--check", 'SELECT count(*) >= 1 FROM "User"'
    )
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "done" and out["deleted"] is True
    assert out["source"]["kind"] == "snapshot" and out["source"]["asked_as"] == "latest"
    snapshots = await world.client.snapshots(world.sandbox.project_id)
    newest = max(
        (s for s in snapshots if s.source_branch_id == world.main.id), key=lambda s: s.timestamp or ""
    )
    assert out["source"]["id"] == newest.id
    assert await world.branch_names() == names, "the drill left nothing behind"
    from recovery_wizard.recovery.backup.proofs import last_proofs

    proof = last_proofs(world.app / "backups")[f"snapshot:{newest.id}"]
    assert proof.ok and proof.run_id == out["run_id"], "`backup list` can show it was proven"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--from", "snapshot:no such snapshot"), "There is no snapshot 'no such snapshot'"),
        (("--from", BEFORE_RELEASE, "--at", "35 minutes ago"), "--at '35 minutes ago' and --from snapshot"),
        (("--from", "file:backups/x.dump"), "there is no such file"),
        (("--from", "checkpoint:20261121T020812Z"), "no guard run '20261121T020812Z'"),
        (("--from", "tape:3"), "is not a restore source"),
    ],
)
async def test_bad_sources_are_refused_before_any_write(
    world: World, args: tuple[str, ...], needle: str
) -> None:
    names = await world.branch_names()
    result = await world.cli("restore", "--yes", *args)
    assert result.code == 2, result.stderr
    assert needle in result.stderr
    assert await world.branch_names() == names
    assert not list_runs(world.app)


async def test_an_ambiguous_snapshot_name_is_refused_naming_the_ids(world: World) -> None:
    first, second = await take_snapshot(world, "dup"), await take_snapshot(world, "dup")
    result = await world.cli("restore", "--yes", "--from", "snapshot:dup")
    assert result.code == 2, result.stderr
    assert "2 snapshots are named 'dup'" in result.stderr
    assert first in result.stderr and second in result.stderr


# Crash points of an in-place snapshot restore: killed just after the restore was asked for, just before
# its done record, just after the finalize's begin (before the call), and just before the finalize's done
# (after Neon finalized). Each must resume to the same end: main holds the users, one backup, no preview.
@pytest.mark.parametrize(
    ("variable", "point"),
    [
        ("RECOVERY_WIZARD_CRASH_AT", "begin:restore"),
        ("RECOVERY_WIZARD_CRASH_BEFORE", "done:restore"),
        ("RECOVERY_WIZARD_CRASH_AT", "begin:finalize"),
        ("RECOVERY_WIZARD_CRASH_BEFORE", "done:finalize"),
    ],
)
async def test_killed_during_an_in_place_snapshot_restore_resumes_to_the_same_end(
    world: World, variable: str, point: str
) -> None:
    old_main_id = world.main.id
    args = ("--from", BEFORE_RELEASE, "--strategy", "in-place", "--name", "main-damaged")
    killed = await world.cli("restore", "--yes", *args, extra_env={variable: point})
    assert killed.code == -9, killed.stderr
    resumed = await world.cli("restore", "--yes", "--json", "--resume")
    assert resumed.code == 0, resumed.stderr
    out = resumed.json()
    live = await branch_by_name(world, "main")
    assert live.id == out["restore_branch"]["id"] != old_main_id
    assert out["backup_branch"] == {"id": old_main_id, "name": "main-damaged"}
    assert await world.users(await direct_url(world, live.id)) >= 14
    names = await world.branch_names()
    assert names.count("main-damaged") == 1 and not any("snapshot-preview" in n for n in names)
    assert len([b for b in await world.client.branches(world.sandbox.project_id) if b.restored_from]) == 1


async def test_killed_after_asking_for_a_new_branch_from_a_snapshot_adopts_it_once(world: World) -> None:
    killed = await world.cli(
        "restore",
        "--yes",
        "--from",
        BEFORE_RELEASE,
        "--name",
        "from-snap",
        extra_env={"RECOVERY_WIZARD_CRASH_BEFORE": "done:restore"},
    )
    assert killed.code == -9
    resumed = await world.cli("restore", "--yes", "--json", "--resume")
    assert resumed.code == 0, resumed.stderr
    assert (await world.branch_names()).count("from-snap") == 1
    assert resumed.json()["restore_branch"]["name"] == "from-snap"


async def test_a_branch_named_like_the_restore_but_not_from_the_snapshot_is_not_adopted(world: World) -> None:
    killed = await world.cli(
        "restore",
        "--yes",
        "--from",
        BEFORE_RELEASE,
        "--name",
        "from-snap",
        extra_env={"RECOVERY_WIZARD_CRASH_AT": "begin:restore"},
    )
    assert killed.code == -9
    # Someone else makes a branch with that name (not restored from the snapshot) before the resume.
    await world.client.create_branch(world.sandbox.project_id, parent_id=world.main.id, name="from-snap")
    resumed = await world.cli("restore", "--yes", "--resume")
    assert resumed.code == 1, resumed.stderr
    assert "cannot prove it made it" in resumed.stderr and "not restored from the snapshot" in resumed.stderr


@pytest.mark.parametrize(
    "fault",
    [
        "POST /projects/*/snapshots/*/restore=500",  # the preview is made, its answer lost
        "POST /projects/*/branches/*/finalize_restore=500",  # the finalize happens, its answer lost
        "POST /projects/*/branches/*/finalize_restore=drop",
    ],
)
async def test_a_lost_answer_is_reconciled_never_repeated(world: World, fault: str) -> None:
    from recovery_wizard.sandbox.faults import parse_fault

    assert world.sandbox.app is not None
    world.sandbox.app.faults[:] = [parse_fault(fault)]
    old_main_id = world.main.id
    result = await world.cli(
        "restore",
        "--yes",
        "--json",
        "--from",
        BEFORE_RELEASE,
        "--strategy",
        "in-place",
        "--name",
        "main-damaged",
    )
    assert result.code == 0, result.stderr
    assert "answer was lost" in result.stderr
    out = result.json()
    assert out["backup_branch"] == {"id": old_main_id, "name": "main-damaged"}
    restored = [b for b in await world.client.branches(world.sandbox.project_id) if b.restored_from]
    assert [b.id for b in restored] == [out["restore_branch"]["id"]], "one snapshot restore, not two"
    assert restored[0].name == "main" and restored[0].restore_status == "finalized"


async def test_a_snapshot_deleted_after_the_plan_stops_the_run_with_what_to_do(world: World) -> None:
    snapshot_id = await take_snapshot(world, "short-lived")
    killed = await world.cli(
        "restore",
        "--yes",
        "--from",
        f"snapshot:{snapshot_id}",
        extra_env={"RECOVERY_WIZARD_CRASH_AT": "begin:restore"},
    )
    assert killed.code == -9
    await api(world, "DELETE", f"/snapshots/{snapshot_id}")
    resumed = await world.cli("restore", "--yes", "--resume")
    assert resumed.code == 1, resumed.stderr
    assert f"Neon no longer has the snapshot 'short-lived' ({snapshot_id})" in resumed.stderr
    assert "--from snapshot:" in resumed.stderr  # the hint says how to start again
