"""How a run the user stopped at the error box ends: failed, resumable, with a hint naming the exact command."""

from __future__ import annotations

from recovery_wizard.errors import RecoveryError
from recovery_wizard.recovery.outcome import StepFailedError, resume_hint
from recovery_wizard.recovery.runner import RunResult, fail


def record_stop(result: RunResult, error: BaseException) -> None:
    """``error`` stopped a step and the user chose Close, not Try again: the run ends ``failed`` and its
    hint says ``<command> --resume <run id>`` (``drill --resume`` for a drill), as the CLI's does."""
    plan = result.plan
    command = plan.command if plan is not None else "restore"
    run_id = result.journal.run_id
    if isinstance(error, StepFailedError):
        # Already names its step: wrapping it again would say "Step 'x' failed: Step 'x' failed: …".
        result.status = "failed"
        error.hint = resume_hint(error.hint, command, run_id)
        result.error = error
    elif isinstance(error, RecoveryError | OSError):
        fail(result, error)  # Neon, a file, the disk: the runbook's own wording and hint
    else:
        result.status = "failed"
        result.error = StepFailedError(
            result.step or "run",
            f"{type(error).__name__}: {error}",
            hint=resume_hint(
                "This is a bug in recovery-wizard: the journal in .recovery-wizard/runs/ shows how far the "
                "run got.",
                command,
                run_id,
            ),
        )
