"""Modals: confirmations (typed for destructive actions), resume, and the one error path for worker failures."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from recovery_wizard.errors import RecoveryError
from recovery_wizard.neon.errors import NeonError
from recovery_wizard.redact import redact
from recovery_wizard.textsafe import printable
from recovery_wizard.tui.text import safe


class ConfirmModal(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "no", "No")]

    def __init__(self, question: str, *, yes: str = "Yes, go ahead", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Static(safe(redact(self.question)), classes="modal-text")
            with Horizontal(classes="modal-actions"):
                yield Button(self.no, id="no")
                yield Button(self.yes, id="yes", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_no(self) -> None:
        self.dismiss(False)


class TypeToConfirmModal(ModalScreen[bool]):
    """In-place restore: the user types the branch name, so a stray Enter cannot overwrite production."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, expected: str) -> None:
        super().__init__()
        self.question, self.expected = question, expected

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal danger"):
            yield Static(safe(redact(self.question)), classes="modal-text")
            yield Static(
                f"Type [b]{safe(self.expected, multiline=False)}[/b] to confirm:", classes="modal-text"
            )
            yield Input(placeholder=printable(self.expected), id="typed")
            with Horizontal(classes="modal-actions"):
                yield Button("Cancel", id="cancel")
                yield Button("Overwrite", id="confirm", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#typed", Input).focus()

    def matches(self, typed: str) -> bool:
        # A name with a control character in it is shown with the character escaped ("\x1b"), and nobody can
        # type an ESC: what is shown is accepted too.
        return typed.strip() in (self.expected, printable(self.expected))

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = not self.matches(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.matches(event.value):
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)


class ErrorModal(ModalScreen[str]):
    """Every worker failure lands here: what failed, Neon's message and request id, what to try next.

    Dismisses with ``"retry"`` or ``"close"``.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, error: BaseException, *, what: str, can_retry: bool = True) -> None:
        super().__init__()
        self.error, self.what, self.can_retry = error, what, can_retry

    def compose(self) -> ComposeResult:
        error = self.error
        with Vertical(classes="modal danger"):
            yield Static(f"[b]{safe(self.what)} failed[/b]", classes="modal-title")
            text = str(error) if isinstance(error, RecoveryError) else f"{type(error).__name__}: {error}"
            yield Static(safe(redact(text)), classes="modal-text", id="error-message")
            if isinstance(error, NeonError):
                details = []
                if error.status:
                    details.append(f"HTTP {error.status}")
                if error.request:
                    details.append(error.request)
                if error.request_id and error.request_id not in str(error):
                    details.append(f"request id {error.request_id}")
                if details:
                    yield Static(safe(" · ".join(details)), classes="modal-detail", id="error-detail")
            hint = error.hint if isinstance(error, RecoveryError) else ""
            if not isinstance(error, RecoveryError):
                hint = (
                    "This is a bug in recovery-wizard. Nothing was written before the plan was confirmed; after "
                    "that, the journal in .recovery-wizard/runs/ shows how far the run got."
                )
            if hint:
                yield Static("Next: " + safe(redact(hint)), classes="modal-hint", id="error-hint")
            with Horizontal(classes="modal-actions"):
                yield Button("Close", id="close")
                if self.can_retry:
                    yield Button("Try again", id="retry", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#retry" if self.can_retry else "#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "close")

    def action_close(self) -> None:
        self.dismiss("close")
