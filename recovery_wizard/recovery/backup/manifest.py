"""The manifest written beside each backup file (``<file>.manifest.json``), and checking a file against it.

The manifest says what the file holds (when, which project, branch and database, server version, LSN, the
row count of every table) and how to know it is intact (sha256 and size). Its ``format`` marks the files
this tool wrote: retention only ever deletes those, and a restore only ever loads a file whose sha256 still
matches. It never holds a secret: no URL, host, user or password.

The one reader and checker of the format: ``recovery-wizard backup`` writes it, the file source and
``backups find`` (recovery/files/detect.py) read it through :func:`read_manifest` and :func:`mismatch`, a
restore refuses a file :func:`verify_file` does not pass.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recovery_wizard.recovery.backup.atomic import write_private
from recovery_wizard.recovery.backup.errors import CorruptBackupError

FORMAT = "recovery-wizard-backup/1"
SUFFIX = ".manifest.json"
_CHUNK = 1 << 20
_MAX_MANIFEST = 16 << 20


@dataclass(frozen=True)
class Manifest:
    file: str  # the backup file's name (in the same directory)
    taken_at: str  # ISO 8601 UTC
    sha256: str
    size: int
    database: str
    server_version: str
    pg_dump_version: str
    project: dict[str, str]  # {id, name}
    branch: dict[str, str]  # {id, name}
    lsn: str | None = None
    tables: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows
    format: str = FORMAT

    @property
    def taken(self) -> datetime:
        return datetime.fromisoformat(self.taken_at).astimezone(UTC)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> Manifest:
        """A manifest read back; ``ValueError`` when it is not one of ours or lacks a field."""
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError("not a recovery-wizard backup manifest")
        try:
            manifest = cls(
                file=str(raw["file"]),
                taken_at=str(raw["taken_at"]),
                sha256=str(raw["sha256"]),
                size=int(raw["size"]),
                database=str(raw["database"]),
                server_version=str(raw["server_version"]),
                pg_dump_version=str(raw["pg_dump_version"]),
                project={k: str(v) for k, v in dict(raw["project"]).items()},
                branch={k: str(v) for k, v in dict(raw["branch"]).items()},
                lsn=None if raw.get("lsn") is None else str(raw["lsn"]),
                tables={str(k): int(v) for k, v in dict(raw.get("tables") or {}).items()},
            )
            manifest.taken  # noqa: B018 - a taken_at that is not a time is not a manifest
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"a manifest field is missing or malformed ({exc})") from None
        if "/" in manifest.file or manifest.file in ("", ".", ".."):
            raise ValueError("the manifest names a file outside its directory")
        return manifest


def manifest_path(file: Path) -> Path:
    return file.with_name(file.name + SUFFIX)


def is_manifest(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(file: Path, manifest: Manifest) -> Path:
    path = manifest_path(file)
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n"
    write_private(path, text.encode())
    return path


def read_manifest(file: Path) -> Manifest | None:
    """The manifest this tool wrote for ``file``, or None (no manifest, not ours, unreadable, another file's)."""
    path = manifest_path(file)
    try:
        if path.stat().st_size > _MAX_MANIFEST:
            return None  # not one of ours: ours are a few KiB even with thousands of tables
        manifest = Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
    return manifest if manifest.file == file.name else None


def verify_file(path: Path) -> Manifest:
    """The file's manifest, once the file is proven to be exactly what was written (size and sha256).

    Raises :class:`CorruptBackupError` otherwise: a backup that changed since it was taken is never restored.
    Call it before loading any backup file.
    """
    path = Path(path)
    if path.name.endswith(SUFFIX):
        path = path.with_name(path.name[: -len(SUFFIX)])
    mpath = manifest_path(path)
    if not path.is_file():
        raise CorruptBackupError(
            f"The backup file {path} does not exist.",
            hint="`recovery-wizard backup list` shows the backups there are.",
        )
    if not mpath.is_file():
        raise CorruptBackupError(
            f"{path} has no manifest ({mpath.name}), so it cannot be checked: it is not restored.",
            hint="Only files taken by `recovery-wizard backup` carry one; load another file by hand with "
            "pg_restore if you trust it.",
        )
    manifest = read_manifest(path)
    if manifest is None:
        raise CorruptBackupError(
            f"The manifest {mpath} is damaged or is not one recovery-wizard wrote for {path.name}.",
            hint="Restore from another backup (`recovery-wizard backup list`).",
        )
    wrong = mismatch(path, manifest)
    if wrong:
        raise CorruptBackupError(
            f"{path} is corrupt: {wrong}. It is not restored.",
            hint="Restore from another backup (`recovery-wizard backup list`); keep this one to look at.",
        )
    return manifest


def mismatch(path: Path, manifest: Manifest, *, checksum: bool = True) -> str | None:
    """Why ``path`` is not the file ``manifest`` describes (its size, then its sha256), or None when it is.

    ``checksum=False`` checks the size alone (listing many large files quickly); a restore always checks both.
    """
    size = path.stat().st_size
    if size != manifest.size:
        return f"it holds {size} bytes, its manifest says {manifest.size}"
    if checksum:
        actual = sha256_file(path)
        if actual.lower() != manifest.sha256.lower():
            return f"its sha256 is {actual[:16]}…, its manifest says {manifest.sha256[:16]}…"
    return None
