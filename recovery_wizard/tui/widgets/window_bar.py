"""The restore window as a bar, with the chosen moment on it; it fits whatever width it is given."""

from __future__ import annotations

from datetime import datetime

from textual.widget import Widget

from recovery_wizard.recovery.timepoint import RestoreWindow


def render_bar(window: RestoreWindow, moment: datetime | None, width: int = 56) -> str:
    """Two lines: ``├───●──┤`` (the dot is the moment) and the window's ends below it."""
    width = max(width, 12)
    cells = ["─"] * (width - 2)
    note = ""
    if moment is not None:
        if moment < window.earliest:
            cells[0], note = "◀", "  ◀ before the oldest restorable moment"
        elif moment >= window.now:
            cells[-1], note = "▶", "  ▶ in the future"
        else:
            cells[min(len(cells) - 1, int(window.fraction(moment) * len(cells)))] = "●"
    left = f"{window.earliest:%m-%d %H:%M} UTC"
    right = "now"
    labels = left + " " * max(1, width - len(left) - len(right)) + right
    return f"├{''.join(cells)}┤\n{labels}\n{note.strip()}"


class WindowBar(Widget):
    DEFAULT_CSS = "WindowBar { height: 3; }"

    def __init__(self, window: RestoreWindow, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.window = window
        self.moment: datetime | None = None

    def render(self) -> str:
        return render_bar(self.window, self.moment, self.size.width or 56)

    def show(self, moment: datetime | None) -> None:
        self.moment = moment
        self.set_class(moment is not None and self.window.earliest <= moment < self.window.now, "inside")
        self.refresh()
