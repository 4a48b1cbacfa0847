"""The "why" panel: what the step does, why it matters, and how to do it by hand (learning mode)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from recovery_wizard.recovery.stepinfo import StepInfo
from recovery_wizard.tui.text import safe


class WhyPanel(VerticalScroll):
    def __init__(self, info: StepInfo | None, *, by_hand: str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.info = info
        self.by_hand = by_hand  # this run's own command, when it is known; else the step's generic one

    def compose(self) -> ComposeResult:
        yield Static("Why this step", classes="why-title")
        if self.info is None:
            return
        yield Static("[b]What it does[/b]", classes="why-head")
        yield Static(safe(self.info.what), classes="why-text")
        yield Static("[b]Why it matters[/b]", classes="why-head")
        yield Static(safe(self.info.why), classes="why-text")
        yield Static("[b]By hand[/b]", classes="why-head")
        # Not "#by-hand": that is the Done screen's box of what is left to do by hand.
        yield Static(safe(self.by_hand or self.info.console), classes="why-code", id="why-by-hand")
        yield Static("F1 hides this panel.", classes="why-hint")
