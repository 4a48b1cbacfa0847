"""The restore window as a bar, with the chosen moment and the project's snapshots on it; it fits whatever
width it is given."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from textual.widget import Widget

from recovery_wizard.recovery.timepoint import RestoreWindow

SNAPSHOT_MARK = "◆"


def render_bar(
    window: RestoreWindow, moment: datetime | None, width: int = 56, snapshots: Sequence[datetime] = ()
) -> str:
    """Three lines: ``├──◆─●──┤`` (the dot is the moment, a diamond a snapshot), the window's ends below it,
    and a note. Snapshots older than the window get a dotted stretch of their own to the left,
    ``┄◆┄┄├──●──┤``: a broken axis, since a week of snapshots on the scale of a six-hour window would
    squeeze the window to nothing."""
    width = max(width, 12)
    older = sorted(s for s in snapshots if s < window.earliest)
    inside = [s for s in snapshots if window.earliest <= s < window.now]
    # The stretch before the window: a quarter of the bar, from a little before the oldest snapshot.
    before = max(4, (width - 2) // 4) if older else 0
    cells = ["─"] * (width - 2 - before)
    head = ["┄"] * before
    start = window.earliest
    if older:
        span = window.earliest - older[0]
        # The oldest mark in the second cell: the first is kept for a moment older than every snapshot (◀).
        start = older[0] - span * 1.5 / (before - 1)

    def place_before(at: datetime, mark: str) -> None:
        share = (at - start) / (window.earliest - start)
        head[min(before - 1, max(0, int(share * before)))] = mark

    for at in older:
        place_before(at, SNAPSHOT_MARK)
    for at in inside:
        cells[min(len(cells) - 1, int(window.fraction(at) * len(cells)))] = SNAPSHOT_MARK
    note = ""
    if moment is not None:
        if moment < window.earliest:
            note = "◀ before the oldest restorable moment"
            if older and moment >= start:
                place_before(moment, "●")
            elif older:
                head[0] = "◀"
            else:
                cells[0] = "◀"
        elif moment >= window.now:
            cells[-1], note = "▶", "▶ in the future"
        else:
            cells[min(len(cells) - 1, int(window.fraction(moment) * len(cells)))] = "●"
    left = f"{window.earliest:%m-%d %H:%M} UTC"
    right = "now"
    if before + len(left) + 1 + len(right) > width:
        left = left.removesuffix(" UTC")
    labels = " " * before + left + " " * max(1, width - before - len(left) - len(right)) + right
    if not note and snapshots:
        note = f"{SNAPSHOT_MARK} snapshot"
        if older:
            note += f"   ┄ before the window, from {start:%m-%d}"
    return f"{''.join(head)}├{''.join(cells)}┤\n{labels[:width]}\n{note}"


class WindowBar(Widget):
    DEFAULT_CSS = "WindowBar { height: 3; }"

    def __init__(self, window: RestoreWindow, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.window = window
        self.moment: datetime | None = None
        self.snapshots: list[datetime] = []

    def render(self) -> str:
        return render_bar(self.window, self.moment, self.size.width or 56, self.snapshots)

    def show(self, moment: datetime | None) -> None:
        self.moment = moment
        self.set_class(moment is not None and self.window.earliest <= moment < self.window.now, "inside")
        self.refresh()

    def show_snapshots(self, moments: Sequence[datetime]) -> None:
        self.snapshots = list(moments)
        self.refresh()
