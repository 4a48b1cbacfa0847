"""What a backup file is, recognised by its CONTENT (never its name), and whether it can be loaded.

Kinds: ``custom`` (``pg_dump -Fc``), ``directory`` (``-Fd``: a folder with ``toc.dat``), ``tar`` (``-Ft``),
``sql`` (``pg_dump``'s plain output or hand-made SQL; plain, gzip or zstd) and ``json`` (the cron-API kind:
``{"success", "timestamp", "stats", "data"}``). Only a bounded prefix is read (the archive's header and
table of contents, the SQL's first 64 KiB, the JSON's keys before ``data``), so a file of several GB is
examined as quickly as a small one; the custom-archive truncation check seeks over data chunks instead of
reading them.

:func:`examine` answers None for a file that is not a backup at all (finding skips those), and a
:class:`BackupInfo` with ``problem`` set for one that is recognisably a backup but cannot be loaded
(truncated, newer than any client here, not matching its manifest). :func:`detect` raises in both cases.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final

from recovery_wizard.recovery.backup import manifest
from recovery_wizard.recovery.files import archive, streams
from recovery_wizard.recovery.outcome import UsageError

SQL_PREFIX: Final = 64 * 1024

# Where taken_at came from, strongest first. Only "file mtime" is a guess.
FROM_MANIFEST: Final = "manifest"
FROM_ARCHIVE: Final = "archive header"
FROM_STARTED_ON: Final = "dump header (Started on)"
FROM_JSON: Final = "JSON timestamp"
FROM_MTIME: Final = "file mtime"


class BackupFileError(UsageError):
    """A backup file that cannot be used, refused before any branch is made (exit 2)."""


@dataclass
class BackupInfo:
    """One recognised backup: what it is, when it was taken, what it holds, and whether it can be loaded."""

    path: Path
    kind: str  # custom | directory | tar | sql | json
    size: int
    taken_at: datetime | None
    taken_at_source: str
    compression: str | None = None  # the FILE's compression (gzip/zstd SQL); archives compress inside
    archive_compression: str | None = None  # inside a pg_dump archive: none, gzip, lz4, zstd
    server_version: str | None = None
    dump_version: str | None = None
    database: str | None = None
    # Table → rows where the file says (manifest, JSON stats); None where only the name is known.
    tables: dict[str, int | None] = field(default_factory=dict)
    from_pg_dump: bool = False
    manifest: Path | None = None
    partial: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problem: str | None = None
    hint: str = ""

    @property
    def taken_at_is_fallback(self) -> bool:
        return self.taken_at_source == FROM_MTIME

    @property
    def loadable(self) -> bool:
        return self.problem is None

    @property
    def label(self) -> str:
        """``pg_dump custom archive``, ``gzip-compressed SQL (pg_dump)``, ``JSON backup`` …"""
        if self.kind in ("custom", "directory", "tar"):
            return f"pg_dump {self.kind} archive"
        if self.kind == "json":
            return "JSON backup"
        made = "pg_dump" if self.from_pg_dump else "hand-made"
        return f"{self.compression}-compressed SQL ({made})" if self.compression else f"SQL ({made})"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "label": self.label,
            "compression": self.compression,
            "archive_compression": self.archive_compression,
            "size": self.size,
            "taken_at": self.taken_at.isoformat() if self.taken_at else None,
            "taken_at_source": self.taken_at_source,
            "taken_at_is_fallback": self.taken_at_is_fallback,
            "server_version": self.server_version,
            "dump_version": self.dump_version,
            "database": self.database,
            "tables": self.tables,
            "from_pg_dump": self.from_pg_dump,
            "manifest": str(self.manifest) if self.manifest else None,
            "partial": self.partial,
            "notes": self.notes,
            "problem": self.problem,
            "hint": self.hint or None,
        }


def detect(path: Path, *, checksum: bool = True) -> BackupInfo:
    """Examine ``path`` and raise :class:`BackupFileError` unless it is a loadable backup."""
    info = examine(path, checksum=checksum)
    if info is None:
        raise BackupFileError(
            f"{path} is not a backup this tool can read: it is not a pg_dump archive, SQL, or a JSON backup "
            "of the {success, timestamp, stats, data} kind.",
            hint="Run `recovery-wizard backups find` to list the backups it does recognise.",
        )
    if info.problem:
        raise BackupFileError(f"{path} cannot be loaded: {info.problem}.", hint=info.hint)
    return info


def examine(path: Path, *, checksum: bool = True) -> BackupInfo | None:
    """What ``path`` is (None: not a backup at all). Never raises for a file's content; reads a bounded prefix."""
    path = Path(path)
    try:
        if path.is_dir():
            toc = path / "toc.dat"
            return _archive(path, toc, "directory", 0) if toc.is_file() else None
        if not path.is_file():
            return None
        with open(path, "rb") as stream:
            head = stream.read(1024)
    except OSError:
        return None
    if head.startswith(archive.MAGIC):
        return _archive(path, path, "custom", 0)
    if len(head) >= 512 and head[257:262] == b"ustar" and head[:8] == b"toc.dat\x00":
        return _archive(path, path, "tar", 512)
    compression = streams.compression_of(head)
    if compression:
        return _compressed(path, compression)
    stripped = head.lstrip()
    if stripped.startswith(b"{"):
        from recovery_wizard.recovery.files.jsonbackup import examine_json

        return examine_json(path)
    return _sql(path, None, checksum=checksum)


