"""One run at a time per app directory: the lock, who holds it, and that a dead holder holds nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recovery_wizard.recovery.lock import AppLock, LockedError, holder_of

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from recovery_wizard.recovery.lock import AppLock\n"
    "lock = AppLock(Path(sys.argv[1]), command='restore').acquire()\n"
    "lock.set_run('20261121T010203Z-abcdef')\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


def _holder(workdir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(workdir)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        with pytest.raises(LockedError) as refused:
            AppLock(tmp_path, command="drill").acquire()
        message = str(refused.value)
        assert f"pid {proc.pid}" in message
        assert "`recovery-wizard restore`" in message
        assert "run 20261121T010203Z-abcdef" in message
        assert socket.gethostname() in message and "since 20" in message
        assert "Nothing was written" in message and refused.value.hint
        assert holder_of(tmp_path) == refused.value.holder
    finally:
        proc.kill()
        proc.wait()


def test_a_sigkilled_holder_holds_nothing(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((tmp_path / ".recovery-wizard" / "lock").read_text())["pid"] == proc.pid  # still there
    assert holder_of(tmp_path) is None
    with AppLock(tmp_path, command="restore") as lock:
        assert lock.held
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_one_process_cannot_take_it_twice_and_release_frees_it(tmp_path: Path) -> None:
    first = AppLock(tmp_path, command="restore").acquire()
    with pytest.raises(LockedError):
        AppLock(tmp_path, command="env rollback").acquire()
    first.release()
    assert not first.held and first.path.read_text() == ""
    with AppLock(tmp_path, command="env rollback"):
        pass
    assert (tmp_path / ".recovery-wizard" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_children_do_not_inherit_it(tmp_path: Path) -> None:
    """A child that outlives us (Prisma's engine) must not keep the directory locked."""
    with AppLock(tmp_path, command="restore"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], close_fds=False)
    try:
        time.sleep(0.1)
        assert holder_of(tmp_path) is None
    finally:
        child.kill()
        child.wait()
