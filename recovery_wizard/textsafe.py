"""The one helper that makes text from Neon or a database safe to put on a terminal.

A branch name, a project name, a table name, an error message or a query result is data, and data may hold
terminal control sequences: ``\\x1b]0;TITLE\\x07`` retitles the terminal, ``\\x1b[41m`` recolours it, a
carriage return overwrites what was printed before, a bidi override reverses what a person reads. Every
printer (the wizard, the CLI's text output and progress, the incident record) passes such strings through
:func:`printable`, which shows each control character as its escape (``\\x1b``, ``\\u202e``) instead of
sending it. JSON output needs nothing: ``json.dumps`` escapes control characters itself.

Hand-written because no library does exactly this: Rich and Textual strip only BEL, BS, VT, FF and CR and
pass ESC through, and ``repr`` would also quote the string and escape every non-ASCII letter.
"""

from __future__ import annotations

from typing import Final

# C0 controls, DEL and C1 controls (Unicode category Cc): ESC starts CSI/OSC sequences, and a C1 byte such
# as U+009B is a CSI on its own in some terminals.
_CONTROLS: Final = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
# Format characters that change what a person reads without showing themselves: bidi marks, embeddings,
# overrides and isolates ("Trojan source"), and the Unicode line and paragraph separators.
_INVISIBLE: Final = [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]


_NAMED: Final = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(codepoint: int) -> str:
    if codepoint in _NAMED:
        return _NAMED[codepoint]
    return f"\\x{codepoint:02x}" if codepoint < 0x100 else f"\\u{codepoint:04x}"


_ONE_LINE: Final = {cp: _escape(cp) for cp in (*_CONTROLS, *_INVISIBLE)}
# Multi-line text (a message, a log, a query result block) keeps its line breaks and tabs.
_MULTI_LINE: Final = {cp: sub for cp, sub in _ONE_LINE.items() if cp not in (0x0A, 0x09)}


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with every control character shown as its escape, so a terminal prints it and obeys none.

    A name or a value is one line (``multiline=False``): a newline in it becomes ``\\n`` too, so it cannot
    pass for a line of its own. A message or a block keeps its newlines and tabs.

    >>> printable("main\\x1b]0;pwned\\x07")
    'main\\\\x1b]0;pwned\\\\x07'
    >>> printable("a\\nb", multiline=True)
    'a\\nb'
    """
    return text.translate(_MULTI_LINE if multiline else _ONE_LINE)
