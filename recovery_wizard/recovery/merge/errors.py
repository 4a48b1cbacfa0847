"""What a merge-back refuses, and why: every error names the table and says what to do."""

from __future__ import annotations

from recovery_wizard.errors import RecoveryError


class MergeError(RecoveryError):
    """A merge-back could not be planned or applied; nothing was written to the live branch."""


class MergeRefusedError(MergeError):
    """Refused at pre-flight (rights, a table the merge cannot write): nothing was written."""


class MergeChangedError(MergeError):
    """The live branch changed under the merge in a way the reviewed plan did not foresee: rolled back."""
