"""What can go wrong with a backup, each with what to do next (``hint``) and the CLI's exit code."""

from __future__ import annotations

from recovery_wizard.recovery.outcome import EXIT_STEP_FAILED, EXIT_USAGE, RunError


class BackupError(RunError):
    """A backup could not be taken; nothing half-written was left and older backups are untouched."""

    exit_code = EXIT_STEP_FAILED
    status = "failed"


class DumpFailedError(BackupError):
    """pg_dump failed, or the disk filled up while it wrote: the partial file was removed."""


class BackupDirError(RunError):
    """The backups directory cannot be used (a symlink, not a directory, not writable): refused, exit 2."""

    exit_code = EXIT_USAGE
    status = "refused"


class CorruptBackupError(RunError):
    """A backup file no longer matches its manifest (or has none of ours): it is never restored. Exit 2."""

    exit_code = EXIT_USAGE
    status = "refused"
