"""The step rail: every step of the runbook, marked done, current or pending. Always visible."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class StepRail(Vertical):
    def __init__(self, steps: list[tuple[str, str]], current: str, done: set[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.steps = steps
        self.current = current
        self.done = done

    def compose(self) -> ComposeResult:
        yield Static("Runbook", classes="rail-title")
        for key, title in self.steps:
            if key == self.current:
                mark, state = "▶", "current"
            elif key in self.done:
                mark, state = "✔", "done"
            else:
                mark, state = "·", "pending"
            yield Static(f"{mark} {title}", classes=f"rail-step {state}", id=f"rail-{key}")
