"""The manifest ``recovery-wizard backup`` writes beside each dump (``<file>.manifest.json``), read and checked.

Format ``recovery-wizard-backup/1``: ``file``, ``taken_at``, ``lsn``, ``server_version``, ``database``,
``sha256``, ``size``, ``tables`` ({"schema.table": rows}), ``project``, ``branch``, ``pg_dump_version``.
The manifest knows what the dump cannot say about itself: the exact moment (UTC), the row counts, the
checksum. A file that no longer matches its manifest is refused as corrupt.
(The backup side writes this format in recovery/backup/; the checksum check here is small on purpose and is
to be shared with it.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

FORMAT: Final = "recovery-wizard-backup/1"
SUFFIX: Final = ".manifest.json"
_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True)
class Manifest:
    path: Path
    taken_at: datetime | None
    server_version: str | None
    database: str | None
    sha256: str | None
    size: int | None
    tables: dict[str, int]
    project: str | None
    branch: str | None
    lsn: str | None


def manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + SUFFIX)


def is_manifest(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


def read_manifest(backup: Path) -> Manifest | None:
    """The manifest beside ``backup``, or None when there is none or it is not ours."""
    path = manifest_path(backup)
    try:
        if not path.is_file() or path.stat().st_size > 16 * 1024 * 1024:
            return None
        data: Any = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    tables = data.get("tables") if isinstance(data.get("tables"), dict) else {}
    return Manifest(
        path=path,
        taken_at=_instant(data.get("taken_at")),
        server_version=_str(data.get("server_version")),
        database=_str(data.get("database")),
        sha256=_str(data.get("sha256")),
        size=data["size"] if isinstance(data.get("size"), int) else None,
        tables={str(k): int(v) for k, v in (tables or {}).items() if isinstance(v, int)},
        project=_str(data.get("project")),
        branch=_str(data.get("branch")),
        lsn=_str(data.get("lsn")),
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB chunks (memory stays flat for any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def mismatch(backup: Path, manifest: Manifest, *, checksum: bool = True) -> str | None:
    """Why ``backup`` is not the file its manifest describes, or None when it is."""
    size = backup.stat().st_size
    if manifest.size is not None and manifest.size != size:
        return f"it is {size} bytes, and its manifest says {manifest.size}"
    if checksum and manifest.sha256:
        actual = sha256_of(backup)
        if actual.lower() != manifest.sha256.lower():
            return f"its SHA-256 is {actual[:12]}…, and its manifest says {manifest.sha256[:12]}…"
    return None
