"""`restore --from file:…` and `drill --from file:…` as subprocesses against the homecheff sandbox.

The sandbox writes the scenario's backups folder into the app (hourly `pg_dump -Fc` files with manifests,
the newest after the incident; a plain `.sql` in Downloads; JSON backups of the cron kind). A restore from
the newest file before the incident brings the 18 users back on a new branch and repoints .env; bad files
are refused before any branch; a load that fails leaves the branch marked failed and main untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from recovery_wizard.recovery import envfile
from recovery_wizard.recovery.backup.proofs import last_proofs
from recovery_wizard.recovery.journal import Journal, list_runs
from recovery_wizard.sandbox.backups import BackupsFolder, WrittenBackup
from tests.recovery.conftest import World


async def direct_url(world: World, branch_id: str) -> str:
    uri = await world.client.connection_uri(
        world.sandbox.project_id, branch_id=branch_id, database_name="neondb", role_name="neondb_owner"
    )
    return uri.reveal()


def newest_before(folder: BackupsFolder, kind: str) -> WrittenBackup:
    return max((f for f in folder.of_kind(kind) if not f.after_incident), key=lambda f: f.taken_at)


async def app_users(world: World) -> int:
    direct = envfile.EnvFile.read(world.app / ".env").get("DIRECT_URL")
    assert direct is not None
    return await world.users(direct)


async def test_restore_from_the_newest_dump_before_the_incident_brings_the_users_back(world: World) -> None:
    assert world.sandbox.project is not None
    world.sandbox.project.history_retention_seconds = 600  # the window is past: files are the way back
    folder = await world.sandbox.write_backups(world.app)
    dump = newest_before(folder, "custom")
    main_url = await direct_url(world, world.main.id)
    damaged = await world.users(main_url)
    assert damaged < dump.users == 18

    result = await world.cli("restore", "--yes", "--json", "--from", f"file:{dump.path}")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "done" and out["strategy"] == "new-branch"
    assert out["source"]["kind"] == "file" and out["source"]["path"] == str(dump.path.resolve())
    assert out["source"]["taken_at_source"] == "manifest"
    assert out["restore_branch"]["name"].startswith("main-from-file-")
    assert await app_users(world) == 18, ".env now reaches the restored users"
    assert await world.users(main_url) == damaged, "main is unchanged"
    counts = out["verification"]["source_counts"]
    assert counts["ok"] and any(t["table"] == "public.User" and t["expected"] == 18 for t in counts["tables"])
    assert counts["sha256"] == out["source"]["sha256"]
    report = Path(out["report"]).read_text()
    assert str(dump.path.resolve()) in report and out["source"]["sha256"] in report
    assert "Against the backup file's own counts" in report and "| public.User | 18 | 18 | ok |" in report
    assert not world.leaked(result.stdout, result.stderr, report)


async def test_restore_from_a_json_backup_lets_the_file_win_and_keeps_the_partial_tables_rows(
    world: World,
) -> None:
    folder = await world.sandbox.write_backups(world.app)
    backup = newest_before(folder, "json")
    main_url = await direct_url(world, world.main.id)
    # No hand edit first: the customer who signed up again after the incident has a NEW row with her
    # backed-up email; the file's row wins on the new branch (her old account, orders and reviews).
    orders_before = await count(main_url, '"Order"')

    result = await world.cli("restore", "--yes", "--json", "--from", f"file:{backup.path}")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["source"]["file_kind"] == "json"
    assert await app_users(world) == 18
    restored = await direct_url(world, out["restore_branch"]["id"])
    # Upsert: the orders the truncated file lacks are kept (replace cannot even load them: the file's
    # reviews point at orders it no longer holds).
    assert await count(restored, '"Order"') >= orders_before > backup.truncated["orders"]
    counts = out["verification"]["source_counts"]
    assert counts["ok"] and counts["partial"], "the truncated orders are said as partial, not a failure"
    replaced = [
        n for n in out["verification"]["source_counts"]["load_notes"] if n.startswith("replaced User row")
    ]
    assert replaced and replaced[0].endswith("that held the same email"), out["verification"][
        "source_counts"
    ]["load_notes"]
    report = Path(out["report"]).read_text()
    assert replaced[0] in report
    assert not world.leaked(result.stdout, result.stderr, report)


async def execute(url: str, sql: str, *params: object) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(sql, list(params) or None)


async def count(url: str, table: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (await conn.execute(f"SELECT count(*) FROM {table}")).fetchone()
    assert row is not None
    return int(row[0])


async def test_restore_from_a_plain_sql_dump(world: World) -> None:
    folder = await world.sandbox.write_backups(world.app)
    plain = folder.of_kind("plain")[0]
    result = await world.cli("restore", "--yes", "--json", "--no-prisma", "--from", f"file:{plain.path}")
    assert result.code == 0, result.stderr
    restored = await direct_url(world, result.json()["restore_branch"]["id"])
    assert await world.users(restored) == plain.users


async def test_backup_then_drill_file_latest_proves_it_and_leaves_nothing(world: World) -> None:
    taken = await world.cli("backup", "--json")
    assert taken.code == 0, taken.stderr
    names = await world.branch_names()
    result = await world.cli("drill", "--yes", "--json", "--from", "file:latest")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "done" and out["deleted"] is True
    assert out["source"]["kind"] == "file" and out["source"]["asked_as"] == "latest"
    assert await world.branch_names() == names, "the drill branch was deleted"
    proofs = last_proofs(world.app / "backups")
    proof = proofs[f"file:{Path(out['source']['path']).name}"]
    assert proof.ok and proof.sha256 == out["source"]["sha256"] and proof.run_id == out["run_id"]
    listed = await world.cli("backup", "list", "--json")
    assert listed.code == 0, listed.stderr
    assert out["run_id"] in listed.stdout or "proven" in listed.stdout


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-64] ^= 0xFF  # inside the last table's data: the archive's structure still reads
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", ["corrupt", "not a backup", "truncated", "connect"])
async def test_bad_files_are_refused_before_any_branch(world: World, case: str) -> None:
    folder = await world.sandbox.write_backups(world.app)
    dump = newest_before(folder, "custom")
    if case == "corrupt":
        path, needle = dump.path, "corrupt"
        corrupt(path)
    elif case == "not a backup":
        path, needle = world.app / "notes.txt", "is not a backup"
        path.write_bytes(b"\x00\x01binary, not a backup\x02" * 40)
    elif case == "truncated":
        path, needle = world.app / "cut.dump", "truncated"
        path.write_bytes(dump.path.read_bytes()[: dump.path.stat().st_size // 2])
    else:
        path, needle = world.app / "evil.sql", "connect"
        path.write_text(
            "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n\\connect postgres\nDROP TABLE t;\n"
        )
    names = await world.branch_names()
    result = await world.cli("restore", "--yes", "--from", f"file:{path}")
    assert result.code == 2, result.stderr
    assert needle in result.stderr.lower(), result.stderr
    assert await world.branch_names() == names
    assert not list_runs(world.app)


async def test_in_place_from_a_file_is_refused(world: World) -> None:
    folder = await world.sandbox.write_backups(world.app)
    dump = newest_before(folder, "custom")
    result = await world.cli("restore", "--yes", "--from", f"file:{dump.path}", "--strategy", "in-place")
    assert result.code == 2, result.stderr
    assert "not restored in place" in result.stderr and "new-branch" in result.stderr


async def test_a_failed_load_marks_the_branch_failed_and_leaves_main_alone(world: World) -> None:
    folder = await world.sandbox.write_backups(world.app)
    backup = newest_before(folder, "json")
    document = json.loads(backup.path.read_text())
    users = document["data"]["users"]
    users.append(dict(users[0], id=users[0]["id"] + "-dup"))  # the same email: violates the unique key
    bad = world.app / "bad.json"
    bad.write_text(json.dumps(document))
    main_url = await direct_url(world, world.main.id)
    env_before = (world.app / ".env").read_bytes()

    result = await world.cli("restore", "--yes", "--json", "--from", f"file:{bad}")
    assert result.code != 0
    out = result.json()
    assert out["status"] == "failed" and "violates" in out["error"]["message"]
    names = await world.branch_names()
    failed = [n for n in names if n.endswith("-failed")]
    assert len(failed) == 1 and failed[0].startswith("main-from-file-")
    assert await world.users(main_url) < 14 and (world.app / ".env").read_bytes() == env_before
    journal = Journal.open(list_runs(world.app)[0])
    assert journal.last("load", "failed") is not None and journal.done("restore") is None


@pytest.mark.parametrize(
    ("hook", "value"),
    [
        ("RECOVERY_WIZARD_CRASH_BEFORE", "begin:load"),  # the branch made, the load not begun
        ("RECOVERY_WIZARD_CRASH_AT", "begin:load"),  # the load begun, its outcome unknown
        ("RECOVERY_WIZARD_CRASH_BEFORE", "done:load"),  # the load committed, not recorded
        ("RECOVERY_WIZARD_CRASH_BEFORE", "done:restore"),  # the load recorded, the step not
    ],
)
async def test_killed_around_the_load_resumes_to_the_users(world: World, hook: str, value: str) -> None:
    folder = await world.sandbox.write_backups(world.app)
    dump = newest_before(folder, "custom")
    first = await world.cli(
        "restore", "--yes", "--json", "--from", f"file:{dump.path}", extra_env={hook: value}
    )
    assert first.code != 0, first.stderr
    resumed = await world.cli("restore", "--yes", "--json", "--resume")
    assert resumed.code == 0, resumed.stderr
    out = resumed.json()
    assert out["status"] == "done"
    assert await app_users(world) == 18
    names = await world.branch_names()
    made = [n for n in names if n.startswith("main-from-file-")]
    assert made == [out["restore_branch"]["name"]], f"one branch, not two: {names}"


async def test_drill_from_a_named_dump_records_its_proof_beside_it(world: World) -> None:
    folder = await world.sandbox.write_backups(world.app)
    dump = newest_before(folder, "custom")
    names = await world.branch_names()
    result = await world.cli("drill", "--yes", "--json", "--from", f"file:{dump.path}")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["deleted"] is True and out["verification"]["source_counts"]["ok"]
    assert await world.branch_names() == names
    proof = last_proofs(dump.path.parent)[f"file:{dump.path.name}"]
    assert proof.ok and proof.run_id == out["run_id"]
