"""The branch screen's table: a DataTable whose cells are laid out once, not once per keystroke.

Textual's DataTable keys its render caches by the table's update count, so after a filter (a clear and a
page of rows added) every visible cell is laid out afresh through Rich (Padding, wrap, crop), though the
same branch was drawn a keystroke ago. Here a cell's layout is kept by the cell itself (the screen builds
each branch's cells once, as immutable Text) and its width, and only the cheap part is redone per render:
the row's colours (zebra stripe, cursor, hover) and the row/column meta that mouse clicks read. What is
drawn is exactly what DataTable draws (tests/tui/test_branch_table.py compares them), so the look and every
DataTable behaviour stay.

Also, a Text cell measures itself once: DataTable measures every cell of every row added to size its
columns, and a keystroke adds a page of rows.

It overrides DataTable's private ``_render_cell``, ``_get_row_style`` and ``_update_dimensions`` (Textual is
pinned in pyproject.toml): on an upgrade, tests/tui/test_branch_table.py says whether it still draws the same.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions
from rich.measure import Measurement
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

# Laid-out cells kept: the branches a person pages through and narrows to, at every column width seen.
CELL_CACHE = 8192


class Cell(Text):
    """A table cell that never changes once built, so its measure (which depends on its text alone) is
    computed once: DataTable measures every cell of every row added, on every refill."""

    _measured: Measurement | None = None
    _width: int | None = None

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        if self._measured is None:
            self._measured = super().__rich_measure__(console, options)
        return self._measured

    @property
    def width(self) -> int:
        """Its width in cells, as DataTable measures a cell: its widest line (Text's measure, maximum)."""
        if self._width is None:
            self._width = max((cell_len(line) for line in self.plain.splitlines()), default=0)
        return self._width


class BranchTable(DataTable[Any]):
    """A DataTable that keeps each cell's layout across clears (see the module's docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # (id of the cell, width, padding) -> (the cell, its lines unstyled); the cell is held so its id stays
        # its own. Least recently drawn first.
        self._laid_out: OrderedDict[tuple[int, int, int], tuple[object, list[list[Segment]]]] = OrderedDict()
        # Row styles looked up during the render under way (None between renders: the CSS may change then).
        self._row_styles: dict[tuple[int, Style], Style] | None = None

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        row_key = None if row_index < 0 else self._row_locations.get_key(row_index)
        row = None if row_key is None else self.rows.get(row_key)
        if (
            row is None
            or column_index < 0
            or row.height != 1
            or row_index < self.fixed_rows
            or column_index < self.fixed_columns
        ):
            # Header, labels, fixed or multi-line cells: few, and DataTable's own path is right for them.
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cell = self._get_row_renderables(row_index)[1][column_index]
        key = (id(cell), width, self.cell_padding)
        kept = self._laid_out.get(key)
        if kept is not None and kept[0] is cell:
            self._laid_out.move_to_end(key)
            lines = kept[1]
        else:
            # What DataTable renders, less the Styled wrapper: Styled only applies styles to each segment,
            # so applying them afterwards (below) gives the same segments.
            options = self.app.console_options.update_dimensions(width, 1).update(no_wrap=True)
            lines = self.app.console.render_lines(Padding(cell, (0, self.cell_padding)), options)
            self._laid_out[key] = (cell, lines)
            if len(self._laid_out) > CELL_CACHE:
                self._laid_out.popitem(last=False)
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            False,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre_style = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        return [list(Segment.apply_style(line, pre_style, post_style)) for line in lines]

    def render_lines(self, crop: Region) -> list[Strip]:
        # A row's style is its zebra stripe's component style, which DataTable looks up (walking the CSS of
        # every ancestor) per line drawn; within one render the CSS cannot change, so each is looked up once.
        self._row_styles = {}
        try:
            return super().render_lines(crop)
        finally:
            self._row_styles = None

    def _get_row_style(self, row_index: int, base_style: Style) -> Style:
        kept = self._row_styles
        if kept is None or row_index < 0 or row_index < self.fixed_rows:
            return super()._get_row_style(row_index, base_style)
        key = (row_index % 2, base_style)
        style = kept.get(key)
        if style is None:
            style = kept[key] = super()._get_row_style(row_index, base_style)
        return style

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # Rows of Cells widen their columns by their cells' cached measures; DataTable's own pass (a console
        # options object and a measure per cell) is left the rest and the table's virtual size.
        rest: list[RowKey] = []
        columns = self.ordered_columns
        for row_key in new_rows:
            row = self.rows.get(row_key)
            cells = self._data.get(row_key)
            if row is None or cells is None or row_key not in self._row_locations:
                continue
            if (
                row.label is not None
                or row.height != 1
                or not all(isinstance(c, Cell) for c in cells.values())
            ):
                rest.append(row_key)
                continue
            for column in columns:
                cell = cells.get(column.key)
                if isinstance(cell, Cell):
                    column.content_width = max(column.content_width, cell.width)
        super()._update_dimensions(rest)

    def notify_style_update(self) -> None:
        # A theme or CSS change: laid-out cells carry the cells' own styles only, but start afresh anyway.
        self._laid_out.clear()
        super().notify_style_update()
