"""One run at a time per app directory: an exclusive lock that says who holds it.

Every command that writes (``restore``, ``drill``, ``env rollback``, ``find-moment``'s journal, the wizard's
run) holds :class:`AppLock` on ``.recovery-wizard/lock`` for as long as it may write. A second one in the
same directory is refused at once with :class:`LockedError`, naming the holder (pid, command, run id, since
when, host), and writes nothing: two restores 1.5 s apart would otherwise make two branches and repoint
``.env`` twice, and two ``--resume`` would interleave their journal records.

Why ``fcntl.flock`` by hand rather than the ``filelock`` package: the kernel drops an flock when the process
dies, however it dies (SIGKILL, power loss of the session), so a stale lock can never block the next run,
and there is no pid file to judge as stale. ``filelock`` uses the same call, but does not record who holds
the lock, and deletes the file on release, which races with a reader asking who holds it. The holder's
details are written into the locked file itself, after the lock is taken.

Use::

    with AppLock(workdir, command="restore") as lock:
        journal = begin_run(...)
        lock.set_run(journal.run_id)   # so a second run can name it
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from recovery_wizard.errors import RecoveryError

LOCK_FILE = "lock"

try:  # POSIX only; elsewhere the lock is a no-op (the tool targets Linux and macOS)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as the holder wrote it down."""

    pid: int | None
    command: str | None
    run_id: str | None
    since: str | None
    host: str | None

    @classmethod
    def from_text(cls, text: str) -> Holder:
        try:
            raw: dict[str, Any] = json.loads(text) if text.strip() else {}
        except ValueError:
            raw = {}  # being rewritten this very moment
        if not isinstance(raw, dict):
            raw = {}
        pid = raw.get("pid")
        return cls(
            pid=pid if isinstance(pid, int) else None,
            command=_str(raw.get("command")),
            run_id=_str(raw.get("run_id")),
            since=_str(raw.get("since")),
            host=_str(raw.get("host")),
        )

    def describe(self) -> str:
        who = f"`recovery-wizard {self.command}`" if self.command else "another recovery-wizard"
        parts = [f"pid {self.pid}" if self.pid else None]
        if self.host:
            parts.append(f"on {self.host}")
        if self.since:
            parts.append(f"since {self.since}")
        if self.run_id:
            parts.append(f"run {self.run_id}")
        details = ", ".join(p for p in parts if p)
        return f"{who} ({details})" if details else who


def _str(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


class LockedError(RecoveryError):
    """Another recovery-wizard is writing in this app directory."""

    def __init__(self, workdir: Path, holder: Holder) -> None:
        self.holder = holder
        super().__init__(
            f"Another recovery-wizard run is writing in {workdir}: {holder.describe()}. Nothing was written.",
            hint="Wait for it to finish (or stop it with Ctrl-C: it can be resumed), then run this again."
            " Two runs at once would make two restore branches and repoint .env twice.",
        )


class AppLock:
    """An exclusive, non-blocking lock on an app directory, released on exit or when the process dies."""

    def __init__(self, workdir: Path, *, command: str, run_id: str | None = None) -> None:
        self.workdir = workdir
        self.command = command
        self.run_id = run_id
        self.since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        from recovery_wizard.recovery.journal import STATE_DIR

        return self.workdir / STATE_DIR / LOCK_FILE

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> AppLock:
        """Take the lock or raise :class:`LockedError` naming its holder; never waits."""
        from recovery_wizard.recovery.journal import JournalError, ensure_state_dir

        if self._fd is not None:
            return self
        try:
            ensure_state_dir(self.workdir)
            # Never O_TRUNC: the file holds the current holder's details until we own the lock.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise JournalError(
                f"Could not open the lock file {self.path}: {exc.strerror}.",
                hint="Run recovery-wizard from a directory you can write to (your app's directory).",
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = Holder.from_text(_read(fd))
                os.close(fd)
                raise LockedError(self.workdir, holder) from None
            except OSError:
                os.close(fd)
                raise
        self._fd = fd
        self._write()
        return self

    def set_run(self, run_id: str) -> None:
        """Name the run now holding the lock (known only once its journal exists)."""
        self.run_id = run_id
        if self._fd is not None:
            self._write()

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # Emptied, not deleted: deleting would let a third process lock a new file while a second one
        # still holds the old, unlinked one.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the flock

    def _write(self) -> None:
        assert self._fd is not None
        holder = {
            "pid": os.getpid(),
            "command": self.command,
            "run_id": self.run_id,
            "since": self.since,
            "host": socket.gethostname(),
        }
        data = json.dumps(holder, sort_keys=True).encode()
        with contextlib.suppress(OSError):  # the details are a courtesy; the flock is the lock
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)

    def __enter__(self) -> AppLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
    except OSError:
        return ""


def holder_of(workdir: Path) -> Holder | None:
    """Who holds ``workdir``'s lock now, or None when nobody does (for the wizard's first screen)."""
    probe = AppLock(workdir, command="probe")
    if not probe.path.exists():
        return None
    try:
        probe.acquire()
    except LockedError as exc:
        return exc.holder
    probe.release()
    return None
