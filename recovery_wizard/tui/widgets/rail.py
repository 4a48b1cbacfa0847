"""The step rail: every step of the runbook, marked done, skipped, failed, current or pending. Always visible."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static


class StepRail(Vertical):
    def __init__(
        self, steps: list[tuple[str, str]], current: str, states: dict[str, str], **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.steps = steps
        self.current = current
        self.states = states  # step → done / skipped / failed / cancelled / interrupted (else pending)

    def compose(self) -> ComposeResult:
        yield Static("Runbook", classes="rail-title")
        for key, title in self.steps:
            state = self.states.get(key, "pending")
            if key == self.current:
                mark, state = "▶", "current"
            elif state == "done":
                mark = "✔"
            elif state == "skipped":
                mark = "–"
            elif state in ("failed", "cancelled", "interrupted"):
                mark, state = "✘", "failed"
            else:
                mark, state = "·", "pending"
            yield Static(f"{mark} {title}", classes=f"rail-step {state}", id=f"rail-{key}")
