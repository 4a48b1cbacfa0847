"""Neon snapshots and local backup files as one list, newest first; and the newest ones before a moment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_wizard.recovery.backup.backupdir import local_backups
from recovery_wizard.recovery.backup.proofs import Proof, last_proofs, proof_of_file

if TYPE_CHECKING:
    from recovery_wizard.neon.models import Snapshot


@dataclass(frozen=True)
class BackupEntry:
    kind: str  # "snapshot" or "file"
    ref: str  # snapshot id, or the file's path
    name: str
    at: datetime  # the moment the data is from
    size: int | None
    branch: str  # branch id (snapshot) or name (file)
    proof: Proof | None = None
    expires_at: str | None = None
    present: bool = True  # a file whose manifest outlived it

    @property
    def source(self) -> str:
        """As ``--from`` takes it."""
        return f"snapshot:{self.ref}" if self.kind == "snapshot" else f"file:{self.ref}"

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "name": self.name,
            "at": self.at.isoformat(),
            "age_seconds": int((now - self.at).total_seconds()),
            "size": self.size,
            "branch": self.branch,
            "expires_at": self.expires_at,
            "present": self.present,
            "source": self.source,
            "last_proven": None if self.proof is None else self.proof.to_dict(),
        }


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def snapshot_entries(snapshots: Sequence[Snapshot], proofs: dict[str, Proof]) -> list[BackupEntry]:
    entries = []
    for snap in snapshots:
        at = _time(snap.timestamp) or _time(snap.created_at)
        if at is None:
            continue
        entries.append(
            BackupEntry(
                kind="snapshot",
                ref=snap.id,
                name=snap.name,
                at=at,
                size=snap.full_size,
                branch=snap.source_branch_id or "",
                proof=proofs.get(f"snapshot:{snap.id}"),
                expires_at=snap.expires_at,
            )
        )
    return entries


def file_entries(directory: Path, proofs: dict[str, Proof]) -> list[BackupEntry]:
    entries = []
    for backup in local_backups(directory):
        m = backup.manifest
        entries.append(
            BackupEntry(
                kind="file",
                ref=str(backup.path),
                name=backup.path.name,
                at=m.taken,
                size=m.size,
                branch=m.branch.get("name") or m.branch.get("id", ""),
                proof=proof_of_file(proofs, backup.path.name, m.sha256),
                present=backup.present,
            )
        )
    return entries


def all_backups(directory: Path | None, snapshots: Sequence[Snapshot] = ()) -> list[BackupEntry]:
    """Snapshots and local files together, newest first (``directory`` None: snapshots only)."""
    proofs = last_proofs(directory) if directory is not None else {}
    entries = snapshot_entries(snapshots, proofs)
    if directory is not None:
        entries += file_entries(directory, proofs)
    return sorted(entries, key=lambda e: (e.at, e.kind, e.ref), reverse=True)


def backups_before(moment: datetime, entries: Sequence[BackupEntry], *, limit: int = 3) -> list[BackupEntry]:
    """The newest backups (snapshots or files) holding data from at or before ``moment``, newest first.

    What to offer when ``moment`` is outside the restore window: restoring one of these brings back the data
    as it was at its time, the closest there is before the moment asked for.
    """
    return [e for e in sorted(entries, key=lambda e: e.at, reverse=True) if e.at <= moment and e.present][
        :limit
    ]


def age_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"


def size_text(size: int | None) -> str:
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def render(entries: Sequence[BackupEntry], now: datetime) -> str:
    header = ("KIND", "NAME", "TAKEN (UTC)", "AGE", "SIZE", "BRANCH", "LAST PROVEN")
    rows = [header]
    for e in entries:
        if e.proof is None:
            proven = "never"
        else:
            proven = f"{e.proof.at:%Y-%m-%d %H:%M} {'ok' if e.proof.ok else 'FAILED'}"
        name = e.name if e.present else f"{e.name} (file missing)"
        rows.append(
            (
                e.kind,
                name if e.kind == "file" else f"{name} [{e.ref}]",
                f"{e.at:%Y-%m-%d %H:%M:%S}",
                age_text((now - e.at).total_seconds()),
                size_text(e.size),
                e.branch,
                proven,
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows)
