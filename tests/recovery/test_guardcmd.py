"""Which commands the guard calls destructive, how it echoes them, and how it compares counts."""

from __future__ import annotations

import pytest

from recovery_wizard.recovery.guard import losses
from recovery_wizard.recovery.guardcmd import destructive_reason, echo, url_in
from recovery_wizard.recovery.whereis import TableSize, libpq_url, url_parts


@pytest.mark.parametrize(
    "argv",
    [
        ["npx", "prisma", "migrate", "dev"],
        ["pnpm", "prisma", "migrate", "dev", "--name", "init"],
        ["node_modules/.bin/prisma", "migrate", "reset", "--force"],
        ["yarn", "prisma", "db", "push", "--accept-data-loss"],
        ["bunx", "prisma", "db", "push", "--force-reset"],
        ["npx", "prisma", "db", "execute", "--file", "x.sql"],
        ["psql", "postgresql://h/db", "-f", "x.sql"],
        ["psql", "-fx.sql"],
        ["/usr/bin/psql", "--file=x.sql"],
        ["sh", "-c", "npx prisma migrate reset --force"],
        ["bash", "-lc", "cd app && psql -f drop.sql"],
    ],
)
def test_destructive_commands_are_named(argv: list[str]) -> None:
    assert destructive_reason(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["npx", "prisma", "migrate", "deploy"],
        ["npx", "prisma", "db", "push"],
        ["npx", "prisma", "generate"],
        ["psql", "-c", "select 1"],
        ["node", "scripts/seed.js"],
    ],
)
def test_other_commands_are_not(argv: list[str]) -> None:
    # (A command not listed still asks on the default or a protected branch.)
    assert destructive_reason(argv) is None


def test_echo_masks_passwords_keys_and_secret_options() -> None:
    shown = echo(
        [
            "env",
            "PGPASSWORD=s3cret-planted",
            "psql",
            "postgresql://alex:pw-planted@ep-x.neon.tech/db",
            "--password",
            "hunter2-planted",
            "--token=tok-planted",
            "napi_abcdefgh12345678planted",
        ]
    )
    assert "planted" not in shown
    assert "PGPASSWORD=" in shown and "alex:****@ep-x.neon.tech/db" in shown and "--password" in shown


def test_a_url_on_the_command_line_is_the_target() -> None:
    assert url_in(["psql", "postgresql://a:b@h/db", "-f", "x"]) == "postgresql://a:b@h/db"
    assert url_in(["prisma", "db", "execute", "--url=postgres://h/db"]) == "postgres://h/db"
    assert url_in(["prisma", "migrate", "deploy"]) is None


def test_url_parts_read_neon_hosts_and_raw_passwords() -> None:
    pooled = url_parts("postgresql://alex:a/b@c@ep-cool-1234-pooler.eu-central-1.aws.neon.tech/neondb?x=1")
    assert pooled is not None
    assert pooled.neon_id == "ep-cool-1234" and pooled.neon_pooled and pooled.role == "alex"
    assert pooled.database == "neondb"
    direct = url_parts("postgres://u:p@127.0.0.1:5433/app")
    assert direct is not None and direct.host == "127.0.0.1:5433" and direct.hostname == "127.0.0.1"
    assert direct.neon_id is None and not direct.looks_like_neon
    assert url_parts("not a url") is None


def test_libpq_url_drops_what_only_prisma_reads() -> None:
    url = "postgresql://u:p@h/db?sslmode=require&pgbouncer=true&connection_limit=1&schema=public"
    assert libpq_url(url) == "postgresql://u:p@h/db?sslmode=require"
    assert libpq_url("postgresql://u:p@h/db?pgbouncer=true") == "postgresql://u:p@h/db"


def test_losses_above_the_threshold_and_dropped_tables() -> None:
    before = TableSize(4, [("User", 100), ("Order", 50), ("Session", 10), ("Empty", 0)], exact=True)
    after = TableSize(3, [("User", 89), ("Order", 50), ("Empty", 0)], exact=True)
    found = losses(before, after, 10.0)
    assert [(item.table, item.after) for item in found] == [("Session", None), ("User", 89)]
    assert losses(before, after, 100.0) == []


def test_the_command_must_come_after_a_double_dash() -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "recovery_wizard", "guard", *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )

    missing_dashes = run("npx", "prisma", "migrate", "dev")
    assert missing_dashes.returncode == 2 and "guard -- npx" in missing_dashes.stderr
    nothing = run()
    assert nothing.returncode == 2 and "after --" in nothing.stderr
    bad_expiry = run("--expires", "soon", "--", "true")
    assert bad_expiry.returncode == 2 and "--expires" in bad_expiry.stderr
