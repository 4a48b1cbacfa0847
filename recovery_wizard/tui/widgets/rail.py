"""The step rail: every step of the runbook, marked done, skipped, failed, current or pending. Always visible.

One widget that renders its lines, not a Static a step: every screen of the wizard carries the rail, and a
dozen widgets more to style and lay out is most of what the first paint paid beyond Textual's own floor.
The colours still come from app.tcss (its component classes), so both themes read as before.
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

TITLE = "Runbook"
# A step's state → its mark; states not listed here are pending.
MARKS = {"current": "▶", "done": "✔", "skipped": "–", "failed": "✘", "pending": "·"}


def rail_state(key: str, current: str, states: dict[str, str]) -> str:
    """The state the rail shows: current, done, skipped, failed (also cancelled, interrupted) or pending."""
    if key == current:
        return "current"
    state = states.get(key, "pending")
    if state in ("failed", "cancelled", "interrupted"):
        return "failed"
    return state if state in MARKS else "pending"


class StepRail(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {f"rail--{name}" for name in ("title", *MARKS)}

    def __init__(
        self, steps: list[tuple[str, str]], current: str, states: dict[str, str], **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        # (key, state, "mark title") a step; fixed for the screen's life (a new screen shows new states).
        self.rows = [
            (key, state, f"{MARKS[state]} {title}")
            for key, title in steps
            for state in [rail_state(key, current, states)]
        ]
        self._strips: tuple[tuple[int, int], list[Strip]] | None = None  # (size, a strip a line), drawn once

    @property
    def lines(self) -> list[str]:
        """Each step's line as shown: its mark, a space and its title."""
        return [line for _, _, line in self.rows]

    def mark(self, key: str) -> str:
        return next(line[0] for k, _, line in self.rows if k == key)

    def notify_style_update(self) -> None:
        self._strips = None  # a new theme or class: the lines are drawn again in the new colours
        super().notify_style_update()

    def render_line(self, y: int) -> Strip:
        key = (self.content_size.width, self.content_size.height)
        if self._strips is None or self._strips[0] != key:
            self._strips = (key, self._draw(*key))
        strips = self._strips[1]
        return strips[y] if 0 <= y < len(strips) else Strip.blank(key[0])

    def _draw(self, width: int, height: int) -> list[Strip]:
        # Line by line (Textual's line API), each line drawn as the Static a line once was: its text in its
        # style, the rest of the width in background only (the current step's bar in its own background).
        blank = Style(bgcolor=self.rich_style.bgcolor)
        lines = [(TITLE, self.get_component_rich_style("rail--title")), None]
        lines += [(text, self.get_component_rich_style(f"rail--{state}")) for _, state, text in self.rows]
        strips = []
        for y in range(height):
            line = lines[y] if y < len(lines) else None
            if line is None:
                strips.append(Strip.blank(width, blank))
                continue
            text, style = line[0][:width], line[1]
            segments = [Segment(text, style)]
            if len(text) < width:
                segments.append(
                    Segment(" " * (width - len(text)), Style(bgcolor=style.bgcolor or blank.bgcolor))
                )
            strips.append(Strip(segments, width))
        return strips
