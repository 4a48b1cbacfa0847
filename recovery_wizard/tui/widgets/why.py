"""The "why" panel: what the step does, why it matters, and how to do it by hand (learning mode).

Hidden by default outside the demo and drills (and at 80 columns), so its text is composed only when it is
first shown: a hidden panel's widgets would still be styled and laid out on every screen's first paint.
"""

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
        self.filled = False

    def compose(self) -> ComposeResult:
        if self.has_class("-off"):
            return  # composed when first shown (show)
        self.filled = True
        yield from self.contents()

    def show(self, visible: bool) -> None:
        """Show or hide the panel (F1); its text is mounted the first time it is shown."""
        self.set_class(not visible, "-off")
        if visible and not self.filled:
            self.filled = True
            self.mount_all(self.contents())

    def set_by_hand(self, text: str) -> None:
        self.by_hand = text
        for widget in self.query("#why-by-hand").results(Static):
            widget.update(safe(text))

    def contents(self) -> ComposeResult:
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
