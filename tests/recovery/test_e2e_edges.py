"""Secrets at the edges of a real run: a key with a newline, an API URL with a password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from recovery_wizard.recovery.journal import list_runs
from tests.recovery.conftest import World


def run_files(world: World) -> str:
    return "\n".join(
        path.read_text()
        for run in list_runs(world.app)
        for path in run.rglob("*")
        if path.is_file() and path.suffix in (".jsonl", ".md")
    )


async def test_a_key_with_a_trailing_newline_just_works(world: World) -> None:
    """`NEON_API_KEY=$(cat key)` style: the newline is dropped, not retried for half a minute as "network"."""
    # Success is the proof: every retry of a key httpx refuses would fail the same way, and the run with it.
    result = await world.cli(
        "branches", "--json", extra_env={"NEON_API_KEY": world.env["NEON_API_KEY"] + "\n"}
    )
    assert result.code == 0, result.stderr
    assert "main" in result.stdout


async def test_a_key_with_a_space_inside_is_refused_at_once(world: World) -> None:
    key = world.env["NEON_API_KEY"]
    result = await world.cli("branches", "--json", extra_env={"NEON_API_KEY": key[:8] + " " + key[8:]})
    assert result.code == 2, result.stderr
    assert "space or a control character" in result.stderr
    assert key[8:] not in result.stdout + result.stderr


async def test_an_api_url_password_is_masked_in_the_journal_and_report(world: World) -> None:
    parts = urlsplit(world.url)
    with_password = urlunsplit(parts._replace(netloc=f"proxyuser:Pr0xy-pw-9d2e@{parts.netloc}"))
    result = await world.cli("drill", "--yes", "--json", "--at", "35 minutes ago", "--api-url", with_password)
    assert result.code == 0, result.stderr
    written = run_files(world)
    assert "proxyuser:****@" in written  # the URL is still recorded, masked
    assert "Pr0xy-pw-9d2e" not in written + result.stdout + result.stderr


async def test_a_moment_at_the_windows_old_edge_is_refused_naming_the_earliest_safe_one(world: World) -> None:
    """It used to be warned about, then failed at Neon with a resume hint that could never succeed."""
    project = await world.client.project(world.sandbox.project_id)
    days = (project.history_retention_seconds or 0) // 86400
    assert days >= 1
    names = await world.branch_names()
    env_before = (world.app / ".env").read_bytes()
    result = await world.cli("restore", "--yes", "--json", "--at", f"{days} days ago")
    assert result.code == 2, result.stderr
    assert "earliest safe moment" in result.stderr
    assert "--resume" not in result.stderr
    assert result.json()["status"] == "refused"
    assert await world.branch_names() == names
    assert (world.app / ".env").read_bytes() == env_before
    assert list_runs(world.app) == []


@pytest.mark.parametrize(
    "name",
    [
        "fix\n## Restored by someone else",
        "x\r\ny",
        "tab\there",
        "esc\x1b[2Jclear",
        "zero\u200bwidth",
        " padded",
    ],
)
async def test_a_branch_name_neon_would_not_show_cleanly_is_refused_before_anything(
    world: World, name: str
) -> None:
    names = await world.branch_names()
    result = await world.cli("restore", "--yes", "--json", "--at", "35 minutes ago", "--name", name)
    assert result.code == 2, result.stderr
    assert "--name" in result.stderr
    assert result.json()["status"] == "refused"
    assert await world.branch_names() == names
    assert list_runs(world.app) == []
