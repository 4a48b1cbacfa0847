"""The window bar with snapshots on it: inside the window as marks, older ones on a stretch of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recovery_wizard.recovery.timepoint import RestoreWindow
from recovery_wizard.tui.widgets.window_bar import render_bar

NOW = datetime(2026, 11, 21, 2, 5, tzinfo=UTC)
WINDOW = RestoreWindow.from_retention(6 * 3600, NOW)  # the Free plan's six hours


def test_without_snapshots_the_bar_is_the_window_alone() -> None:
    bar, labels, note = render_bar(WINDOW, NOW - timedelta(hours=3), 40).split("\n")
    assert bar.startswith("├") and bar.endswith("┤") and len(bar) == 40
    assert bar.count("●") == 1 and "◆" not in bar and "┄" not in bar
    assert labels.startswith("11-20 20:05 UTC") and labels.endswith("now")
    assert note == ""


def test_snapshots_inside_the_window_are_marked_on_it() -> None:
    bar, _, note = render_bar(WINDOW, None, 40, [NOW - timedelta(hours=5), NOW - timedelta(hours=1)]).split(
        "\n"
    )
    assert bar.startswith("├") and bar.count("◆") == 2 and len(bar) == 40
    assert bar.index("◆") < len(bar) // 2 < bar.rindex("◆")  # 5 h ago on the left half, 1 h ago on the right
    assert note == "◆ snapshot"


@pytest.mark.parametrize("width", [12, 40, 56, 90])
def test_older_snapshots_get_a_dotted_stretch_and_a_moment_there_is_drawn_on_it(width: int) -> None:
    older = [NOW - timedelta(days=2), NOW - timedelta(hours=20)]
    moment = NOW - timedelta(hours=30)
    bar, labels, note = render_bar(WINDOW, moment, width, older).split("\n")
    assert len(bar) == width and len(labels) <= width
    head, window = bar.split("├")
    assert set(head) <= {"┄", "◆", "●"} and "●" in head and window.endswith("┤")
    assert "●" not in window
    assert note == "◀ before the oldest restorable moment"
    # The window keeps three quarters of the width whatever the snapshots' age.
    assert len(window) >= (width - 2) * 3 // 4


def test_a_moment_older_than_every_snapshot_points_off_the_left_end() -> None:
    bar, _, _ = render_bar(WINDOW, NOW - timedelta(days=30), 40, [NOW - timedelta(days=2)]).split("\n")
    assert bar[0] == "◀" and "●" not in bar and "◆" in bar


def test_the_legend_names_the_stretch_before_the_window() -> None:
    _, labels, note = render_bar(WINDOW, None, 56, [NOW - timedelta(days=2)]).split("\n")
    assert note.startswith("◆ snapshot") and "before the window, from 11-1" in note
    assert labels.lstrip().startswith("11-20 20:05") and labels.startswith(
        " "
    )  # under ├, not at the far left
