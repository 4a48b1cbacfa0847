"""One run at a time in the wizard: the app directory's lock, and the unfinished runs a new run meets.

The wizard holds the CLI's :class:`AppLock` from the moment a run starts writing (Start on the plan, or
"Continue it" on an unfinished run) until its incident record is written. Choosing, looking at the past and
planning hold nothing: a wizard left open on the moment screen must not block a colleague's restore. When
another process holds the lock, the run is refused with the holder named (:class:`LockedError`, shown in
the error box) before anything is written: two runs at once would make two restore branches.

An unfinished run of the same command is offered for resuming; declining it ("Start a new run") marks it
abandoned once the new run starts, as the CLI's ``--new`` does. A restore superseded by a later finished
restore is not offered (resuming it would undo the later repair) and is marked abandoned the same way.
"""

from __future__ import annotations

from pathlib import Path

from recovery_wizard.recovery.journal import Journal, JournalError
from recovery_wizard.recovery.lock import AppLock
from recovery_wizard.recovery.outcome import UsageError
from recovery_wizard.recovery.unfinished import Unfinished, abandon, describe_run, unfinished_runs


class RunGuard:
    """The wizard's lock on its app directory and its answers about the unfinished runs there."""

    def __init__(self, workdir: Path, command: str) -> None:
        self.workdir, self.command = workdir, command
        self.lock = AppLock(workdir, command=command)
        self.declined: set[str] = set()  # unfinished runs the user chose not to continue

    def acquire(self) -> None:
        """Take the directory's lock; :class:`LockedError` names who holds it. Nothing is written before."""
        self.lock.acquire()

    def release(self) -> None:
        self.lock.release()

    def pending(self) -> list[Unfinished]:
        return unfinished_runs(self.workdir, self.command)

    def to_offer(self, pending: list[Unfinished]) -> Unfinished | None:
        """The newest unfinished run the user has not answered for and no later run superseded."""
        return next((u for u in pending if u.superseded_by is None and u.run_id not in self.declined), None)

    def decline(self, pending: list[Unfinished]) -> None:
        """The user starts a new run instead: every run listed now is abandoned when it starts (as --new)."""
        self.declined |= {u.run_id for u in pending}

    def question(self, run: Unfinished) -> str:
        return (
            f"An unfinished {self.command} run was found here: {describe_run(run.journal)}. "
            "Continue it where it stopped? Starting a new run marks it abandoned instead (a branch it made "
            "stays until you delete it)."
        )

    @staticmethod
    def superseded_note(run: Unfinished) -> str:
        assert run.superseded_by is not None
        return (
            f"Run {run.run_id} did not finish, but the later run {run.superseded_by.run_id} finished after it: "
            "it is not offered for resuming (that would undo the later restore) and is marked abandoned when "
            "a new run starts."
        )

    def take(self, run: Unfinished) -> Journal:
        """Lock the directory to resume ``run``, its journal re-read under the lock (another process may
        have continued it since it was offered)."""
        self.acquire()
        try:
            journal = Journal.open(run.journal.run_dir)
        except JournalError:
            self.release()
            raise
        if not journal.resumable:
            self.release()
            raise UsageError(
                f"Run {run.run_id} already ended ({journal.status}) since it was offered; nothing to resume.",
                hint="Close this and start a new run.",
            )
        self.lock.set_run(journal.run_id)
        return journal

    def started(self, journal: Journal, pending: list[Unfinished]) -> None:
        """A new run's journal exists: name it in the lock, and abandon the runs it replaces."""
        self.lock.set_run(journal.run_id)
        abandon(pending, journal.run_id)
