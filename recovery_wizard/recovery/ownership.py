"""Proof that a branch is this run's own, before a resumed run adopts it or a drill deletes it.

Branch names are not proof: after a crash, a person (or another run) may have made a branch with the very
name the run asked for. A run marks the branch it creates with an annotation Neon keeps for the branch
(``recovery-wizard-run: <run id>``) and, before adopting or deleting a branch, checks the marker and the
facts the plan fixed: the parent, the restore point, and a creation after the journal's ``begin``. An
in-place restore's backup cannot be annotated (Neon makes it), so it is proven by the restore having
happened after ``begin`` and by the backup being the target's old history, not a copy made from it.

Since Neon keeps branch names unique within a project, a branch named like ours that is not ours means ours
was never made: refusing loses nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from recovery_wizard.neon.models import Branch

# The annotation key a run writes on the branch it creates; its value is the run id.
RUN_MARKER = "recovery-wizard-run"
# Our clock and Neon's may differ a little: "created after begin" allows this much.
CLOCK_SKEW = timedelta(seconds=60)
# Neon echoes the parent_timestamp it was asked for; it may keep fewer digits than we send (we send
# microseconds), so "the plan's moment" means the same second. The run marker is the proof; this is a check.
MOMENT_TOLERANCE = timedelta(seconds=1)


def marker(run_id: str) -> dict[str, str]:
    """The annotation a run puts on the branch it creates."""
    return {RUN_MARKER: run_id}


def why_not_ours(
    branch: Branch,
    annotation: dict[str, str],
    *,
    run_id: str,
    parent_id: str,
    moment: datetime | None = None,
    lsn: str | None = None,
    begun_at: datetime | None,
) -> list[str]:
    """Why ``branch`` cannot be proven to be the branch run ``run_id`` created (empty: proven).

    ``moment`` / ``lsn``: the point of the parent's history the run asked for, checked when given; a branch
    made at the parent's head (a file's, a merge's checkpoint) was asked for neither.
    """
    reasons = []
    marked = annotation.get(RUN_MARKER)
    if marked != run_id:
        reasons.append(
            "it carries no recovery-wizard run marker"
            if marked is None
            else f"it was made by another recovery-wizard run ({marked})"
        )
    if branch.parent_id != parent_id:
        reasons.append(f"its parent is {branch.parent_id or 'none'}, not {parent_id}")
    if moment is not None and (
        branch.parent_timestamp is None or abs(branch.parent_timestamp - moment) > MOMENT_TOLERANCE
    ):
        at = branch.parent_timestamp.isoformat() if branch.parent_timestamp else "no timestamp"
        reasons.append(f"it starts at {at}, not at the restore point {moment.isoformat()}")
    if lsn is not None and branch.parent_lsn != lsn:
        reasons.append(f"it starts at LSN {branch.parent_lsn or 'unknown'}, not at the checkpoint's {lsn}")
    if begun_at is not None and (branch.created_at is None or branch.created_at < begun_at - CLOCK_SKEW):
        reasons.append("it was created before this run began")
    if branch.default or branch.protected:
        reasons.append("it is the project's " + ("default" if branch.default else "protected") + " branch")
    return reasons


def why_not_our_backup(backup: Branch, target: Branch, *, begun_at: datetime) -> list[str]:
    """Why ``backup`` cannot be proven to be the backup Neon kept when this run restored ``target``."""
    reasons = []
    if target.last_reset_at is None or target.last_reset_at < begun_at - CLOCK_SKEW:
        reasons.append(f"{target.name} has not been restored since this run began")
    if backup.created_at is None or backup.created_at < begun_at - CLOCK_SKEW:
        reasons.append("it was created before this run began")
    if backup.parent_id == target.id:
        # Neon's backup takes over the target's old history; a branch made FROM the target is a copy.
        reasons.append(f"it is a branch made from {target.name} (a copy), not the backup Neon keeps")
    if backup.default or backup.protected:
        reasons.append("it is the project's " + ("default" if backup.default else "protected") + " branch")
    return reasons


def env_files_of(workdir: Path, extra: Iterable[Path] = ()) -> list[Path]:
    """Every env file of the app in ``workdir`` a deletion must respect: ``.env*`` and ``prisma/.env*``."""
    found: list[Path] = []
    for directory in (workdir, workdir / "prisma"):
        try:
            found += sorted(p for p in directory.glob(".env*") if p.is_file())
        except OSError:
            continue
    for path in extra:
        if path.is_file() and path not in found:
            found.append(path)
    return found


def env_files_pointing_at(files: Iterable[Path], needles: Iterable[str]) -> list[Path]:
    """The files among ``files`` that name any of ``needles``: a branch id, its computes' ``ep-…`` ids or
    hosts (``host[:port]``). A needle must end where a name or number ends (``ep-a-1`` is not ``ep-a-12``)."""
    patterns = [re.compile(re.escape(n) + r"(?![0-9A-Za-z])") for n in needles if n]
    pointing = []
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if any(p.search(text) for p in patterns):
            pointing.append(path)
    return pointing
