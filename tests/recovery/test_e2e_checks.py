"""A check that would act on the database outside its tables is refused before anything runs."""

from __future__ import annotations

from tests.recovery.conftest import World


async def test_restore_refuses_a_check_that_would_end_the_apps_session(world: World) -> None:
    """The observed incident: a "read-only" check killed a live app session. Now: exit 2, nothing done."""
    import psycopg

    from recovery_wizard.recovery import envfile

    direct = envfile.EnvFile.read(world.app / ".env").get("DIRECT_URL")
    assert direct is not None
    env_before = (world.app / ".env").read_bytes()
    names = await world.branch_names()
    kill = (
        "SELECT count(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity "
        "WHERE pid <> pg_backend_pid() AND datname = current_database()"
    )
    async with await psycopg.AsyncConnection.connect(direct, autocommit=True) as app_session:
        result = await world.cli("restore", "--yes", "--json", "--at", "35 minutes ago", "--check", kill)
        assert result.code == 2, result.stderr
        assert "pg_terminate_backend()" in result.stderr
        assert "pg_stat_activity" in result.stderr  # what to write instead
        assert result.json()["status"] == "refused"
        row = await (await app_session.execute("SELECT 1")).fetchone()
        assert row == (1,)
    assert await world.branch_names() == names
    assert (world.app / ".env").read_bytes() == env_before
