"""How a run ends, as the CLI's documented exit codes.

| code | meaning |
|---|---|
| 0 | done |
| 1 | a step failed; the message names the step and how to resume |
| 2 | bad input or usage, refused before any write |
| 3 | cancelled: by the user at a prompt, or interrupted by SIGINT (Ctrl-C), SIGTERM or SIGHUP |
| 4 | verification failed; no env file was touched |

A run that failed (1) or was interrupted (3) after it started writing ends the same way: the journal's
``end`` record, the incident record, and a hint naming the exact ``--resume`` command.
"""

from __future__ import annotations

import re

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


class InterruptedRunError(RunError):
    """A signal (SIGINT, SIGTERM, SIGHUP) stopped a run that had started writing; resumable."""

    exit_code = EXIT_CANCELLED
    status = "interrupted"


class StepFailedError(RunError):
    """A step failed after the run started writing; resumable."""

    def __init__(self, step: str, message: str, *, hint: str = "") -> None:
        self.step = step
        super().__init__(f"Step {step!r} failed: {message}", hint=hint)


class VerificationFailedError(RunError):
    exit_code = EXIT_VERIFY_FAILED
    status = "verification-failed"


# "…, then re-run." and the like: after the first write a new run would make a second restore branch.
_RERUN = re.compile(r"(?:[,;]?\s*(?:and |then )?re-?run(?:ning)?\b[^.;]*)", re.IGNORECASE)


# A bare "`restore --resume`" in a step's own hint: replaced by the exact command (the right one for a drill).
_OLD_RESUME = re.compile(r"[,;]?\s*(?:then )?(?:run )?`(?:recovery-wizard )?[\w-]+ --resume`", re.IGNORECASE)


def resume_command(command: str, run_id: str) -> str:
    return f"recovery-wizard {command} --resume {run_id}"


def resume_hint(hint: str, command: str, run_id: str) -> str:
    """``hint`` with any advice to re-run replaced by the exact command that resumes ``run_id``."""
    kept = _OLD_RESUME.sub("", _RERUN.sub("", hint or "")).strip()
    kept = re.sub(r"\s*[;,]?\s*\.(?:\s*\.)+", ".", re.sub(r"\s*[;,]\s*\.", ".", kept)).strip(" .;,")
    if kept and kept[-1] not in ".!?":
        kept += "."
    if resume_command(command, run_id) in kept:
        return kept
    return f"{kept} Then resume: {resume_command(command, run_id)}".strip()
