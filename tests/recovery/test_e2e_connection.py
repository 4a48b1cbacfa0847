"""How the app connects after a restore: its role is kept or the run refuses; what is left to do by hand is said.

Subprocesses of `recovery-wizard restore` against the sandbox (real PostgreSQL), as in test_e2e_restore.py.
"""

from __future__ import annotations

from pathlib import Path

from recovery_wizard.recovery import envfile
from tests.recovery.conftest import World

AT = ("--at", "35 minutes ago")


def _with_role(url: str, role: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{role}{rest[rest.index(':') :]}"


async def test_a_role_neon_does_not_list_is_refused_by_name_before_any_write(world: World) -> None:
    path = world.app / ".env"
    env = envfile.EnvFile.read(path)
    changes = {key: _with_role(env.get(key) or "", "app_readonly") for key in ("DATABASE_URL", "DIRECT_URL")}
    envfile.write_atomic(env, env.rewritten(changes))
    before, branches = path.read_bytes(), await world.branch_names()

    result = await world.cli("restore", "--yes", "--json", "--no-prisma", *AT)
    assert result.code == 2, result.stderr
    assert "'app_readonly'" in result.stderr and "--role" in result.stderr
    assert path.read_bytes() == before
    assert await world.branch_names() == branches
    assert not world.leaked(result.stdout, result.stderr)


async def test_a_database_the_branch_lacks_is_refused_by_name_before_any_write(world: World) -> None:
    path = world.app / ".env"
    env = envfile.EnvFile.read(path)
    changes = {
        key: (env.get(key) or "").replace("/neondb?", "/shop?") for key in ("DATABASE_URL", "DIRECT_URL")
    }
    envfile.write_atomic(env, env.rewritten(changes))
    before, branches = path.read_bytes(), await world.branch_names()

    result = await world.cli("restore", "--yes", "--json", "--no-prisma", *AT)
    assert result.code == 2, result.stderr
    assert "'shop'" in result.stderr and "--database" in result.stderr
    assert path.read_bytes() == before
    assert await world.branch_names() == branches


async def test_variables_with_different_roles_are_refused_unless_role_says_which(world: World) -> None:
    path = world.app / ".env"
    env = envfile.EnvFile.read(path)
    envfile.write_atomic(
        env, env.rewritten({"DATABASE_URL": _with_role(env.get("DATABASE_URL") or "", "app_rw")})
    )
    before = path.read_bytes()

    refused = await world.cli("restore", "--yes", "--no-prisma", "--dry-run", *AT)
    assert refused.code == 2, refused.stderr
    assert "'app_rw'" in refused.stderr and "'neondb_owner'" in refused.stderr and "--role" in refused.stderr

    told = await world.cli(
        "restore", "--yes", "--json", "--no-prisma", "--dry-run", "--role", "neondb_owner", *AT
    )
    assert told.code == 0, told.stderr
    assert any("'app_rw'" in w and "'neondb_owner'" in w and "--role" in w for w in told.json()["warnings"])
    assert path.read_bytes() == before


async def test_a_raw_slash_in_the_current_password_is_not_read_as_the_database(world: World) -> None:
    path = world.app / ".env"
    env = envfile.EnvFile.read(path)
    changes = {}
    for key in ("DATABASE_URL", "DIRECT_URL"):
        url = env.get(key) or ""
        scheme, _, rest = url.partition("://")
        user, _, location = rest.partition(":")
        changes[key] = f"{scheme}://{user}:x/planted#pw{location[location.index('@') :]}"
    envfile.write_atomic(env, env.rewritten(changes))

    result = await world.cli("restore", "--yes", "--json", "--no-prisma", "--dry-run", *AT)
    assert result.code == 0, result.stderr
    assert result.json()["warnings"] == [] or all("planted" not in w for w in result.json()["warnings"])
    assert "planted" not in result.stdout + result.stderr


async def test_only_prisma_env_says_nothing_is_repointed_and_what_is_left_by_hand(world: World) -> None:
    (world.app / "prisma").mkdir(exist_ok=True)
    (world.app / ".env").rename(world.app / "prisma" / ".env")
    before = (world.app / "prisma" / ".env").read_bytes()

    result = await world.cli("restore", "--yes", "--json", "--no-prisma", *AT)
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "done" and out["env_files"] == []
    loud = [w for w in out["warnings"] if w.startswith("NOTHING WILL BE REPOINTED")]
    assert len(loud) == 1 and "prisma/.env" in loud[0] and "--env-file prisma/.env" in loud[0]
    assert "NOTHING WILL BE REPOINTED" in result.stderr  # in the plan, before anything happens
    todo = out["left_by_hand"]
    assert any(line.startswith("No env file was repointed") for line in todo)
    assert any("hosting provider's environment variables" in line and "redeploy" in line for line in todo)
    assert (world.app / "prisma" / ".env").read_bytes() == before
    report = Path(out["report"]).read_text()
    assert "## Left to do by hand" in report and "No env file was repointed" in report
    assert not world.leaked(result.stdout, result.stderr, report)


async def test_an_overriding_env_local_is_a_warning_and_left_by_hand(world: World) -> None:
    direct = envfile.EnvFile.read(world.app / ".env").get("DIRECT_URL")
    (world.app / ".env.local").write_text(f'DATABASE_URL="{direct}"\n')

    result = await world.cli("restore", "--yes", "--no-prisma", *AT)
    assert result.code == 0, result.stderr
    assert "DATABASE_URL WILL NOT BE REPOINTED" in result.stderr  # the plan's warning, loud
    summary = result.stdout
    assert "Left to do by hand:" in summary
    assert "also sets DATABASE_URL" in summary.split("Left to do by hand:")[1]
    assert "hosting provider's environment variables" in summary
    assert not world.leaked(result.stdout, result.stderr)


async def test_json_carries_warnings_and_an_in_place_restore_leaves_nothing_by_hand(world: World) -> None:
    result = await world.cli("restore", "--yes", "--json", "--no-prisma", "--strategy", "in-place", *AT)
    assert result.code == 0, result.stderr
    out = result.json()
    assert isinstance(out["warnings"], list)
    assert out["left_by_hand"] == []
    assert "## Left to do by hand" not in Path(out["report"]).read_text()


async def test_a_failed_verification_leaves_nothing_to_repoint_by_hand(world: World) -> None:
    check = 'SELECT count(*) >= 100 FROM "User"'
    result = await world.cli("restore", "--yes", "--json", "--no-prisma", "--check", check, *AT)
    assert result.code == 4, result.stderr
    out = result.json()
    assert out["status"] == "verification-failed" and out["restore_branch"] is not None
    assert out["left_by_hand"] == []  # the restored data failed its check: pointing the app at it is wrong
    assert "## Left to do by hand" not in Path(out["report"]).read_text()