@functools.cache
def newest_client_major() -> int | None:
    """The newest pg_restore/psql major installed (the embedded wheel's 18 at least)."""
    from recovery_wizard.pgtools import installed

    found = installed()
    return max(found) if found else None


def _major(version: str | None) -> int | None:
    match = re.match(r"\s*(\d+)", version or "")
    return int(match.group(1)) if match else None


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def _archive(path: Path, toc_file: Path, kind: str, start: int) -> BackupInfo:
    info = BackupInfo(path, kind, _size(path), None, FROM_MTIME, from_pg_dump=True)
    try:
        with open(toc_file, "rb") as stream:
            stream.seek(start)
            header = archive.read_header(stream)
            info.server_version = header.server_version
            info.dump_version = header.dump_version
            info.database = header.database
            info.tables = dict.fromkeys(header.data_tables)
            info.archive_compression = header.compression
            if header.created is not None:
                # pg_dump writes the dumping machine's local wall clock; pg_restore reads it in the local
                # zone, and so does this (the same machine, as a rule). A manifest, when there is one, is exact.
                info.taken_at = header.created.astimezone(UTC)
                info.taken_at_source = FROM_ARCHIVE
            if header.version[:2] > archive.KNOWN_VERSION:
                info.notes.append(
                    f"archive format {header.version[0]}.{header.version[1]} is newer than this reader knows; "
                    "pg_restore will judge it"
                )
            elif kind == "custom":
                archive.check_custom_data(stream, header, info.size)
        if kind == "tar":
            archive.check_tar_members(path, header)
        elif kind == "directory":
            archive.check_directory_files(path, header)
    except archive.ArchiveReadError as exc:
        info.problem = f"it is a damaged or truncated pg_dump archive ({exc})"
        info.hint = "Use an older backup, or copy the file again if it came over a network."
    if info.taken_at is None:
        info.taken_at = _mtime(path)
    _check_versions(info)
    _apply_manifest(info, checksum=kind != "directory")
    return info


def _check_versions(info: BackupInfo) -> None:
    newest = newest_client_major()
    dumped_by = _major(info.dump_version)
    if info.problem is None and newest is not None and dumped_by is not None and dumped_by > newest:
        info.problem = (
            f"it was written by pg_dump {info.dump_version}, newer than any pg_restore here "
            f"(the newest is PostgreSQL {newest})"
        )
        info.hint = f"Install PostgreSQL {dumped_by}'s client programs, or upgrade recovery-wizard."


def _apply_manifest(info: BackupInfo, *, checksum: bool = True) -> None:
    """The manifest ``recovery-wizard backup`` wrote beside the file (one reader: backup/manifest.py)."""
    found = manifest.read_manifest(info.path)
    if found is None:
        return
    info.manifest = manifest.manifest_path(info.path)
    info.taken_at, info.taken_at_source = found.taken, FROM_MANIFEST
    if found.tables:
        info.tables = {name: rows for name, rows in found.tables.items()}
    info.database = found.database or info.database
    info.server_version = found.server_version or info.server_version
    if info.problem is None and not info.path.is_dir():
        wrong = manifest.mismatch(info.path, found, checksum=checksum)
        if wrong:
            info.problem = f"it is corrupt: {wrong}"
            info.hint = "The file changed after the backup was taken: use another backup."


