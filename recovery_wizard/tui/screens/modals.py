"""Modals: confirmations (typed for destructive actions), resume, and the one error path for worker failures."""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual import events
from textual._time import get_time  # the clock of events.Key.time
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from recovery_wizard.errors import RecoveryError
from recovery_wizard.neon.errors import NeonError
from recovery_wizard.recovery.lock import LockedError as AppLockedError
from recovery_wizard.redact import redact
from recovery_wizard.textsafe import printable
from recovery_wizard.tui.keys import ACTIVATION_KEYS
from recovery_wizard.tui.text import safe

R = TypeVar("R")


class ArmedModal(ModalScreen[R]):
    """A modal that takes Enter/Space only as a new press made after it was shown (see tui.keys): a key
    typed ahead, or Enter mashed since an earlier screen, never answers it."""

    shown_at: float | None = None

    def on_mount(self) -> None:
        # Textual calls this as well as a subclass's own on_mount (handlers run along the MRO).
        self.shown_at = get_time()

    def on_key(self, event: events.Key) -> None:
        fresh = getattr(self.app, "fresh_press", None)
        if event.key in ACTIVATION_KEYS and fresh is not None and not fresh(self.shown_at, event.time):
            event.prevent_default()
            event.stop()


class ConfirmModal(ArmedModal[bool]):
    """Yes/No; No has the focus (every confirmation of a write defaults to No). ``details`` is what the
    question is about (a diff), shown inside the modal so no screen size can hide it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "no", "No")]

    def __init__(
        self, question: str, *, yes: str = "Yes, go ahead", no: str = "No", details: str = ""
    ) -> None:
        super().__init__()
        self.question, self.yes, self.no, self.details = question, yes, no, details

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            if self.details:
                with ScrollableContainer(classes="modal-details", id="details"):
                    yield Static(safe(redact(self.details)), id="details-text")
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


class TypeToConfirmModal(ArmedModal[bool]):
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


# Refusals to write: the write was stopped because doing it would harm someone else's work (the file changed
# since it was read, another run holds the directory). Retrying from the box is not a harmless "try again"
# there: it would write over that work with a fresh diff. These boxes offer Close only, with the focus on it,
# so neither Enter nor Tab+Enter can redo the write; the screen (Start) or a resume asks again deliberately.
def refuses_a_write(error: BaseException) -> bool:
    """One of WRITE_REFUSALS: a changed env file, or another run holding the directory."""
    # Imported here: envfile (and python-dotenv) load when an error box opens, not before the first paint.
    from recovery_wizard.recovery.envfile import EnvFileChangedError

    return isinstance(error, (EnvFileChangedError, AppLockedError))


class ErrorModal(ArmedModal[str]):
    """Every worker failure lands here: what failed, Neon's message and request id, what to try next.

    Dismisses with ``"retry"`` or ``"close"``. "Try again" is offered (and focused) only where retrying is
    harmless; after a refusal to write (:func:`refuses_a_write`) the box offers Close alone.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(self, error: BaseException, *, what: str, can_retry: bool = True) -> None:
        super().__init__()
        self.error, self.what = error, what
        self.can_retry = can_retry and not refuses_a_write(error)

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
