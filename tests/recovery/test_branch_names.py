"""Branch names as Neon takes them (1-256 characters), and nothing that garbles a terminal or a report."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recovery_wizard.recovery.outcome import UsageError
from recovery_wizard.recovery.plan import BRANCH_NAME_MAX, check_branch_name


@pytest.mark.parametrize(
    "name",
    ["main-restore-2026-11-21T01-29-59Z", "main_old_2026", "feature/fix.1", "herstel-gisteren", "ü" * 256],
)
def test_ordinary_names_pass(name: str) -> None:
    assert check_branch_name(name) == name


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("", "empty"),
        ("x" * (BRANCH_NAME_MAX + 1), "at most 256"),
        ("a\nb", "U+000A"),
        ("a\rb", "U+000D"),
        ("a\x00b", "U+0000"),
        ("a\x7fb", "U+007F"),
        ("a\u2028b", "U+2028"),
        ("a\u202eb", "U+202E"),  # right-to-left override: a name that reads backwards
        ("a\u00a0b", "U+00A0"),  # looks like a space
        (" main", "space"),
        ("main ", "space"),
    ],
)
def test_bad_names_are_refused_saying_why(name: str, said: str) -> None:
    with pytest.raises(UsageError) as refused:
        check_branch_name(name)
    assert said in str(refused.value)
    assert refused.value.exit_code == 2
    assert "\n" not in str(refused.value)  # the refusal itself stays on one line


@given(st.text(min_size=1, max_size=300))
def test_any_accepted_name_is_one_printable_line_neon_takes(name: str) -> None:
    try:
        check_branch_name(name)
    except UsageError:
        return
    assert 1 <= len(name) <= BRANCH_NAME_MAX
    assert name.isprintable() and name == name.strip()