# --- SQL ---------------------------------------------------------------------------------------------

_PG_DUMP_HEADER: Final = re.compile(rb"^--\s*\n--\s*PostgreSQL database (cluster )?dump\s*\n", re.MULTILINE)
_DUMPED_FROM: Final = re.compile(rb"^-- Dumped from database version (.+)$", re.MULTILINE)
_DUMPED_BY: Final = re.compile(rb"^-- Dumped by pg_dump(?:all)? version (.+)$", re.MULTILINE)
_STARTED_ON: Final = re.compile(rb"^-- Started on (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?: (\S+))?$", re.MULTILINE)
_CREATE_DATABASE: Final = re.compile(rb"^CREATE DATABASE (\"(?:[^\"]|\"\")+\"|\w+)", re.MULTILINE)
_SQL_DATA: Final = re.compile(
    rb"^\s*(?:INSERT\s+INTO|COPY\s+\S+.*FROM\s+stdin)", re.MULTILINE | re.IGNORECASE
)


def _compressed(path: Path, compression: str) -> BackupInfo | None:
    head = streams.read_prefix(path, compression, 1024)
    if head.startswith(archive.MAGIC):
        # `pg_dump -Fc | gzip`: an archive inside a compressed file. pg_restore needs it seekable.
        info = BackupInfo(path, "custom", path.stat().st_size, _mtime(path), FROM_MTIME, compression)
        info.from_pg_dump = True
        info.problem = f"it is a pg_dump archive inside a {compression} file"
        info.hint = f"Decompress it first ({'gunzip' if compression == 'gzip' else 'zstd -d'} FILE) and give the result."
        return info
    return _sql(path, compression)


def _sql(path: Path, compression: str | None, *, checksum: bool = True) -> BackupInfo | None:
    prefix = streams.read_prefix(path, compression, SQL_PREFIX)
    if not prefix or b"\x00" in prefix:
        return None
    try:
        prefix.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(prefix) - 4:  # a character cut at the prefix's end is fine
            return None
    header = _PG_DUMP_HEADER.search(prefix[:4096])
    # Hand-made SQL counts as a backup only when it carries data: a migration's CREATE TABLEs do not.
    if header is None and not _SQL_DATA.search(prefix):
        return None
    info = BackupInfo(path, "sql", path.stat().st_size, None, FROM_MTIME, compression)
    info.from_pg_dump = header is not None
    if (found := _DUMPED_FROM.search(prefix)) is not None:
        info.server_version = found.group(1).decode("utf-8", "replace").strip()
    if (found := _DUMPED_BY.search(prefix)) is not None:
        info.dump_version = found.group(1).decode("utf-8", "replace").strip()
    if (found := _CREATE_DATABASE.search(prefix)) is not None:
        info.database = found.group(1).decode("utf-8", "replace").strip('"').replace('""', '"')
    started = _STARTED_ON.search(prefix)
    if started is not None:
        info.taken_at = _started_on(started.group(1).decode(), (started.group(2) or b"").decode())
        info.taken_at_source = FROM_STARTED_ON if info.taken_at else FROM_MTIME
    if info.taken_at is None:
        info.taken_at = _mtime(path)
    if header is not None and header.group(1):
        info.problem = "it is a whole-cluster dump (pg_dumpall): it creates roles and switches databases"
        info.hint = "Dump the one database with `pg_dump`, or cut that database's part out into its own file."
    _apply_manifest(info, checksum=checksum)
    return info


def _started_on(text: str, zone: str) -> datetime | None:
    """``-- Started on 2026-12-01 15:03:36 UTC``: the zone is an abbreviation; UTC/GMT or an offset is exact,
    anything else is read in the local zone (this machine wrote it, as a rule) and said so by the caller."""
    try:
        wall = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    if zone.upper() in ("UTC", "GMT", "Z", ""):
        return wall.replace(tzinfo=UTC)
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})?", zone)
    if offset is not None:
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0))
        return wall.replace(tzinfo=timezone(-delta if offset.group(1) == "-" else delta)).astimezone(UTC)
    return wall.astimezone(UTC)
