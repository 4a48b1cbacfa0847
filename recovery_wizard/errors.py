"""The root of every error the project raises on purpose.

UIs catch :class:`RecoveryError` and show its message; anything else is a bug and gets a traceback.
Messages are written for the person at the keyboard and never hold a secret (see ``redact``).
"""

from __future__ import annotations


class RecoveryError(Exception):
    """Base class: ``str(error)`` is a complete, human sentence; ``hint`` says what to do next."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        from recovery_wizard.redact import redact

        super().__init__(redact(message))
        if hint:
            self.hint = redact(hint)
