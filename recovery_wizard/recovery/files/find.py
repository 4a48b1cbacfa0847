"""Find the team's own backups where people keep them, newest first, each placed against the incident.

Looked in: the app directory, its ``backups`` and ``prisma`` folders, ``~/Downloads``, ``~/Desktop`` and any
directories given. Bounded depth; ``node_modules``, ``.git`` and other tool folders skipped; a symlinked
folder is never entered, and a symlinked file is used only when it resolves inside a searched directory (a
link out of them is listed as skipped, naming where it points). Every file is recognised by its first bytes
(4 KiB; a 50,000-file tree is searched in about a second), and only likely ones are examined further
(``detect.examine``: the archive's header, the SQL's first 64 KiB, the JSON's keys).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from recovery_wizard.recovery.backup.manifest import SUFFIX as MANIFEST_SUFFIX
from recovery_wizard.recovery.files import archive, streams
from recovery_wizard.recovery.files.detect import BackupInfo, examine

DEFAULT_DEPTH: Final = 4
SKIP_DIRS: Final = frozenset(
    {
        "node_modules",
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".venv",
        "venv",
        ".next",
        ".nuxt",
        ".cache",
        ".turbo",
        "dist",
        ".pnpm-store",
        ".yarn",
    }
)
_SNIFF: Final = 4096
_SQLISH: Final = re.compile(
    rb"^--\s*\n--\s*PostgreSQL database|^\s*(?:INSERT\s+INTO|COPY\s)", re.MULTILINE | re.IGNORECASE
)


def default_dirs(app_dir: Path) -> list[Path]:
    home = Path.home()
    return [app_dir, app_dir / "backups", app_dir / "prisma", home / "Downloads", home / "Desktop"]


@dataclass
class Found:
    info: BackupInfo
    # Positive: taken this long before the incident; negative: after it (likely holds the damage).
    before_incident_seconds: float | None = None

    @property
    def after_incident(self) -> bool:
        return self.before_incident_seconds is not None and self.before_incident_seconds < 0

    def to_json(self) -> dict[str, Any]:
        out = self.info.to_json()
        out["before_incident_seconds"] = self.before_incident_seconds
        out["likely_damaged"] = self.after_incident
        return out


@dataclass
class FindResult:
    found: list[Found]
    searched: list[Path]
    skipped: list[str] = field(default_factory=list)
    files_seen: int = 0
    seconds: float = 0.0
    incident: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "backups": [f.to_json() for f in self.found],
            "searched": [str(p) for p in self.searched],
            "skipped": self.skipped,
            "files_seen": self.files_seen,
            "seconds": round(self.seconds, 3),
            "incident": self.incident.isoformat() if self.incident else None,
        }


def _likely(head: bytes) -> bool:
    if head.startswith(archive.MAGIC) or streams.compression_of(head):
        return True
    if len(head) >= 512 and head[257:262] == b"ustar" and head[:8] == b"toc.dat\x00":
        return True
    stripped = head.lstrip()
    if stripped.startswith(b"{"):
        return b'"data"' in head or b'"timestamp"' in head or b'"stats"' in head or len(head) == _SNIFF
    if b"\x00" in head:
        return False
    # Substring tests first (memchr-fast); the regex (~20 µs on 4 KiB) only for the few that pass.
    lowered = head.lower()
    if b"insert" not in lowered and b"copy" not in lowered and b"postgresql database" not in lowered:
        return False
    return _SQLISH.search(head) is not None


def _walk(
    root: Path, roots: list[Path], depth: int, skipped: list[str]
) -> Iterator[tuple[str, str, bytes | None]]:
    """(path, real path, first bytes) of files; (directory, directory, None) for a pg_dump directory archive.

    Strings, not Paths, until a file looks like a backup: at 50,000 files pathlib's parsing is most of the
    cost. Roots are resolved and symlinked folders never entered, so only a symlinked file needs resolving.
    """
    stack: list[tuple[str, int]] = [(str(root), 0)]
    while stack:
        directory, level = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        if level > 0 and any(e.name == "toc.dat" for e in entries):
            yield directory, directory, None
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if level < depth and entry.name not in SKIP_DIRS:
                        stack.append((entry.path, level + 1))
                    continue
                real = entry.path
                if entry.is_symlink():
                    target = Path(entry.path).resolve()
                    if not any(target == r or r in target.parents for r in roots):
                        skipped.append(f"{entry.path} (a link to {target}, outside the searched directories)")
                        continue
                    if not target.is_file():
                        continue
                    real = str(target)
                elif not entry.is_file(follow_symlinks=False):
                    continue
                if entry.name.endswith(MANIFEST_SUFFIX):
                    continue
                with open(entry.path, "rb") as stream:
                    head = stream.read(_SNIFF)
            except OSError:
                continue
            if len(head) >= 16:
                yield entry.path, real, head


def find_backups(
    dirs: Iterable[Path],
    *,
    incident: datetime | None = None,
    depth: int = DEFAULT_DEPTH,
    checksum: bool = True,
) -> FindResult:
    """Every backup under ``dirs`` (missing ones ignored), newest first."""
    started = time.monotonic()
    roots: list[Path] = []
    given_files: list[Path] = []
    for given in dirs:
        with_home = Path(given).expanduser()
        if with_home.is_dir() and with_home.resolve() not in roots:
            roots.append(with_home.resolve())
        elif with_home.is_file():
            given_files.append(with_home)  # a file named on the command line is looked at as it is
    skipped: list[str] = []
    seen: set[str] = set()
    infos: list[BackupInfo] = []
    files = 0
    for path in given_files:
        files += 1
        if str(path.resolve()) not in seen:
            seen.add(str(path.resolve()))
            if (info := examine(path, checksum=checksum)) is not None:
                infos.append(info)
    for root in roots:
        if (root / "toc.dat").is_file():
            candidates: Iterable[tuple[str, str, bytes | None]] = [(str(root), str(root), None)]
        else:
            candidates = _walk(root, roots, depth, skipped)
        for name, real, head in candidates:
            files += 1
            if real in seen or (head is not None and not _likely(head)):
                continue
            seen.add(real)
            info = examine(Path(name), checksum=checksum)
            if info is not None:
                infos.append(info)
    epoch = datetime.min.replace(tzinfo=UTC)
    infos.sort(key=lambda i: (i.taken_at or epoch, str(i.path)), reverse=True)
    found = [
        Found(i, (incident - i.taken_at).total_seconds() if incident and i.taken_at else None) for i in infos
    ]
    return FindResult(found, roots, sorted(set(skipped)), files, time.monotonic() - started, incident)


# --- showing ------------------------------------------------------------------------------------------


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def render(result: FindResult, *, zone: Any, base: Path | None = None) -> str:
    from datetime import timedelta

    from recovery_wizard.recovery.timepoint import human_duration

    lines: list[str] = []
    if not result.found:
        lines.append("No backups found in: " + ", ".join(str(p) for p in result.searched) + ".")
        lines.append("Give the folder that holds them: recovery-wizard backups find DIR")
    else:
        head = f"{len(result.found)} backup(s), newest first"
        if result.incident is not None:
            head += f"; incident at {result.incident.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}"
        lines.append(head + ":")
    for item in result.found:
        info = item.info
        when = (
            info.taken_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
            if info.taken_at
            else "unknown time"
        )
        if info.taken_at_is_fallback:
            when += " (file time: the file does not say when it was taken)"
        where = str(info.path)
        if base is not None:
            with contextlib.suppress(ValueError):
                where = str(info.path.relative_to(base))
        lines.append(f"  {when}  {info.label}, {_size(info.size)}  {where}")
        if item.before_incident_seconds is not None:
            delta = human_duration(timedelta(seconds=abs(item.before_incident_seconds)))
            if item.after_incident:
                lines.append(f"      {delta} AFTER the incident: likely holds the damage")
            else:
                lines.append(f"      {delta} before the incident")
        details = []
        if info.database:
            details.append(f"database {info.database}")
        if info.server_version:
            details.append(f"PostgreSQL {info.server_version.split()[0]}")
        if info.tables:
            shown = [
                f"{name} ({rows})" if rows is not None else name
                for name, rows in list(info.tables.items())[:6]
            ]
            more = f" … {len(info.tables) - 6} more" if len(info.tables) > 6 else ""
            details.append("tables: " + ", ".join(shown) + more)
        if details:
            lines.append("      " + "; ".join(details))
        for part in info.partial:
            lines.append(f"      partial: {part}")
        if info.problem:
            lines.append(f"      CANNOT BE LOADED: {info.problem}. {info.hint}".rstrip())
    for skipped in result.skipped:
        lines.append(f"  skipped {skipped}")
    return "\n".join(lines)
