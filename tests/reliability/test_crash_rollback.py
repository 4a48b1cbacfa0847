"""`env rollback` after a kill at every checkpoint of a restore with `.env`.

SIGKILL `restore` right after (``RECOVERY_WIZARD_CRASH_AT``) or right before (``RECOVERY_WIZARD_CRASH_BEFORE``)
each journal record; "before" the env file's ``done`` record is the gap between the swap and its record. Then:

- resume, then `env rollback`: the `.env` must be byte for byte what it was before the restore;
- or `env rollback` straight after the kill: either it puts the file back, or it says there is nothing to
  roll back and the file was never changed. Never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import Shared, count
from tests.reliability.test_crash_resume import N_RECORDS, RESTORE

CHECKPOINTS = [(when, n) for n in range(1, N_RECORDS + 1) for when in ("before", "after")]


def _crash_env(when: str, n: int) -> dict[str, str]:
    return {("RECOVERY_WIZARD_CRASH_AT" if when == "after" else "RECOVERY_WIZARD_CRASH_BEFORE"): str(n)}


@pytest.mark.parametrize(("when", "crash_at"), CHECKPOINTS)
async def test_rollback_after_kill_and_resume(
    shared: Shared, tmp_path: Path, when: str, crash_at: int
) -> None:
    count("crash_rollback:killed, resumed and rolled back")
    app = shared.make_app(tmp_path)
    original = (app / ".env").read_bytes()
    killed = await shared.cli(
        app, *RESTORE, "--name", f"rb-{when}-{crash_at}", extra_env=_crash_env(when, crash_at)
    )
    assert killed.code == -9, (killed.code, killed.stderr)

    resumed = await shared.cli(app, "restore", "--yes", "--json", "--resume")
    assert resumed.code in (0, 2), resumed.stderr
    assert "Traceback" not in resumed.stderr

    rolled = await shared.cli(app, "env", "rollback", "--yes", "--json")
    assert "Traceback" not in rolled.stderr, rolled.stderr
    if when == "before" and crash_at == 1:
        # Killed before the run's first record: nothing ran, nothing to resume or roll back.
        assert rolled.code == 2, rolled.stderr
    else:
        assert rolled.code == 0, rolled.stderr
    assert (app / ".env").read_bytes() == original


@pytest.mark.parametrize(("when", "crash_at"), CHECKPOINTS)
async def test_rollback_straight_after_kill(shared: Shared, tmp_path: Path, when: str, crash_at: int) -> None:
    count("crash_rollback:killed then rolled back without resuming")
    app = shared.make_app(tmp_path)
    original = (app / ".env").read_bytes()
    killed = await shared.cli(
        app, *RESTORE, "--name", f"rbk-{when}-{crash_at}", extra_env=_crash_env(when, crash_at)
    )
    assert killed.code == -9, (killed.code, killed.stderr)
    changed = (app / ".env").read_bytes() != original

    rolled = await shared.cli(app, "env", "rollback", "--yes", "--json")
    assert "Traceback" not in rolled.stderr, rolled.stderr
    if changed:
        assert rolled.code == 0, rolled.stderr
    else:
        assert rolled.code == 2, rolled.stderr
        assert "changed no env file" in rolled.stderr or "No run" in rolled.stderr
    assert (app / ".env").read_bytes() == original
