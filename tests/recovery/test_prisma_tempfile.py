"""The pulled schema's temporary copy never stays in the app's tree, not even after a kill.

The schema is replaced by a rename of a fully written copy. Written beside ``schema.prisma``, that copy was
left in ``prisma/`` by a run killed before the rename, where ``git add -A`` would commit it (a schema may
hold a literal URL). It is written in the run's git-ignored directory instead; only a schema on another file
system (where a rename cannot reach) gets its copy beside it, named as ours, and swept once its writer is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recovery_wizard.recovery.journal import ensure_state_dir
from recovery_wizard.recovery.prisma import PullResult, _Hidden, write_pulled

BEFORE = 'datasource db {\n  provider = "postgresql"\n  url      = env("DATABASE_URL")\n}\n'
AFTER = BEFORE + "\nmodel User {\n  id Int @id\n}\n"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _app(tmp_path: Path) -> tuple[Path, Path]:
    """An app in git with a committed schema; the run's backup directory as the runner makes it."""
    app = tmp_path / "app"
    (app / "prisma").mkdir(parents=True)
    schema = app / "prisma" / "schema.prisma"
    schema.write_text(BEFORE)
    _git(app, "init", "-q")
    _git(app, "add", "-A")
    _git(app, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "app")
    backup_dir = ensure_state_dir(app) / "runs" / "20261121T020812Z-abcdef" / "prisma"
    backup_dir.mkdir(parents=True)
    return schema, backup_dir / "schema.prisma.before-db-pull"


def _pulled(schema: Path, backup_path: Path) -> PullResult:
    return PullResult(
        schema_before=BEFORE,
        schema_after=AFTER,
        diff="",
        models=1,
        backup_path=backup_path,
        written=False,
        schema_path=schema,
        _read=_Hidden(BEFORE.encode()),
        _pulled=_Hidden(AFTER),
    )


def test_a_run_killed_before_the_rename_leaves_nothing_in_the_app_to_commit(tmp_path: Path) -> None:
    schema, backup_path = _app(tmp_path)
    # A real process, killed (SIGKILL: no clean-up runs) the moment the copy is complete and about to be renamed.
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from tests.recovery.test_prisma_tempfile import _pulled
        from recovery_wizard.recovery.prisma import write_pulled

        os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        write_pulled(_pulled(Path({str(schema)!r}), Path({str(backup_path)!r})), while_what="while testing")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], check=False)
    assert done.returncode == -9

    assert schema.read_text() == BEFORE
    assert sorted(p.name for p in schema.parent.iterdir()) == ["schema.prisma"]
    assert _git(schema.parent.parent, "status", "--porcelain", "--untracked-files=all") == ""


def test_the_schema_is_written_and_no_copy_is_left_anywhere(tmp_path: Path) -> None:
    schema, backup_path = _app(tmp_path)
    os.chmod(schema, 0o640)
    written = write_pulled(_pulled(schema, backup_path), while_what="while testing")
    assert written.written and schema.read_text() == AFTER
    assert oct(schema.stat().st_mode & 0o777) == oct(0o640)
    assert sorted(p.name for p in schema.parent.iterdir()) == ["schema.prisma"]
    assert list(backup_path.parent.iterdir()) == []
    assert (
        _git(schema.parent.parent, "status", "--porcelain", "--untracked-files=all")
        == " M prisma/schema.prisma\n"
    )


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_schema_on_another_file_system_gets_its_copy_beside_it_and_a_killed_runs_copy_is_swept(
    tmp_path: Path,
) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second file system (/dev/shm) to make the rename cross one")
    schema, _ = _app(tmp_path)
    stage = other / f"rw-test-{os.getpid()}"
    stale = schema.parent / f".schema.prisma.recovery-wizard-{_dead_pid()}-x1y2.tmp"
    stale.write_text("left by a killed run")
    live = schema.parent / f".schema.prisma.recovery-wizard-{os.getpid()}-a1b2.tmp"
    live.write_text("a run still writing")
    try:
        written = write_pulled(
            _pulled(schema, stage / "schema.prisma.before-db-pull"), while_what="while testing"
        )
    finally:
        for leftover in stage.glob("*"):
            leftover.unlink()
        if stage.exists():
            stage.rmdir()
    assert written.written and schema.read_text() == AFTER
    # The killed run's copy is gone, the live one's kept, and this write left none of its own.
    assert sorted(p.name for p in schema.parent.iterdir()) == sorted(["schema.prisma", live.name])
