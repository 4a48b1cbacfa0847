"""The backups directory: where it is, whether it may be written, what the files are called, what is in it."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from recovery_wizard.recovery.backup.atomic import stale_partials
from recovery_wizard.recovery.backup.errors import BackupDirError
from recovery_wizard.recovery.backup.manifest import SUFFIX, Manifest, read_manifest

DEFAULT_DIR = "backups"
DUMP_SUFFIX = ".dump"
STAMP = "%Y%m%dT%H%M%SZ"


def resolve_dir(workdir: Path, given: str | Path | None) -> Path:
    """``--dir`` (relative to the app directory) or ``<app dir>/backups``."""
    path = Path(given) if given else Path(DEFAULT_DIR)
    return path if path.is_absolute() else workdir / path


def check_dir(directory: Path, *, create: bool) -> Path:
    """The directory, made (0700) if ``create`` and missing; refused when it is a symlink or not writable.

    A symlink is refused because the files are private (0600) dumps of a whole database: a link someone can
    re-point would send the next one wherever they chose.
    """
    if directory.is_symlink():
        raise BackupDirError(
            f"The backups directory {directory} is a symlink; backups are not written through one.",
            hint=f"Pass the real directory with --dir {os.path.realpath(directory)} (if that is intended).",
        )
    if not directory.exists():
        if not create:
            return directory
        try:
            directory.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise BackupDirError(
                f"The backups directory {directory} could not be made: {exc.strerror or exc}.",
                hint="Pass a directory you can write with --dir.",
            ) from None
    if not directory.is_dir():
        raise BackupDirError(
            f"{directory} is not a directory.", hint="Pass a directory with --dir (it is made if missing)."
        )
    if create and not _writable(directory):
        raise BackupDirError(
            f"The backups directory {directory} is not writable.",
            hint="Fix its permissions, or pass another directory with --dir.",
        )
    return directory


def _writable(directory: Path) -> bool:
    # A real write, not os.access: access() says yes to root on a read-only filesystem.
    probe = directory / f".write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()
    return True


def safe_name(name: str) -> str:
    """A branch name as a file-name part: letters, digits, ``.``, ``_`` and ``-``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return cleaned[:80] or "branch"


def file_name(branch_name: str, at: datetime) -> str:
    """``<branch>-<UTC yyyymmddThhmmssZ>.dump``: names of one branch sort by time."""
    return f"{safe_name(branch_name)}-{at.astimezone(UTC).strftime(STAMP)}{DUMP_SUFFIX}"


def free_name(directory: Path, branch_name: str, at: datetime) -> Path:
    """A name not yet taken (a second backup in the same second gets ``-2`` before the suffix)."""
    path = directory / file_name(branch_name, at)
    n = 2
    while path.exists() or path.with_name(path.name + SUFFIX).exists():
        path = directory / file_name(branch_name, at).replace(DUMP_SUFFIX, f"-{n}{DUMP_SUFFIX}")
        n += 1
    return path


@dataclass(frozen=True)
class LocalBackup:
    path: Path
    manifest: Manifest

    @property
    def present(self) -> bool:
        return self.path.is_file()


def local_backups(directory: Path) -> list[LocalBackup]:
    """The backups this tool wrote in ``directory`` (by their manifests), newest first.

    A file without one of our manifests is not listed (and so never deleted); a manifest whose file is gone
    is listed with ``present`` false.
    """
    if not directory.is_dir():
        return []
    found = []
    for mpath in directory.glob(f"*{SUFFIX}"):
        file = mpath.with_name(mpath.name[: -len(SUFFIX)])
        manifest = read_manifest(file)
        if manifest is not None:
            found.append(LocalBackup(file, manifest))
    found.sort(key=lambda b: (b.manifest.taken, b.path.name), reverse=True)
    return found


def latest_backup(directory: Path, *, branch: str | None = None) -> LocalBackup | None:
    """The newest backup file present in ``directory`` (of ``branch``, an id or a name, when given): what
    ``--from file:latest`` means. Check it with ``manifest.verify_file`` before loading it."""
    for backup in local_backups(directory):
        if not backup.present:
            continue
        if branch is None or branch in (backup.manifest.branch.get("id"), backup.manifest.branch.get("name")):
            return backup
    return None


def remove_stale_partials(directory: Path) -> list[Path]:
    """Delete temp files of backups that were killed mid-write; they are never a backup."""
    removed = []
    for path in stale_partials(directory):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed
