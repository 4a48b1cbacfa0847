"""``--keep``: how many backups, or how old, to keep; and deleting what is past it.

Rules that never bend: only files with one of our manifests are ever deleted (a file someone else put in
the directory is not ours to judge), and the newest backup of each branch is always kept, however old.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from recovery_wizard.recovery.backup.backupdir import LocalBackup, local_backups
from recovery_wizard.recovery.backup.manifest import manifest_path
from recovery_wizard.recovery.outcome import UsageError

_AGE_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE_RE = re.compile(r"^(\d+)\s*(m|min|h|d|w)$")


@dataclass(frozen=True)
class Keep:
    """Keep the newest ``count`` backups, or those younger than ``age`` (one of the two)."""

    count: int | None = None
    age: timedelta | None = None

    def describe(self) -> str:
        if self.count is not None:
            return f"the newest {self.count}"
        assert self.age is not None
        return f"those younger than {_age_text(self.age)}"

    @property
    def option(self) -> str:
        """As ``--keep`` takes it back."""
        if self.count is not None:
            return str(self.count)
        assert self.age is not None
        return _age_text(self.age)


def _age_text(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _AGE_UNITS[unit] == 0:
            return f"{seconds // _AGE_UNITS[unit]}{unit}"
    return f"{seconds // 60}m"


def parse_keep(text: str) -> Keep:
    """``7`` (the newest seven) or ``24h``/``7d``/``2w``/``90m`` (by age)."""
    cleaned = text.strip().lower()
    if cleaned.isdigit():
        if int(cleaned) < 1:
            raise UsageError("--keep 0 would delete every backup.", hint="Keep at least 1 (the newest).")
        return Keep(count=int(cleaned))
    match = _AGE_RE.match(cleaned)
    if match and int(match.group(1)) > 0:
        unit = match.group(2)[0]
        return Keep(age=timedelta(seconds=int(match.group(1)) * _AGE_UNITS[unit]))
    raise UsageError(
        f"Could not read --keep {text!r}.",
        hint="Give a count (--keep 7: the newest seven) or an age (--keep 24h, 7d, 2w, 90m).",
    )


def past_keep(backups: list[LocalBackup], keep: Keep, now: datetime) -> list[LocalBackup]:
    """The backups ``keep`` lets go, per branch and database; never the newest of any."""
    groups: dict[tuple[str, str, str], list[LocalBackup]] = {}
    for backup in backups:  # newest first
        m = backup.manifest
        key = (m.project.get("id", ""), m.branch.get("id", ""), m.database)
        groups.setdefault(key, []).append(backup)
    doomed: list[LocalBackup] = []
    for members in groups.values():
        present = [b for b in members if b.present]
        newest = present[0] if present else None
        for backup in members:
            if backup is newest:
                continue
            # A manifest whose file is gone has nothing left to keep.
            too_many = keep.count is not None and backup.present and present.index(backup) >= keep.count
            too_old = keep.age is not None and now - backup.manifest.taken > keep.age
            if not backup.present or too_many or too_old:
                doomed.append(backup)
    return doomed


def apply_retention(directory: Path, keep: Keep, now: datetime) -> list[Path]:
    """Delete the backups past ``keep`` (file first, then its manifest); the files deleted."""
    removed = []
    for backup in past_keep(local_backups(directory), keep, now):
        # File first: killed between the two, a manifest without its file is cleaned up next time, while a
        # file without its manifest would no longer be ours to delete.
        with contextlib.suppress(FileNotFoundError):
            backup.path.unlink()
        with contextlib.suppress(FileNotFoundError):
            manifest_path(backup.path).unlink()
        removed.append(backup.path)
    return removed
