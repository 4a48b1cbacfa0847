"""Hostile data from a real Neon (the sandbox) and a real database, in the running wizard.

Branches named with markup and terminal escapes sit next to main; a look at the past returns a value with an
OSC, a CSI and a newline in it. The wizard lists them, filters them and shows the value as text: nothing is
sent to the terminal as a control sequence, and a value's newline cannot pass for a row of its own.
"""

from __future__ import annotations

from textual.widgets import Collapsible, DataTable, Input

from recovery_wizard.textsafe import printable
from recovery_wizard.tui.app import WizardApp
from recovery_wizard.tui.screens import choices
from tests.tui.conftest import SIZE, Incident, on_screen, screen_text, through_source, wait_until
from tests.tui_snapshots.test_hostile import FORBIDDEN, HOSTILE_NAMES, terminal

VALUE_SQL = (
    "SELECT chr(27) || ']0;PWNED' || chr(7) || chr(10) || 'fake row' || chr(27) || '[41m' AS v, "
    "repeat('x', 100000) AS big"
)


async def test_hostile_branches_and_a_hostile_value_are_shown_as_text(incident: Incident) -> None:
    for name in HOSTILE_NAMES:
        await incident.client.create_branch(
            incident.sandbox.project_id, parent_id=incident.main.id, name=name
        )
    count = len(await incident.branches())
    app = WizardApp(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        branches = await on_screen(pilot, choices.BranchScreen)
        table = branches.query_one("#branches", DataTable)
        await wait_until(pilot, lambda: table.row_count == count, "every branch listed")
        sent, text = terminal(app)
        assert not [s for s in FORBIDDEN if s in sent]
        assert all(printable(name) in text for name in HOSTILE_NAMES)
        await pilot.press(*"[b]")
        await wait_until(pilot, lambda: table.row_count == 1, "the filter on [b]")
        await pilot.press("backspace", "backspace", "backspace", *"main")
        await pilot.press("enter")  # main: the default branch, first

        await through_source(pilot)  # Neon history, the highlighted choice
        moment = await on_screen(pilot, choices.MomentScreen)
        await pilot.press(*"5 minutes ago")
        moment.query_one("#peek-box", Collapsible).collapsed = False
        await pilot.pause()
        sql = moment.query_one("#peek-sql", Input)
        sql.value = VALUE_SQL
        sql.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen_text(moment, "#peek-result").startswith("At "), "the look")
        result = screen_text(moment, "#peek-result").splitlines()
        assert result[1:] == ["v | big", "\\x1b]0;PWNED\\x07\\nfake row\\x1b[41m | " + "x" * 199 + "…"]
        sent, _ = terminal(app)
        assert not [s for s in FORBIDDEN if s in sent]
