"""How a run ends, as the CLI's documented exit codes.

| code | meaning |
|---|---|
| 0 | done |
| 1 | a step failed; the message names the step and how to resume |
| 2 | bad input or usage, refused before any write |
| 3 | cancelled by the user |
| 4 | verification failed; no env file was touched |
"""

from __future__ import annotations

from recovery_wizard.errors import RecoveryError

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_VERIFY_FAILED = 4


class RunError(RecoveryError):
    """A run ended early; ``exit_code`` is what the CLI returns."""

    exit_code = EXIT_STEP_FAILED
    status = "failed"


class UsageError(RunError):
    """Bad input or a missing choice: refused before any write."""

    exit_code = EXIT_USAGE
    status = "refused"


class CancelledError(RunError):
    exit_code = EXIT_CANCELLED
    status = "cancelled"


class StepFailedError(RunError):
    """A step failed after the run started writing; resumable."""

    def __init__(self, step: str, message: str, *, hint: str = "") -> None:
        self.step = step
        super().__init__(f"Step {step!r} failed: {message}", hint=hint)


class VerificationFailedError(RunError):
    exit_code = EXIT_VERIFY_FAILED
    status = "verification-failed"
