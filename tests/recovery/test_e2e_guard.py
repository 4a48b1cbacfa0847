"""`recovery-wizard guard -- <command>` and `whereis` against the homecheff sandbox, as subprocesses.

The guarded "migrations" are small Python scripts that read the app's .env themselves (as Prisma does) and
delete rows over the direct URL: real PostgreSQL, real processes, the checkpoint read back directly.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

from recovery_wizard.neon.models import EndpointType
from recovery_wizard.recovery import checkpoint as cp
from recovery_wizard.recovery import envfile
from recovery_wizard.recovery.journal import list_runs
from tests.recovery.conftest import World

ALLOW = ("--yes", "--allow-default")

# Deletes every non-admin user over DIRECT_URL, read from .env as Prisma reads it.
DELETE_USERS = """
import sys
from dotenv import dotenv_values
import psycopg
url = dotenv_values(".env")["DIRECT_URL"]
with psycopg.connect(url, autocommit=True) as conn:
    n = conn.execute('DELETE FROM "User" WHERE "role" <> %s', ("ADMIN",)).rowcount
print(f"migration applied ({n} rows changed)")
"""


@dataclass
class Ran:
    code: int
    stdout: bytes
    stderr: str


async def guard(world: World, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recovery_wizard",
        "guard",
        *args,
        cwd=world.app,
        env={**world.env, **(env or {})},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
    assert proc.returncode is not None
    return Ran(proc.returncode, out, err.decode())


def direct_url(world: World) -> str:
    url = envfile.EnvFile.read(world.app / ".env").get("DIRECT_URL")
    assert url
    return url


def count_users(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute('SELECT count(*) FROM "User"').fetchone()
    assert row is not None
    return int(row[0])


def journal_texts(app: Path) -> str:
    return "\n".join((run / "journal.jsonl").read_text() for run in list_runs(app))


async def read_checkpoint_users(world: World, branch_id: str) -> int:
    """Give the checkpoint a compute (it has none, by design) and count its users."""
    project = world.sandbox.project_id
    made = await world.client.create_endpoint(project, branch_id, type=EndpointType.READ_ONLY)
    await world.client.wait_for_operations(project, made.operations)
    uri = await world.client.connection_uri(
        project,
        branch_id=branch_id,
        endpoint_id=made.endpoint.id,
        database_name="neondb",
        role_name="neondb_owner",
    )
    return await asyncio.to_thread(count_users, uri.reveal())


async def test_a_migration_that_deletes_users_ends_loud_and_the_checkpoint_holds_them(world: World) -> None:
    before = await asyncio.to_thread(count_users, direct_url(world))
    assert before >= 3
    (world.app / "migrate.py").write_text(DELETE_USERS)

    ran = await guard(world, *ALLOW, "--", sys.executable, "migrate.py")

    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith(b"migration applied")
    after = await asyncio.to_thread(count_users, direct_url(world))
    assert after < before
    [made] = cp.checkpoints(world.app)
    assert made.kind == "branch" and made.branch_id == world.main.id and made.lsn and made.at
    assert made.command.endswith("migrate.py") and made.exit_code == 0 and made.lost == ("User",)
    assert "DATA LOSS" in ran.stderr and '"User"' not in ran.stderr.split("DATA LOSS")[0]
    assert f"User: lost {before - after} of {before} rows" in ran.stderr
    assert f"recovery-wizard restore --from checkpoint:{made.run_id}" in ran.stderr
    # The checkpoint: a branch of main, marked as this run's, expiring, holding the users as they were.
    branch, annotation = await world.client.branch_annotated(world.sandbox.project_id, made.id)
    assert branch.parent_id == world.main.id and branch.expires_at is not None
    assert annotation.get("recovery-wizard-run") == made.run_id
    assert await read_checkpoint_users(world, made.id) == before
    assert not world.leaked(ran.stdout.decode(), ran.stderr, journal_texts(world.app))

    listed = await world.cli("guard", "list", "--json")
    assert listed.code == 0, listed.stderr
    [row] = listed.json()["checkpoints"]
    assert row["run_id"] == made.run_id and row["lost"] == ["User"] and row["state"] == "kept"

    # The timeline names it by the command that followed it, with the command that comes back to it.
    timeline = await world.cli("timeline", "--yes", "--json")
    assert timeline.code == 0, timeline.stderr
    [event] = [e for e in timeline.json()["events"] if e["kind"] == "checkpoint"]
    assert event["ref"] == made.run_id and "migrate.py`" in event["summary"]
    assert made.restore_command in event["summary"]


async def test_a_harmless_command_passes_stdin_stdout_and_exit_code_through(world: World) -> None:
    script = (
        "import sys; data = sys.stdin.buffer.read(); "
        "sys.stdout.buffer.write(b'\\x00\\xff binary\\r\\n' + data[::-1]); sys.exit(7)"
    )
    argv = [sys.executable, "-c", script]
    bare = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    bare_out, _ = await bare.communicate(b"hello from stdin")

    ran = await guard(world, *ALLOW, "--threshold", "50", "--", *argv, stdin=b"hello from stdin")

    assert ran.code == 7 == bare.returncode
    assert ran.stdout == bare_out  # byte for byte: nothing of the guard's on stdout
    assert "DATA LOSS" not in ran.stderr and "checkpoint guard-" in ran.stderr
    [made] = cp.checkpoints(world.app)
    assert made.exit_code == 7


async def test_a_killed_command_passes_the_signal_on_and_keeps_the_checkpoint(world: World) -> None:
    script = "import time; print('ready', flush=True); time.sleep(60)"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recovery_wizard",
        "guard",
        *ALLOW,
        "--",
        sys.executable,
        "-c",
        script,
        cwd=world.app,
        env=world.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line == b"ready\n"
    proc.send_signal(signal.SIGTERM)  # to the guard alone: it passes the signal on
    err = (await asyncio.wait_for(proc.stderr.read(), 60)).decode()
    code = await proc.wait()

    assert code == 128 + signal.SIGTERM, err
    [made] = cp.checkpoints(world.app)
    assert "SIGTERM" in err and f"checkpoint {made.name} is kept" in err
    assert made.restore_command in err
    assert made.exit_code == 128 + signal.SIGTERM


async def test_yes_without_allow_default_is_refused_on_the_default_branch(world: World) -> None:
    marker = world.app / "ran.txt"
    branches = await world.branch_names()

    ran = await guard(world, "--yes", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")

    assert ran.code == 2, ran.stderr
    assert "--allow-default" in ran.stderr and "default branch" in ran.stderr
    assert not marker.exists()
    assert await world.branch_names() == branches
    assert cp.checkpoints(world.app) == []


async def test_a_destructive_command_is_refused_when_the_api_is_down(world: World) -> None:
    down = {"NEON_API_URL": "http://127.0.0.1:9/api/v2"}
    marker = world.app / "ran.txt"
    touch = f"open({str(marker)!r}, 'w')"
    # `sh -c "… psql -f …"` reads as psql -f; the stand-in never reaches psql.
    command = ["sh", "-c", f'"{sys.executable}" -c "{touch}" || psql -f x.sql']

    ran = await guard(world, *ALLOW, "--", *command, env=down)
    assert ran.code == 2, ran.stderr
    assert "psql -f" in ran.stderr and "--no-checkpoint" in ran.stderr
    assert not marker.exists()

    forced = await guard(world, *ALLOW, "--no-checkpoint", "--", *command, env=down)
    assert forced.code == 0, forced.stderr
    assert marker.exists()


async def test_no_secret_reaches_the_output_or_the_journal(world: World) -> None:
    url = direct_url(world)
    argv = [sys.executable, "-c", "import sys; print(len(sys.argv))", url, "--password", "hunter2-planted"]

    ran = await guard(world, *ALLOW, "--", *argv)

    assert ran.code == 0, ran.stderr
    texts = (ran.stderr, journal_texts(world.app))
    assert not world.leaked(*texts)
    assert not any("hunter2-planted" in t for t in texts)
    assert "--password '****'" in ran.stderr  # the echoed command line shows where it was


async def test_whereis_names_pooled_direct_not_neon_and_foreign_urls(world: World) -> None:
    env = {
        "POSTGRES_URL": "postgresql://app:pw-planted-1@db.example.com:5432/shop",
        "POSTGRES_PRISMA_URL": "postgresql://app:pw-planted-2@ep-other-account-123456.eu-central-1.aws.neon.tech/db",
    }
    result = await world.cli("whereis", "--json", extra_env=env)

    assert result.code == 0, result.stderr
    by = {(u["variable"], u["source"]): u for u in result.json()["urls"]}
    pooled, direct = by[("DATABASE_URL", ".env")], by[("DIRECT_URL", ".env")]
    for where in (pooled, direct):
        assert where["kind"] == "neon"
        assert where["branch"] == {
            "id": world.main.id,
            "name": world.main.name,
            "default": True,
            "protected": False,
            "root": True,
        }
        assert where["role"] == "neondb_owner" and where["database"] == "neondb"
        assert where["size"]["tables"] >= 5
    assert pooled["pooled"] is True and direct["pooled"] is False
    assert by[("POSTGRES_URL", "environment")]["kind"] == "not-neon"
    foreign = by[("POSTGRES_PRISMA_URL", "environment")]
    assert foreign["kind"] == "foreign" and "different account" in foreign["summary"]
    assert "pw-planted" not in result.stdout + result.stderr
    assert not world.leaked(result.stdout, result.stderr)

    text = await world.cli("whereis", extra_env=env)
    assert text.code == 0, text.stderr
    assert "pooled" in text.stdout and "direct" in text.stdout and "size:" in text.stdout
    assert "not Neon" in text.stdout or "not a Neon endpoint" in text.stdout


async def test_prune_deletes_only_expired_checkpoints_it_can_prove(world: World) -> None:
    ran = await guard(world, *ALLOW, "--", sys.executable, "-c", "pass")
    assert ran.code == 0, ran.stderr
    [made] = cp.checkpoints(world.app)

    kept = await world.cli("guard", "prune", "--yes", "--json")  # nothing expired yet
    assert kept.code == 0 and kept.json()["results"] == []

    pruned = await world.cli("guard", "prune", "--yes", "--json", "--older-than", "1ms")
    assert pruned.code == 0, pruned.stderr
    assert pruned.json()["results"] == [{"name": made.name, "id": made.id, "result": "deleted"}]
    assert made.name not in await world.branch_names()
    [after] = cp.checkpoints(world.app)
    assert after.pruned
    listed = json.loads((await world.cli("guard", "list", "--json")).stdout)
    assert listed["checkpoints"][0]["state"] == "pruned"


async def test_a_locked_project_is_waited_out_before_the_checkpoint(world: World) -> None:
    from recovery_wizard.sandbox.faults import parse_fault

    world.sandbox.app.faults[:] = [parse_fault("POST /projects/*/branches#1-2=423:retry-after=0.2")]
    ran = await guard(world, *ALLOW, "--", sys.executable, "-c", "print('ran')")
    world.sandbox.app.faults.clear()

    assert ran.code == 0, ran.stderr
    assert ran.stdout == b"ran\n"
    [made] = cp.checkpoints(world.app)
    assert made.name in await world.branch_names()


async def test_a_root_branch_can_be_checkpointed_with_a_snapshot(world: World) -> None:
    ran = await guard(world, *ALLOW, "--checkpoint", "snapshot", "--", sys.executable, "-c", "pass")

    assert ran.code == 0, ran.stderr
    [made] = cp.checkpoints(world.app)
    assert made.kind == "snapshot" and made.lsn
    snaps = {s.id: s for s in await world.client.snapshots(world.sandbox.project_id)}
    assert snaps[made.id].name == made.name and snaps[made.id].source_branch_id == world.main.id


def _in_pty(world: World, args: list[str], typed: bytes, timeout: float = 60) -> tuple[int, str]:
    """Run the guard on a pseudo-terminal (its /dev/tty), type ``typed`` at the prompt, return (code, output)."""
    import os
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(world.app)
        os.execve(sys.executable, [sys.executable, "-m", "recovery_wizard", "guard", *args], world.env)
    seen, sent = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            if not sent and b"Type the branch name" in seen:
                os.write(fd, typed)
                sent = True
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


async def test_the_branch_name_typed_at_the_terminal_lets_it_run_and_a_wrong_one_cancels(
    world: World,
) -> None:
    marker = world.app / "ran.txt"
    args = ["--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"]

    code, output = await asyncio.to_thread(_in_pty, world, args, b"production\n")
    assert code == 3, output
    assert "is not 'main'" in output and not marker.exists()
    assert cp.checkpoints(world.app) == []  # nothing made before the answer

    code, output = await asyncio.to_thread(_in_pty, world, args, b"main\n")
    assert code == 0, output
    assert marker.exists() and len(cp.checkpoints(world.app)) == 1


async def test_prune_keeps_a_checkpoint_someone_gave_a_compute_and_says_why(world: World) -> None:
    ran = await guard(world, *ALLOW, "--", sys.executable, "-c", "pass")
    assert ran.code == 0, ran.stderr
    [made] = cp.checkpoints(world.app)
    project = world.sandbox.project_id
    given = await world.client.create_endpoint(project, made.id, type=EndpointType.READ_WRITE)
    await world.client.wait_for_operations(project, given.operations)

    pruned = await world.cli("guard", "prune", "--yes", "--json", "--older-than", "1ms")

    assert pruned.code == 0, pruned.stderr
    [result] = pruned.json()["results"]
    assert result["result"] == "kept" and "read-write compute" in result["why"][0]
    assert made.name in await world.branch_names()
    assert not cp.checkpoints(world.app)[0].pruned


async def test_a_harmless_command_on_a_child_branch_runs_without_asking(world: World) -> None:
    project = world.sandbox.project_id
    dev = await world.client.create_branch(project, parent_id=world.main.id, name="dev")
    await world.client.wait_for_operations(project, dev.operations)
    uri = await world.client.connection_uri(
        project, branch_id=dev.branch.id, database_name="neondb", role_name="neondb_owner"
    )
    env = {"DATABASE_URL": uri.reveal(), "DIRECT_URL": uri.reveal()}

    ran = await guard(world, "--", sys.executable, "-c", "print('seeded')", env=env)

    assert ran.code == 0, ran.stderr
    assert ran.stdout == b"seeded\n" and "Type the branch name" not in ran.stderr
    [made] = cp.checkpoints(world.app)
    assert made.branch_id == dev.branch.id and made.branch_name == "dev"

    refused = await guard(world, "--yes", "--", "npx", "prisma", "migrate", "reset", "--force", env=env)
    assert refused.code == 2 and "migrate reset" in refused.stderr and "--allow-default" in refused.stderr


async def test_interrupted_while_the_checkpoint_is_made_names_it_and_never_runs_the_command(
    world: World,
) -> None:
    from recovery_wizard.sandbox.faults import parse_fault

    marker = world.app / "ran.txt"
    stall = parse_fault("POST /projects/*/branches=stall:seconds=20")
    world.sandbox.app.faults[:] = [stall]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recovery_wizard",
        "guard",
        *ALLOW,
        "--",
        sys.executable,
        "-c",
        f"open({str(marker)!r}, 'w')",
        cwd=world.app,
        env=world.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = b""
    while b"going ahead" not in seen:
        seen += await asyncio.wait_for(proc.stderr.readline(), 60)
    # The POST is in flight, stalled: the sandbox (in this process) has counted it.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while stall.seen == 0:
        assert loop.time() < deadline, "the checkpoint's POST never reached the sandbox"
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    err = seen.decode() + (await asyncio.wait_for(proc.stderr.read(), 60)).decode()
    code = await proc.wait()
    world.sandbox.app.faults.clear()

    assert code == 3, err
    assert "while making the checkpoint guard-" in err and "expires by itself" in err
    assert "nothing was changed" not in err
    assert not marker.exists()
    assert cp.checkpoints(world.app) == []  # never confirmed made: not offered as a restore point


async def test_without_a_key_a_destructive_command_is_refused_and_others_run_with_a_warning(
    world: World,
) -> None:
    no_key = {"NEON_API_KEY": ""}
    refused = await guard(
        world, "--yes", "--", "npx", "prisma", "db", "execute", "--file", "x.sql", env=no_key
    )
    assert refused.code == 2 and "NEON_API_KEY" in refused.stderr and "--no-checkpoint" in refused.stderr

    ran = await guard(world, "--", sys.executable, "-c", "print('ok')", env=no_key)
    assert ran.code == 0, ran.stderr
    assert ran.stdout == b"ok\n" and "No checkpoint" in ran.stderr
    assert cp.checkpoints(world.app) == []


async def test_the_homecheff_incident_replayed_as_a_guarded_psql_migration(world: World) -> None:
    """The incident's own migration, run with `psql -f` against a branch holding the data as it was."""
    from datetime import UTC, datetime, timedelta

    from recovery_wizard.pgtools import find_tools
    from recovery_wizard.sandbox.scenarios.homecheff import INCIDENT_MIGRATION

    project = world.sandbox.project_id
    healthy = await world.client.create_branch(
        project,
        parent_id=world.main.id,
        name="before-incident",
        parent_timestamp=datetime.now(UTC) - timedelta(minutes=35),
    )
    await world.client.wait_for_operations(project, healthy.operations)
    uri = await world.client.connection_uri(
        project, branch_id=healthy.branch.id, database_name="neondb", role_name="neondb_owner"
    )
    before = await asyncio.to_thread(count_users, uri.reveal())
    (world.app / "migration.sql").write_text(INCIDENT_MIGRATION)
    psql = str(find_tools(15).psql)

    ran = await guard(
        world, *ALLOW, "--", psql, uri.reveal(), "-v", "ON_ERROR_STOP=1", "-q", "-f", "migration.sql"
    )

    assert ran.code == 0, ran.stderr
    assert "psql -f" in ran.stderr and "before-incident" in ran.stderr
    [made] = cp.checkpoints(world.app)
    assert made.branch_id == healthy.branch.id and made.lost == ("User",)
    assert "DATA LOSS" in ran.stderr and made.restore_command in ran.stderr
    assert await asyncio.to_thread(count_users, uri.reveal()) == 2  # the admins the migration kept
    assert await read_checkpoint_users(world, made.id) == before > 10
    assert not world.leaked(ran.stderr, journal_texts(world.app))
