"""`recovery-wizard backup` as a subprocess against the homecheff sandbox: the file and its manifest, retention,
corruption, a full disk, refused directories and the secret canary (process list, manifest, output, logs)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recovery_wizard.recovery.backup.backupdir import local_backups
from recovery_wizard.recovery.backup.errors import CorruptBackupError
from recovery_wizard.recovery.backup.manifest import manifest_path, sha256_file, verify_file
from recovery_wizard.recovery.backup.proofs import record_proof
from tests.recovery.conftest import CliResult, World


async def direct_url(world: World) -> str:
    uri = await world.client.connection_uri(
        world.sandbox.project_id,
        branch_id=world.main.id,
        database_name="neondb",
        role_name="neondb_owner",
        pooled=False,
    )
    return uri.reveal()


async def table_counts(url: str) -> dict[str, int]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (
            await conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
        ).fetchall()
        counts = {}
        for schema, table in rows:
            row = await (await conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"')).fetchone()
            assert row is not None
            counts[f"{schema}.{table}"] = int(row[0])
    return counts


def age_backup(path: Path, hours: float) -> None:
    """Make a backup look ``hours`` older (its manifest's taken_at), as a test's setup."""
    mpath = manifest_path(path)
    raw = json.loads(mpath.read_text())
    raw["taken_at"] = (datetime.fromisoformat(raw["taken_at"]) - timedelta(hours=hours)).isoformat()
    mpath.write_text(json.dumps(raw))


async def backup(world: World, *args: str) -> CliResult:
    return await world.cli("backup", "--yes", "--json", *args)


async def test_backup_file_and_manifest_match_the_branch(world: World) -> None:
    result = await backup(world, "--to", "file")
    assert result.code == 0, result.stderr
    out = result.json()
    path = Path(out["file"]["path"])
    assert path.parent == world.app / "backups"
    assert path.name.startswith("main-") and path.name.endswith("Z.dump")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(manifest_path(path).stat().st_mode & 0o777) == "0o600"
    manifest = json.loads(manifest_path(path).read_text())
    assert manifest["format"] == "recovery-wizard-backup/1"
    assert manifest["file"] == path.name
    assert manifest["sha256"] == sha256_file(path)
    assert manifest["size"] == path.stat().st_size
    assert manifest["database"] == "neondb"
    assert manifest["branch"] == {"id": world.main.id, "name": "main"}
    assert manifest["project"]["id"] == world.sandbox.project_id
    assert manifest["lsn"] and manifest["server_version"] and "pg_dump" in manifest["pg_dump_version"]
    assert manifest["tables"] == await table_counts(await direct_url(world))
    assert manifest["tables"]["public.User"] == await world.users(await direct_url(world))
    assert verify_file(path).sha256 == manifest["sha256"]
    # The archive is a real custom-format dump that pg_restore can read.
    from recovery_wizard.pgtools import find_tools

    # A pg_restore at least as new as the pg_dump that wrote it (the manifest says which).
    dumped_by = int(manifest["pg_dump_version"].split()[-1].split(".")[0])
    toc = await asyncio.to_thread(
        subprocess.run,
        [str(find_tools(dumped_by).pg_restore), "--list", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "TABLE DATA public User " in toc.stdout
    assert not world.leaked(result.stdout, result.stderr, manifest_path(path).read_text())


async def test_retention_by_count_and_age_never_newest_never_foreign(world: World) -> None:
    for _ in range(3):
        result = await backup(world)
        assert result.code == 0, result.stderr
    directory = world.app / "backups"
    paths = [b.path for b in local_backups(directory)]  # newest first
    assert len(paths) == 3
    age_backup(paths[1], 30)
    age_backup(paths[2], 50)
    foreign = directory / "someone-elses.dump"
    foreign.write_bytes(b"not ours")
    no_manifest_of_ours = directory / "main-20200101T000000Z.dump"
    no_manifest_of_ours.write_bytes(b"x")
    manifest_path(no_manifest_of_ours).write_text(json.dumps({"format": "other-tool/1"}))

    # By age: the two aged ones go; the fresh one taken now stays (and so does the new one).
    result = await backup(world, "--keep", "24h")
    assert result.code == 0, result.stderr
    deleted = {Path(p).name for p in result.json()["deleted"]}
    assert deleted == {paths[1].name, paths[2].name}
    assert not paths[1].exists() and not manifest_path(paths[1]).exists()
    assert foreign.exists() and no_manifest_of_ours.exists()

    # By count: keep 1 leaves only the newest.
    result = await backup(world, "--keep", "1")
    assert result.code == 0, result.stderr
    left = local_backups(directory)
    assert [b.path.name for b in left] == [Path(result.json()["file"]["path"]).name]
    assert foreign.exists() and no_manifest_of_ours.exists()

    # Never the newest, however old: everything aged past --keep 1h, the newest stays.
    age_backup(left[0].path, 1000)
    result = await backup(world, "--keep", "1h")
    assert result.code == 0, result.stderr
    newest = Path(result.json()["file"]["path"])
    assert [b.path for b in local_backups(directory)] == [newest]
    # And a lone backup far past its age is never deleted.
    age_backup(newest, 1000)
    from recovery_wizard.recovery.backup.retention import apply_retention, parse_keep

    assert apply_retention(directory, parse_keep("1h"), datetime.now(UTC)) == []
    assert newest.exists()


async def test_corrupt_backup_is_refused(world: World) -> None:
    result = await backup(world)
    path = Path(result.json()["file"]["path"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptBackupError, match=r"corrupt.*sha256"):
        verify_file(path)
    path.write_bytes(bytes(data[:-10]))
    with pytest.raises(CorruptBackupError, match="bytes"):
        verify_file(path)
    manifest_path(path).write_text("{not json")
    with pytest.raises(CorruptBackupError, match="damaged"):
        verify_file(path)
    manifest_path(path).unlink()
    with pytest.raises(CorruptBackupError, match="no manifest"):
        verify_file(path)


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


async def test_disk_full_leaves_no_partial_file_and_old_backups_untouched(world: World) -> None:
    first = await backup(world)
    assert first.code == 0, first.stderr
    old = Path(first.json()["file"]["path"])
    before = {p.name: p.read_bytes() for p in old.parent.iterdir()}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recovery_wizard",
        "backup",
        "--yes",
        "--json",
        "--keep",
        "1",
        cwd=world.app,
        env=world.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_limit_file_size,  # the dump grows past 4 KB: the "disk" is full
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 1, err.decode()
    assert "disk filled up" in err.decode()
    assert json.loads(out)["status"] == "failed"
    after = {p.name: p.read_bytes() for p in old.parent.iterdir()}
    assert after == before  # no partial file, nothing deleted by --keep, old backup byte for byte
    assert verify_file(old)


async def test_symlinked_or_unusable_dir_is_refused(world: World, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (world.app / "linked").symlink_to(real)
    result = await backup(world, "--dir", "linked")
    assert result.code == 2
    assert "symlink" in result.stderr
    assert list(real.iterdir()) == []
    a_file = world.app / "a-file"
    a_file.write_text("x")
    result = await backup(world, "--dir", "a-file")
    assert result.code == 2 and "not a directory" in result.stderr
    if os.geteuid() != 0:  # root writes anywhere: only a non-root run can prove this one
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        result = await backup(world, "--dir", str(ro))
        assert result.code == 2 and "not writable" in result.stderr


async def test_snapshot_of_child_branch_refused_and_both_explains(world: World) -> None:
    child = next(b for b in await world.client.branches(world.sandbox.project_id) if b.parent_id)
    result = await backup(world, "--to", "snapshot", "--branch", child.name)
    assert result.code == 2
    assert "root branches only" in result.stderr
    result = await backup(world, "--to", "both", "--branch", child.name)
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["file"] is not None and out["snapshot"] is None
    assert "root branches only" in out["snapshot_skipped"]
    result = await backup(world, "--to", "snapshot")
    assert result.code == 0, result.stderr
    snap = result.json()["snapshot"]
    assert snap["id"] in {s.id for s in await world.client.snapshots(world.sandbox.project_id)}


async def test_list_shows_files_and_snapshots_newest_first_with_proofs(world: World) -> None:
    result = await backup(world, "--to", "both")
    assert result.code == 0, result.stderr
    taken = result.json()
    name = Path(taken["file"]["path"]).name
    record_proof(world.app / "backups", file=name, sha256=taken["file"]["sha256"], run_id="r1", ok=True)
    listed = await world.cli("backup", "list", "--json")
    assert listed.code == 0, listed.stderr
    rows = listed.json()["backups"]
    assert [r["at"] for r in rows] == sorted((r["at"] for r in rows), reverse=True)
    mine = next(r for r in rows if r["kind"] == "file" and r["name"] == name)
    assert mine["last_proven"]["ok"] is True and mine["last_proven"]["run_id"] == "r1"
    assert any(r["kind"] == "snapshot" and r["ref"] == taken["snapshot"]["id"] for r in rows)
    human = await world.cli("backup", "list")
    assert name in human.stdout and "never" in human.stdout
    assert not world.leaked(listed.stdout, listed.stderr, human.stdout, human.stderr)


async def test_schedule_sets_neon_and_prints_cron_and_actions(world: World) -> None:
    result = await world.cli(
        "backup", "schedule", "--daily", "7d", "--weekly", "4w", "--file-keep", "48h", "--json"
    )
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["schedule"] == [
        {"frequency": "daily", "hour": 3, "retention_seconds": 7 * 86400},
        {"frequency": "weekly", "hour": 3, "day": 7, "retention_seconds": 28 * 86400},
    ]
    got = await world.client.backup_schedule(world.sandbox.project_id, world.main.id)
    assert [i.frequency for i in got] == ["daily", "weekly"]
    assert "recovery-wizard backup --to file --keep 2d --yes" in out["file_layer"]["cron"]
    assert out["file_layer"]["cron"].startswith("17 * * * * cd ")
    assert "secrets.NEON_API_KEY" in out["file_layer"]["github_actions"]
    assert not world.leaked(result.stdout, result.stderr)
    off = await world.cli("backup", "schedule", "--off", "--json")
    assert off.code == 0 and off.json()["schedule"] == []


async def test_secret_canary_process_list_while_pg_dump_runs(world: World) -> None:
    """pg_dump is held on a table lock while the process list is read: no password on its command line."""
    import psycopg

    url = await direct_url(world)
    async with await psycopg.AsyncConnection.connect(url) as blocker:
        await blocker.execute('LOCK TABLE "User" IN ACCESS EXCLUSIVE MODE')  # pg_dump waits on it
        task = asyncio.ensure_future(backup(world))
        seen = ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120  # the backup's start (a Python process, API calls) on a loaded machine
        while loop.time() < deadline:
            shown = await asyncio.to_thread(
                subprocess.run, ["ps", "-eww", "-o", "args"], capture_output=True, text=True
            )
            ps = shown.stdout
            lines = [line for line in ps.splitlines() if "pg_dump" in line and "--snapshot" in line]
            if lines:
                seen = "\n".join(lines)
                environ = ps
                break
            await asyncio.sleep(0.05)
        await blocker.rollback()
    result = await task
    assert seen, "pg_dump was never seen running"
    # The URL without its password (or, for a pg_dump built without TLS, the local TLS relay's conninfo).
    assert "--dbname=postgresql://neondb_owner@" in seen or (
        "--dbname=" in seen and "user=neondb_owner" in seen
    )
    assert not world.leaked(seen, environ)
    assert result.code == 0, result.stderr
    texts = [result.stdout, result.stderr]
    for path in (world.app / "backups").iterdir():
        if path.name.endswith(".json") or path.name.endswith(".jsonl"):
            texts.append(path.read_text())
    for path in (world.app / ".recovery-wizard").rglob("*"):
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    assert not world.leaked(*texts)


async def test_outside_the_window_timeline_and_restore_offer_backups_from_before(world: World) -> None:
    result = await backup(world)
    assert result.code == 0, result.stderr
    file = Path(result.json()["file"]["path"])
    age_backup(file, 1)  # as if taken an hour ago, before the incident
    assert world.sandbox.project is not None
    world.sandbox.project.history_retention_seconds = 600  # the window is shorter than the incident's age

    timeline = await world.cli("timeline", "--json", "--incident", "35 minutes ago")
    assert timeline.code == 0, timeline.stderr
    out = timeline.json()
    kinds = {e["kind"] for e in out["events"]}
    assert {"snapshot", "backup-file", "incident"} <= kinds
    offered = out["backups_before_incident"]
    assert offered and offered[0]["source"] == f"file:{file}"
    incident = datetime.fromisoformat(next(e["at"] for e in out["events"] if e["kind"] == "incident"))
    assert all(datetime.fromisoformat(o["at"]) <= incident for o in offered)
    human = await world.cli("timeline", "--incident", "35 minutes ago")
    assert "Backups from before" in human.stdout and f"--from file:{file}" in human.stdout

    refused = await world.cli("restore", "--yes", "--at", "35 minutes ago")
    assert refused.code == 2
    assert "before the oldest restorable moment" in refused.stderr
    assert f"file:{file}" in refused.stderr and "snapshot:" in refused.stderr
    assert not world.leaked(timeline.stdout, human.stdout, refused.stderr)


async def _start_held_backup(world: World) -> tuple[asyncio.subprocess.Process, object]:
    """A backup whose pg_dump waits on a table lock held by the test (returned, to release)."""
    import psycopg

    blocker = await psycopg.AsyncConnection.connect(await direct_url(world))
    await blocker.execute('LOCK TABLE "User" IN ACCESS EXCLUSIVE MODE')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recovery_wizard",
        "backup",
        "--yes",
        "--json",
        cwd=world.app,
        env=world.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    backups = world.app / "backups"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120  # the backup's start (a Python process, API calls) on a loaded machine
    while loop.time() < deadline:
        if backups.is_dir() and any(
            p.name.startswith(".") and ".partial-" in p.name for p in backups.iterdir()
        ):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the backup never started writing")
    return proc, blocker


async def test_interrupted_backup_removes_its_partial_file(world: World) -> None:
    import signal

    first = await backup(world)
    assert first.code == 0, first.stderr
    before = sorted(p.name for p in (world.app / "backups").iterdir())
    proc, blocker = await _start_held_backup(world)
    try:
        # A second backup meanwhile is refused at once: one writer per app directory.
        second = await backup(world)
        assert second.code == 2 and "backup" in second.stderr and "pid" in second.stderr
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await blocker.close()  # type: ignore[attr-defined]
    assert proc.returncode == 3, err.decode()
    assert "SIGTERM" in err.decode()
    assert sorted(p.name for p in (world.app / "backups").iterdir()) == before
    del out


async def test_killed_backup_leaves_a_partial_the_next_one_removes(world: World) -> None:
    proc, blocker = await _start_held_backup(world)
    proc.kill()
    await proc.wait()
    await blocker.close()  # type: ignore[attr-defined]
    backups = world.app / "backups"
    partials = [p for p in backups.iterdir() if ".partial-" in p.name]
    assert partials and local_backups(backups) == []  # never taken for a backup
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while loop.time() < deadline:  # the orphaned pg_dump finishes on its own
        if not any("--snapshot" in line for line in _pg_dumps()):
            break
        await asyncio.sleep(0.1)
    result = await backup(world)
    assert result.code == 0, result.stderr
    assert [p for p in backups.iterdir() if ".partial-" in p.name] == []
    assert len(local_backups(backups)) == 1


def _pg_dumps() -> list[str]:
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=False).stdout
    return [line for line in ps.splitlines() if "pg_dump" in line]


async def test_a_lost_snapshot_answer_is_reconciled_by_name(world: World) -> None:
    from recovery_wizard.sandbox.faults import parse_fault

    assert world.sandbox.app is not None
    # Neon takes the snapshot, then the answer is lost (a 500 after the write).
    world.sandbox.app.faults[:] = [parse_fault("POST /projects/*/branches/*/snapshot=500:when=after")]
    before = {s.id for s in await world.client.snapshots(world.sandbox.project_id)}
    result = await backup(world, "--to", "snapshot")
    world.sandbox.app.faults[:] = []
    assert result.code == 0, result.stderr
    after = await world.client.snapshots(world.sandbox.project_id)
    made = [s for s in after if s.id not in before]
    assert len(made) == 1  # adopted, not taken twice
    assert result.json()["snapshot"]["id"] == made[0].id


async def test_both_keeps_the_file_when_the_snapshot_fails(world: World) -> None:
    from recovery_wizard.sandbox.faults import parse_fault

    assert world.sandbox.app is not None
    # Neon fails before taking it: nothing to adopt, so the run fails, and the file stays.
    world.sandbox.app.faults[:] = [parse_fault("POST /projects/*/branches/*/snapshot#*=500:when=before")]
    before = {s.id for s in await world.client.snapshots(world.sandbox.project_id)}
    result = await backup(world, "--to", "both")
    world.sandbox.app.faults[:] = []
    assert result.code == 1, result.stderr
    out = result.json()
    assert out["status"] == "failed" and out["snapshot"] is None
    assert "error" in out and out["error"]["message"]
    assert verify_file(Path(out["file"]["path"]))
    assert {s.id for s in await world.client.snapshots(world.sandbox.project_id)} == before


async def test_client_programs_without_tls_reach_a_tls_only_endpoint_through_the_relay(world: World) -> None:
    """The embedded PostgreSQL 18 programs are built without TLS; the sandbox's endpoints (like Neon's) take
    only TLS with SCRAM-SHA-256-PLUS on offer. Through the relay, psql connects and authenticates."""
    from recovery_wizard.pgtools import PgTools, binary_major, embedded_bin_dir
    from recovery_wizard.recovery.backup.dump import split_password
    from recovery_wizard.redact import Secret
    from recovery_wizard.tlsrelay import speaks_tls, usable_conninfo

    tools = PgTools(embedded_bin_dir(), binary_major(embedded_bin_dir() / "psql"))
    if speaks_tls(str(tools.bin_dir)):
        pytest.skip("these client programs speak TLS themselves: no relay is needed")
    url = await direct_url(world)
    assert "sslmode=require" in url
    dsn, password = split_password(Secret(url))
    env = {**os.environ, "PGPASSWORD": password or ""}
    bare = await asyncio.to_thread(
        subprocess.run,
        [str(tools.psql), "-X", "-w", "-At", "-c", "select 1", dsn],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bare.returncode != 0 and "SSL support is not compiled in" in bare.stderr
    async with usable_conninfo(dsn, tools) as reach:
        assert "127.0.0.1" in reach and "sslmode=disable" in reach and (password or "\0") not in reach
        relayed = await asyncio.to_thread(
            subprocess.run,
            [str(tools.psql), "-X", "-w", "-At", "-c", 'select count(*) from "User"', reach],
            capture_output=True,
            text=True,
            env=env,
        )
    assert relayed.returncode == 0, relayed.stderr
    assert int(relayed.stdout.strip()) == await world.users(url)
