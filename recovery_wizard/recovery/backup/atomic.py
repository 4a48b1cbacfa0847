"""Writing a file whole or not at all: a temp file beside it, fsync, ``os.replace``, fsync of the directory.

Hand-written (a dozen lines) rather than a dependency: the project already does exactly this for reports
and Prisma files, and the files here must be created 0600 from the first byte (a dump holds every password
hash in the database), which the usual helpers do not promise.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PARTIAL_MARK = ".partial-"


def temp_path(final: Path) -> Path:
    """A hidden temp name beside ``final`` that says whose it is (the pid): a stale one is recognisable."""
    return final.with_name(f".{final.name}{PARTIAL_MARK}{os.getpid()}")


def open_private(path: Path) -> int:
    """Create ``path`` exclusively, mode 0600 whatever the umask, and return its descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    os.fchmod(fd, 0o600)
    return fd


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened and synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """``data`` into ``path`` atomically, mode 0600: readers see the old file or the new one, never half."""
    tmp = temp_path(path)
    fd = open_private(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_partials(directory: Path) -> list[Path]:
    """Temp files left by a backup that was killed (its pid is gone)."""
    found = []
    for path in directory.glob(f".*{PARTIAL_MARK}*"):
        pid_text = path.name.rsplit(PARTIAL_MARK, 1)[-1]
        if pid_text.isdigit() and not pid_alive(int(pid_text)):
            found.append(path)
    return found
