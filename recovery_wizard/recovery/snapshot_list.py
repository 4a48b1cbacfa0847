"""A project's Neon snapshots as a restore can use them: live ones only, newest first, each with the moment
its data is from and the branch it was taken of.

Shared by whatever lists snapshots for a person (the wizard's "Where from?" step, its window bar and its
offer of a snapshot when a moment is older than the restore window). No UI here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from recovery_wizard.neon.models import Branch, Snapshot


@dataclass(frozen=True)
class SnapshotEntry:
    snapshot: Snapshot
    at: datetime  # the moment the data is from (Neon's `timestamp`; its creation time when absent)
    created_at: datetime
    expires_at: datetime | None
    size: int | None  # bytes (Neon's `full_size`), None until Neon has computed it
    branch_name: str | None  # the branch it was taken of, if that branch still exists
    own: bool  # taken of the branch being restored (or of a branch Neon did not name)

    @property
    def id(self) -> str:
        return self.snapshot.id

    @property
    def name(self) -> str:
        return self.snapshot.name

    def taken_of(self) -> str:
        """The branch it was taken of, as a person reads it."""
        if self.branch_name is not None:
            return self.branch_name
        return self.snapshot.source_branch_id or "unknown branch"


def parse_neon_time(text: str | None) -> datetime | None:
    """Neon's RFC 3339 text as an aware UTC datetime; None for what is absent or unreadable (shown as "?")."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def usable_snapshots(
    snapshots: Iterable[Snapshot], branches: Iterable[Branch], branch_id: str | None, now: datetime
) -> list[SnapshotEntry]:
    """The snapshots a restore of ``branch_id`` can start from: expired ones out, newest data first."""
    names = {b.id: b.name for b in branches}
    entries = []
    for snap in snapshots:
        created = parse_neon_time(snap.created_at)
        at = parse_neon_time(snap.timestamp) or created
        if at is None or created is None:
            continue  # no time to place it by: nothing a person could choose it for
        expires = parse_neon_time(snap.expires_at)
        if expires is not None and expires <= now:
            continue  # Neon deletes it at expiry; a restore started now would race that
        source = snap.source_branch_id
        size = getattr(snap, "full_size", None)  # in Neon's spec; our model may not carry it yet
        entries.append(
            SnapshotEntry(
                snapshot=snap,
                at=at,
                created_at=created,
                expires_at=expires,
                size=size if isinstance(size, int) else None,
                branch_name=names.get(source) if source else None,
                own=source is None or source == branch_id,
            )
        )
    entries.sort(key=lambda e: (e.at, e.created_at), reverse=True)
    return entries


def newest_before(entries: Iterable[SnapshotEntry], moment: datetime) -> SnapshotEntry | None:
    """The newest snapshot of the branch itself whose data is from ``moment`` or earlier: what to offer when
    ``moment`` is older than the restore window (a snapshot of another branch holds other data)."""
    return max(
        (e for e in entries if e.own and e.at <= moment), key=lambda e: (e.at, e.created_at), default=None
    )


def age_text(delta: timedelta) -> str:
    """How long ago, in the one unit that reads best: "40 min", "5 h", "3 d"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def size_text(size: int | None) -> str:
    if size is None:
        return "?"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}" if size < 10 * scale else f"{size // scale} {unit}"
    return f"{size} B"
