"""Where a restore's data comes from: ``--from history|snapshot:<id or name>|file:<path>|checkpoint:<run id>``.

:func:`parse_source` reads the option (no network); :func:`resolve_source` turns it into a :class:`Source`
(a snapshot is looked up once, here); :func:`source_from_dict` rebuilds the source a journal recorded. Adding
a source: a module with a :class:`Source` subclass, a ``KINDS`` entry, and a branch in the two functions below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from recovery_wizard.recovery.outcome import UsageError
from recovery_wizard.recovery.sources.base import Materialized, Source
from recovery_wizard.recovery.sources.history import HistorySource

if TYPE_CHECKING:
    from recovery_wizard.neon.client import NeonClient
    from recovery_wizard.neon.models import Branch, Snapshot

__all__ = [
    "KINDS",
    "HistorySource",
    "Materialized",
    "Source",
    "SourceSpec",
    "parse_source",
    "source_from_dict",
]

KINDS: Final = ("history", "snapshot", "file", "checkpoint")
# Kinds the option already accepts and names, but that later steps of the project build.
NOT_YET: Final[dict[str, str]] = {}
FORMS: Final = "history, snapshot:<id or name>, snapshot:latest, file:<path>, checkpoint:<run id>"


@dataclass(frozen=True)
class SourceSpec:
    """``--from`` as given, parsed: the kind and what follows its colon (empty for ``history``)."""

    kind: str
    ref: str
    text: str

    @property
    def is_history(self) -> bool:
        return self.kind == "history"


def parse_source(text: str | None) -> SourceSpec:
    """Read ``--from``; a usage error (exit 2) names what is wrong and the forms it takes."""
    raw = (text or "history").strip()
    kind, colon, ref = raw.partition(":")
    kind, ref = kind.strip().lower(), ref.strip()
    if kind not in KINDS:
        raise UsageError(f"--from {text!r} is not a restore source.", hint=f"--from takes {FORMS}.")
    if kind == "history":
        if colon and ref:
            raise UsageError(
                f"--from {text!r}: history takes no argument; the moment is --at.",
                hint="Pass --from history --at TIME (or leave --from out).",
            )
        return SourceSpec("history", "", raw)
    if not ref:
        what = {"snapshot": "a snapshot id or name, or latest", "file": "a path", "checkpoint": "a run id"}[
            kind
        ]
        raise UsageError(f"--from {kind}: needs {what} after the colon.", hint=f"--from takes {FORMS}.")
    if kind in NOT_YET:
        raise UsageError(
            f"--from {raw}: {NOT_YET[kind]}.",
            hint="Restore from Neon history (--at TIME) or from a Neon snapshot (--from snapshot:latest).",
        )
    return SourceSpec(kind, ref, raw)


def check_with_at(spec: SourceSpec, at: str | None) -> None:
    """``--at`` picks a moment of Neon's history: with another source it is a mistake, said so."""
    if at is not None and not spec.is_history:
        raise UsageError(
            f"--at {at!r} and --from {spec.text} both say where the data comes from: --at is a moment of "
            "Neon's history, the snapshot has its own moment.",
            hint=f"Pass --from {spec.text} alone, or --at alone (history).",
        )


async def resolve_source(
    client: NeonClient,
    project_id: str,
    branch: Branch,
    spec: SourceSpec,
    *,
    workdir: Path | None = None,
    snapshots: list[Snapshot] | None = None,
) -> Source:
    """The source ``spec`` names, looked up now (a snapshot by id, name or ``latest``; a file examined,
    relative to ``workdir``, before any branch is made).

    A checkpoint is resolved by the plan (``sources.checkpoint.resolve_checkpoint``): it needs the app
    directory's journals and the restore window, and it fixes the project and the branch itself.
    """
    if spec.kind == "checkpoint":
        raise ValueError("a checkpoint source is resolved with sources.checkpoint.resolve_checkpoint")
    if spec.kind == "file":
        import asyncio

        from recovery_wizard.recovery.sources.file import resolve_file

        # Examining a file reads it (a checksum, a SQL file's every statement): off the event loop.
        return await asyncio.to_thread(resolve_file, workdir or Path.cwd(), branch, spec.ref)
    if spec.kind == "snapshot":
        from recovery_wizard.recovery.sources.snapshot import resolve_snapshot

        return await resolve_snapshot(client, project_id, branch, spec.ref, snapshots=snapshots)
    return HistorySource()


def source_from_dict(data: dict[str, Any] | None) -> Source:
    """The source a journal recorded; a journal from before sources existed restored from history."""
    kind = (data or {}).get("kind", "history")
    if kind == "history":
        return HistorySource()
    if kind == "snapshot":
        from recovery_wizard.recovery.sources.snapshot import SnapshotSource

        assert data is not None
        return SnapshotSource.from_dict(data)
    if kind == "checkpoint":
        from recovery_wizard.recovery.sources.checkpoint import CheckpointSource, SnapshotCheckpointSource

        assert data is not None
        if data.get("checkpoint_kind") == "snapshot":
            return SnapshotCheckpointSource.from_dict(data)
        return CheckpointSource.from_dict(data)
    if kind == "file":
        from recovery_wizard.recovery.sources.file import FileSource

        assert data is not None
        return FileSource.from_dict(data)
    raise UsageError(
        f"This run restores from a {kind!r} source, which this version of recovery-wizard cannot resume.",
        hint="Resume it with the version that started it, or start a new run with --new.",
    )
