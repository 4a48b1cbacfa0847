"""Unfinished runs a new run must not pass by in silence, and the ones a later finished run made moot.

A run that stopped early (killed, failed, interrupted) can be resumed, and a new run in the same directory
asks first whether to resume it; starting anew marks it ``abandoned`` so that ``--resume`` never picks it
up later. But a *restore* that stopped before a later restore in the same directory finished is
*superseded*: resuming it would repoint ``.env`` back at its own branch and undo the later repair. Such a
run is not offered for resuming, and a new run marks it abandoned too.

Drills are never superseded: resuming an old drill only verifies and deletes its own branch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from recovery_wizard.recovery.journal import Journal, JournalError, Warn, journals


@dataclass(frozen=True)
class Unfinished:
    """A run of the command that could be resumed, and the later finished run that superseded it (if any)."""

    journal: Journal
    superseded_by: Journal | None = None

    @property
    def run_id(self) -> str:
        return self.journal.run_id


def unfinished_runs(workdir: Path, command: str, *, warn: Warn | None = None) -> list[Unfinished]:
    """Every run of ``command`` in ``workdir`` that could still be continued, newest first."""
    found = [j for j in journals(workdir, warn=warn) if j.start is not None and j.command == command]
    finished = [(at, j) for j in found if j.status == "done" and (at := ended_at(j)) is not None]
    runs = []
    for journal in found:
        if not journal.resumable:
            continue
        later = None
        if command == "restore" and journal.records:
            stopped = journal.records[-1].at
            later = next((j for at, j in finished if at > stopped), None)
        runs.append(Unfinished(journal, later))
    return runs


def superseded_by(workdir: Path, journal: Journal) -> Journal | None:
    """The later finished run that made ``journal``'s run moot, or None (see the module's docstring)."""
    command = journal.command
    if command is None:
        return None
    return next(
        (u.superseded_by for u in unfinished_runs(workdir, command) if u.run_id == journal.run_id), None
    )


def ended_at(journal: Journal) -> datetime | None:
    """When the run's last ``end`` record was written."""
    end = next((r for r in reversed(journal.records) if r.kind == "run" and r.event == "end"), None)
    return None if end is None else end.at


def describe_run(journal: Journal) -> str:
    """One line on an unfinished run: when it started, how far it got, the branch it made or was to make."""
    start = journal.start
    plan = (start.data.get("plan") if start else None) or {}
    steps = [r.step.split(":")[0] for r in journal.records if r.kind == "step" and r.step]
    made = journal.done("restore")
    branch = (made.data.get("branch_name") or made.data.get("backup_name")) if made else None
    parts = [
        f"started {start.at:%Y-%m-%d %H:%M:%S} UTC" if start else None,
        "killed" if journal.status == "unfinished" else journal.status,
        f"last step {steps[-1]}" if steps else "before its first step",
        f"restore point {plan.get('restore_point')}" if plan.get("restore_point") else None,
        f"branch {branch or plan.get('name')}" if (branch or plan.get("name")) else None,
    ]
    return f"{journal.run_id} ({', '.join(p for p in parts if p)})"


def abandon(runs: Iterable[Unfinished], new_run_id: str) -> None:
    """Mark ``runs`` abandoned for the run ``new_run_id`` (call with the directory's lock held)."""
    for run in runs:
        if run.run_id == new_run_id:
            continue
        try:
            fresh = Journal.open(run.journal.run_dir)  # re-read: appends must follow what is on disk now
        except JournalError:
            continue  # damaged since it was listed: it is skipped by every listing anyway
        if fresh.resumable:
            data = {"superseded_by": new_run_id}
            if run.superseded_by is not None:
                data["finished_later"] = run.superseded_by.run_id
            fresh.append("run", "end", status="abandoned", **data)
