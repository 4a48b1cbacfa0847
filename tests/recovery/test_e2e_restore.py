"""`recovery-wizard restore`, `drill`, `branches` and `env rollback` as subprocesses against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recovery_wizard.recovery import envfile
from recovery_wizard.recovery.journal import list_runs
from tests.recovery.conftest import World


def standin_calls(app: Path) -> list[dict[str, object]]:
    log = app / ".prisma-standin.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_files(app: Path) -> str:
    """Everything the runs wrote (journals, reports), for secret scans."""
    texts = []
    for run in list_runs(app):
        for path in run.rglob("*"):
            if path.is_file() and path.suffix in (".jsonl", ".md"):
                texts.append(path.read_text())
    return "\n".join(texts)


async def test_restore_brings_the_users_back_and_points_the_app_at_them(world: World) -> None:
    before = (world.app / ".env").read_bytes()
    result = await world.cli("restore", "--yes", "--json", "--at", "35 minutes ago")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "done"
    assert out["strategy"] == "new-branch"
    assert out["restore_point"].endswith("Z")
    restored = out["restore_branch"]
    assert restored["name"].startswith("main-restore-")
    assert restored["name"] in await world.branch_names()

    env = envfile.EnvFile.read(world.app / ".env")
    pooled, direct = env.get("DATABASE_URL"), env.get("DIRECT_URL")
    assert pooled is not None and direct is not None
    assert pooled.endswith("&pgbouncer=true&connect_timeout=15")  # the old URL's extra parameters are kept
    # Neon's own parameters, as the sandbox gives them out: verify, Prisma and the checks below all connect
    # with them (TLS, SCRAM bound to the channel).
    assert "?sslmode=require&channel_binding=require" in pooled and direct.endswith(
        "&channel_binding=require"
    )
    assert pooled != direct
    assert await world.users(direct) >= 14
    assert await world.users(pooled.split("&pgbouncer")[0]) >= 14
    assert env.get("NEXTAUTH_SECRET") == "s3cr3t-next-auth"
    assert out["env_files"][0]["variables"] == ["DATABASE_URL", "DIRECT_URL"]
    backup = Path(out["env_files"][0]["backup"])
    assert backup.read_bytes() == before
    assert backup.stat().st_mode & 0o777 == 0o600

    calls = standin_calls(world.app)
    commands = [" ".join(c["argv"][1:3]) for c in calls]  # type: ignore[index]
    assert "db pull" in commands
    assert "generate" in commands

    report = Path(out["report"]).read_text()
    assert "Incident record" in report
    assert restored["id"] in report
    assert "User" in report and "env rollback" in report
    assert out["lost_writes"], "the writes after the incident are listed"
    assert not world.leaked(result.stdout, result.stderr, report, run_files(world.app))
    assert (world.app / ".recovery-wizard" / ".gitignore").read_text().strip().endswith("*")


async def test_drill_restores_verifies_and_cleans_up(world: World) -> None:
    before = (world.app / ".env").read_bytes()
    names = await world.branch_names()
    result = await world.cli(
        "drill", "--yes", "--json", "--at", "35 minutes ago", "--check", 'SELECT count(*) >= 10 FROM "User"'
    )
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "done"
    assert out["deleted"] is True
    assert out["checks"][0]["passed"] is True
    assert await world.branch_names() == names
    assert (world.app / ".env").read_bytes() == before
    assert standin_calls(world.app) == []
    assert "Restore drill" in Path(out["report"]).read_text()


async def test_env_rollback_puts_the_file_back_byte_for_byte(world: World) -> None:
    before = (world.app / ".env").read_bytes()
    assert (await world.cli("restore", "--yes", "--at", "35 minutes ago", "--no-prisma")).code == 0
    assert (world.app / ".env").read_bytes() != before
    rolled = await world.cli("env", "rollback", "--json")
    assert rolled.code == 0, rolled.stderr
    assert (world.app / ".env").read_bytes() == before
    again = await world.cli("env", "rollback")
    assert again.code == 2
    assert "already" in again.stderr or "No run" in again.stderr


async def test_env_rollback_refuses_when_the_file_was_edited_after(world: World) -> None:
    assert (await world.cli("restore", "--yes", "--at", "35 minutes ago", "--no-prisma")).code == 0
    env = world.app / ".env"
    edited = env.read_text() + "FEATURE_FLAG=on\n"
    env.write_text(edited)
    result = await world.cli("env", "rollback")
    assert result.code == 2
    assert "changed after" in result.stderr
    assert env.read_text() == edited


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--at", "in 2 hours"], ""),
        (["--at", "2030-01-01 10:00"], "future"),
        (["--at", "10 days ago"], "oldest restorable"),
        (
            ["--at", "35 minutes ago", "--strategy", "in-place", "--branch", "preview/checkout-redesign"],
            "root",
        ),
        (["--at", "35 minutes ago", "--check", 'DELETE FROM "User"'], "read-only"),
        (["--at", "35 minutes ago", "--branch", "no-such-branch"], "no branch"),
        ([], "--at"),
        (["--at", "35 minutes ago", "--tz", "Mars/Olympus_Mons"], "Mars/Olympus_Mons"),
        (["--at", "35 minutes ago", "--env-file", "missing.env"], "missing.env"),
    ],
)
async def test_refusals_exit_2_and_change_nothing(world: World, args: list[str], words: str) -> None:
    before_env = (world.app / ".env").read_bytes()
    names = await world.branch_names()
    result = await world.cli("restore", "--yes", "--json", *args)
    assert result.code == 2, (result.stdout, result.stderr)
    assert words in result.stderr
    assert result.json()["status"] == "refused"
    assert await world.branch_names() == names
    assert (world.app / ".env").read_bytes() == before_env
    assert list_runs(world.app) == []


async def test_a_refused_api_key_exits_2(world: World) -> None:
    result = await world.cli(
        "restore", "--yes", "--at", "35 minutes ago", extra_env={"NEON_API_KEY": "napi_nope"}
    )
    assert result.code == 2
    assert "API key was refused" in result.stderr


async def test_failed_verification_exits_4_without_touching_env(world: World) -> None:
    before = (world.app / ".env").read_bytes()
    result = await world.cli(
        "restore",
        "--yes",
        "--json",
        "--at",
        "35 minutes ago",
        "--check",
        'SELECT count(*) >= 100 FROM "User"',
    )
    assert result.code == 4, result.stderr
    out = result.json()
    assert out["status"] == "verification-failed"
    assert (world.app / ".env").read_bytes() == before
    assert standin_calls(world.app) == []
    report = Path(out["report"]).read_text()
    assert "FAILED" in report


async def test_in_place_restore_keeps_a_backup_and_the_connection_strings(world: World) -> None:
    before = (world.app / ".env").read_bytes()
    result = await world.cli(
        "restore", "--yes", "--json", "--at", "35 minutes ago", "--strategy", "in-place", "--no-prisma"
    )
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["backup_branch"]["name"].startswith("main_old_")
    assert out["backup_branch"]["name"] in await world.branch_names()
    assert (world.app / ".env").read_bytes() == before
    direct = envfile.EnvFile.read(world.app / ".env").get("DIRECT_URL")
    assert direct is not None
    assert await world.users(direct) >= 14


async def test_dry_run_writes_nothing(world: World) -> None:
    names = await world.branch_names()
    result = await world.cli("restore", "--yes", "--at", "35 minutes ago", "--dry-run")
    assert result.code == 0, result.stderr
    assert "Create the branch" in result.stderr
    assert await world.branch_names() == names
    assert not (world.app / ".recovery-wizard").exists()


async def test_branches_lists_the_project(world: World) -> None:
    result = await world.cli("branches", "--json")
    assert result.code == 0, result.stderr
    names = [b["name"] for b in result.json()["branches"]]
    assert names[0] == "main"
    assert "preview/checkout-redesign" in names
    table = await world.cli("branches")
    assert "default,root" in table.stdout


@pytest.mark.parametrize("crash_at", [2, 4])
async def test_killed_run_resumes_with_exactly_one_restore_branch(world: World, crash_at: int) -> None:
    """SIGKILL after the restore was announced (2) and between the restore and the env write (4)."""
    names = await world.branch_names()
    killed = await world.cli(
        "restore",
        "--yes",
        "--at",
        "35 minutes ago",
        "--no-prisma",
        extra_env={"RECOVERY_WIZARD_CRASH_AT": str(crash_at)},
    )
    assert killed.code == -9
    resumed = await world.cli("restore", "--yes", "--json", "--resume")
    assert resumed.code == 0, resumed.stderr
    out = resumed.json()
    new = sorted(set(await world.branch_names()) - set(names))
    assert new == [out["restore_branch"]["name"]]
    direct = envfile.EnvFile.read(world.app / ".env").get("DIRECT_URL")
    assert direct is not None
    assert await world.users(direct) >= 14
    assert (await world.cli("restore", "--yes", "--resume")).code == 2  # nothing left to resume
