"""textsafe.printable: every control character shown as its escape, everything else untouched."""

from __future__ import annotations

import unicodedata

import pytest

from recovery_wizard.textsafe import printable


def test_every_control_character_is_shown_not_sent() -> None:
    for codepoint in range(0x110000):
        char = chr(codepoint)
        if unicodedata.category(char) == "Cc":
            shown = printable(f"a{char}b")
            assert shown.startswith("a\\") and shown.endswith("b"), hex(codepoint)
            assert all(c.isprintable() for c in shown), hex(codepoint)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("main\x1b]0;PWNED\x07", "main\\x1b]0;PWNED\\x07"),
        ("red\x1b[41malert", "red\\x1b[41malert"),
        ("csi\x9b31m", "csi\\x9b31m"),
        ("evil\u202eexe.txt", "evil\\u202eexe.txt"),
        ("two\nlines\r\tx", "two\\nlines\\r\\tx"),
        ("line\u2028sep", "line\\u2028sep"),
    ],
)
def test_a_name_is_one_printable_line(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_a_message_keeps_its_lines_and_tabs_but_not_carriage_returns() -> None:
    assert printable("a\n\tb\r\x1b[2J", multiline=True) == "a\n\tb\\r\\x1b[2J"


@pytest.mark.parametrize(
    "text", ["ci/[/]fix", "café", "日本語ブランチ", "👩‍💻 dev", "a\\x1b is already escaped", ""]
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert printable(text) == text
