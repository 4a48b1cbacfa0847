"""Strings from Neon, a database or the user, made safe for the wizard's widgets.

Two dangers, one place: a name may hold markup (``[b]main[/b]``, ``ci/[/]fix``), which a widget would
style or refuse with a MarkupError, and control sequences, which would reach the terminal (see
:mod:`recovery_wizard.textsafe`). Widgets that parse markup get :func:`safe`; cells and options get
:func:`literal`, a Text that is never parsed at all.
"""

from __future__ import annotations

from rich.text import Text
from textual.markup import escape

from recovery_wizard.textsafe import printable


def safe(text: object, *, multiline: bool = True) -> str:
    """``text`` as markup that shows it literally: controls made visible, then square brackets escaped."""
    return escape(printable(str(text), multiline=multiline))


def literal(text: object) -> Text:
    """One line of data (a name, a value) for a table cell or a list option: never parsed as markup."""
    return Text(printable(str(text)), end="")


ECHO_LIMIT = 24


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """What the user typed, short enough to echo in a message: a 10 KB paste must not push the screen away."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}…"
