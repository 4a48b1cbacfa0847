"""Part 3: the planted API key and database password never show up in anything a flow prints or writes.

Every headless flow runs as a subprocess against the shared sandbox, happy paths and error paths alike
(errors are where secrets leak: a driver echoing a conninfo, a refused key quoted back). Its stdout,
stderr, journals, reports and log files are scanned for each planted secret.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.reliability.conftest import Shared, count, run_texts

CANARY = 'SELECT count(*) >= 10 FROM "User"'

FLOWS: dict[str, tuple[list[str], set[int]]] = {
    "restore": (["restore", "--yes", "--json", "--at", "35 minutes ago", "--name", "canary-restore"], {0}),
    "restore --api-key": (
        ["restore", "--yes", "--json", "--at", "35 minutes ago", "--no-prisma", "--name", "canary-flag"],
        {0},
    ),
    "drill": (["drill", "--yes", "--json", "--at", "35 minutes ago", "--check", CANARY], {0}),
    "find-moment": (["find-moment", "--yes", "--json", "--check", CANARY, "--precision", "5m"], {0}),
    "peek": (["peek", "--yes", "--json", "--at", "35 minutes ago", "--sql", CANARY], {0}),
    "peek, failing query": (
        ["peek", "--yes", "--at", "35 minutes ago", "--sql", "SELECT * FROM nope"],
        {1, 2},
    ),
    "timeline": (["timeline", "--yes", "--json", "--incident", "30 minutes ago"], {0}),
    "branches": (["branches", "--json"], {0}),
    "verification fails": (
        [
            "restore",
            "--yes",
            "--json",
            "--at",
            "35 minutes ago",
            "--check",
            'SELECT count(*) >= 100 FROM "User"',
        ],
        {4},
    ),
    "backup": (["backup", "--yes", "--json", "--to", "both", "--keep", "3"], {0}),
    "backup list": (["backup", "list", "--yes"], {0}),
    "backup schedule": (["backup", "schedule", "--yes", "--daily", "7d"], {0}),
    "refused key, backup": (["backup", "--yes", "--json"], {2}),
    "bad --at": (["restore", "--yes", "--json", "--at", "2026-13-45 25:61"], {2}),
    "refused key": (["restore", "--yes", "--json", "--at", "35 minutes ago"], {2}),
    "refused key, peek": (["peek", "--yes", "--at", "35 minutes ago", "--sql", CANARY], {2}),
    "whereis": (["whereis", "--json"], {0}),
    "guard": (["guard", "--yes", "--allow-default", "--", "sh", "-c", "exit 0"], {0}),
    "guard, destructive refused": (["guard", "--yes", "--", "sh", "-c", "psql -f x.sql"], {2}),
    "guard list": (["guard", "list", "--json"], {0}),
    "refused key, whereis": (["whereis", "--json"], {2}),
    "refused key, guard": (["guard", "--yes", "--allow-default", "--", "sh", "-c", "exit 0"], {2}),
}


@pytest.mark.parametrize("flow", list(FLOWS))
async def test_no_secret_in_any_output(shared: Shared, tmp_path: Path, flow: str) -> None:
    args, codes = FLOWS[flow]
    app = shared.make_app(tmp_path)
    planted = list(shared.secrets)
    extra: dict[str, str] = {}
    if flow.startswith("refused key"):
        # A well-formed key the sandbox does not know: it must not be quoted back either.
        wrong = "napi_" + secrets.token_hex(24)
        planted.append(wrong)
        extra["NEON_API_KEY"] = wrong
    if flow == "restore --api-key":
        extra["NEON_API_KEY"] = ""
        args = [*args[:1], "--api-key", shared.api_key, *args[1:]]
    result = await shared.cli(app, *args, extra_env=extra)
    count("secret_canary:flows scanned")
    assert result.code in codes, (result.code, result.stdout, result.stderr)
    texts = [result.stdout, result.stderr, run_texts(app)]
    backups = app / "backups"
    if backups.is_dir():  # manifests and proofs (the dumps themselves hold the database, not the key)
        texts += [p.read_text() for p in backups.iterdir() if p.suffix in (".json", ".jsonl")]
    found = [s for s in planted if any(s in t for t in texts)]
    assert not found, f"{flow}: a planted secret leaked"
    # A mask is fine; the password's first characters in clear would not be.
    for secret in planted:
        assert not any(secret[:12] in t for t in texts), f"{flow}: a prefix of a secret leaked"


# Other services' credentials beside the connection strings, and an old password that is not percent-encoded:
# the masked diff of the env step shows these lines as context and must show none of their values.
NEIGHBOURS = (
    "REDIS_URL=redis://:{c}redis@redis.internal:6379\n"
    "MONGODB_URI='mongodb+srv://app:{c}mongo@cluster0.x.mongodb.net/db'\n"
    "SENTRY_DSN=https://{c}sentry@o123.ingest.sentry.io/42\n"
    "AMQP_URL=amqp://app:{c}amqp@rabbit:5672  # {c}comment\n"
)


@pytest.mark.parametrize("raw", ["pa/ss", "pa#ss", "pa'ss"])
async def test_no_neighbouring_credential_or_raw_password_in_the_env_diff(
    shared: Shared, tmp_path: Path, raw: str
) -> None:
    app = shared.make_app(tmp_path)
    env_path = app / ".env"
    canary = "cnry" + secrets.token_hex(6)
    lines = env_path.read_text().splitlines(keepends=True)
    # The DIRECT_URL's password, written raw (a hand-edited file); the restore asks Neon for new URIs anyway.
    lines = [
        line.replace(":" + line.split(":")[2].split("@")[0] + "@", f":{canary}{raw}@", 1)
        if line.startswith("DIRECT_URL=")
        else line
        for line in lines
    ]
    lines.insert(2, NEIGHBOURS.format(c=canary))
    env_path.write_text("".join(lines))
    result = await shared.cli(
        app,
        "restore",
        "--yes",
        "--json",
        "--no-prisma",
        "--at",
        "35 minutes ago",
        "--name",
        f"canary-{canary}",
    )
    count("secret_canary:env files with neighbours and raw passwords")
    assert result.code == 0, (result.stdout, result.stderr)
    assert "Changes to" in result.stderr  # the diff was shown
    texts = [result.stdout.replace(f"canary-{canary}", ""), result.stderr.replace(f"canary-{canary}", "")]
    texts.append(run_texts(app).replace(f"canary-{canary}", ""))
    assert not any(canary in t for t in texts), "a neighbouring credential or a raw password leaked"
