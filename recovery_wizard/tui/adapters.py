"""The runbook's Prompter and Reporter, for the TUI.

A confirmation becomes a modal awaited in the worker that runs the step (``push_screen_wait`` only works in a
worker, and every step runs in one). Reports go to the screen on top, if it shows such things: each run
screen implements :class:`RunView`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from recovery_wizard.recovery.outcome import UsageError

if TYPE_CHECKING:
    from textual.app import App

    from recovery_wizard.tui.app import WizardApp


@runtime_checkable
class RunView(Protocol):
    def add_line(self, kind: str, text: str) -> None: ...

    def set_progress(self, text: str) -> None: ...

    def show_block(self, title: str, body: str) -> None: ...


class TuiReporter:
    def __init__(self, app: App[Any]) -> None:
        self.app: App[Any] = app
        self.lines: list[tuple[str, str]] = []
        self.block: tuple[str, str] | None = None  # the last block shown, until a question takes it

    def _view(self) -> RunView | None:
        # The screen under a modal is the one the step belongs to.
        for screen in reversed(self.app.screen_stack):
            if isinstance(screen, RunView):
                return screen
        return None

    def _add(self, kind: str, text: str) -> None:
        self.lines.append((kind, text))
        view = self._view()
        if view is not None:
            view.add_line(kind, text)

    def step(self, key: str, title: str) -> None:
        self._add("step", title)

    def info(self, message: str) -> None:
        self._add("info", message)

    def warn(self, message: str) -> None:
        self._add("warn", message)

    def progress(self, message: str) -> None:
        view = self._view()
        if view is not None:
            view.set_progress(message)

    def output(self, line: str) -> None:
        self._add("output", line)

    def show(self, title: str, body: str) -> None:
        self.block = (title, body)
        view = self._view()
        if view is not None:
            view.show_block(title, body)


class TuiPrompter:
    """Confirmations as modals. The wizard asks every choice on its own screen before the plan, so a step
    that still needs one is a bug, reported as such rather than guessed."""

    def __init__(self, app: WizardApp) -> None:
        self.app = app
        # The in-place restore's typed confirmation is asked on the plan screen, before the run begins (so
        # Cancel leaves nothing begun); the runbook's own question then finds it answered, once.
        self.confirmed_overwrite: str | None = None

    async def choose(self, question: str, choices: list[tuple[str, str]], *, option: str) -> str:
        raise UsageError(f"The wizard has no answer for: {question}")

    async def text(self, question: str, *, option: str, default: str = "") -> str:
        raise UsageError(f"The wizard has no answer for: {question}")

    async def confirm(self, question: str, *, default: bool = False) -> bool:
        from recovery_wizard.tui.screens.modals import ConfirmModal

        # What the question is about (the .env diff shown just before) goes into the modal: a modal covers
        # most of an 80×24 screen, and a confirmation must never hide what it asks about.
        block, self.app.reporter.block = self.app.reporter.block, None
        details = f"{block[0]}\n{block[1]}" if block else ""
        answer = await self.app.push_screen_wait(ConfirmModal(question, details=details))
        return bool(answer)

    async def type_to_confirm(self, question: str, expected: str) -> bool:
        from recovery_wizard.tui.screens.modals import TypeToConfirmModal

        if self.confirmed_overwrite == expected:
            self.confirmed_overwrite = None
            return True
        answer = await self.app.push_screen_wait(TypeToConfirmModal(question, expected))
        return bool(answer)
