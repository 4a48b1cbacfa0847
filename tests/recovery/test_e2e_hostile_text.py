"""Hostile names and values in the CLI's text output, its progress and the incident record.

A branch named with an OSC sequence (which retitles the terminal) or a CSI (which recolours it), and a query
whose value holds one: the CLI prints them as visible escapes, and ``--json`` keeps the exact value (JSON
escapes control characters itself). Real subprocesses against a served sandbox.
"""

from __future__ import annotations

import dataclasses
import io

import msgspec

from recovery_wizard.plain.reporter import StderrReporter
from recovery_wizard.recovery.report import render_report
from recovery_wizard.textsafe import printable
from tests.recovery.conftest import World
from tests.tui_snapshots.scenes import MAIN, RESTORED, finished_run, make_plan, verification

OSC_TITLE = "\x1b]0;PWNED\x07"
CSI_RED = "\x1b[41m"
HOSTILE = f"ci/[/]fix{OSC_TITLE}{CSI_RED}x"
# NO_COLOR is set for the CLI: its output holds no escape sequence of its own, so any ESC or BEL is data.
CONTROLS = ("\x1b", "\x07", "\x9b")


def assert_printable(text: str) -> None:
    for control in CONTROLS:
        assert control not in text, f"{control!r} reached the terminal"


async def test_branches_and_timeline_print_a_hostile_name_visibly_and_json_keeps_it_exact(
    world: World,
) -> None:
    await world.client.create_branch(world.sandbox.project_id, parent_id=world.main.id, name=HOSTILE)
    text = await world.cli("branches")
    assert text.code == 0, text.stderr
    assert_printable(text.stdout + text.stderr)
    assert printable(HOSTILE) in text.stdout
    as_json = await world.cli("branches", "--json")
    assert as_json.code == 0, as_json.stderr
    assert "\x1b" not in as_json.stdout  # escaped as \u001b by json.dumps
    assert HOSTILE in [b["name"] for b in as_json.json()["branches"]]
    # The timeline names the branch in its "created" event.
    timeline = await world.cli("timeline")
    assert timeline.code == 0, timeline.stderr
    assert_printable(timeline.stdout + timeline.stderr)
    assert printable(HOSTILE) in timeline.stdout


async def test_peek_prints_a_hostile_value_visibly(world: World) -> None:
    sql = "SELECT chr(27) || ']0;PWNED' || chr(7) || chr(27) || '[41m' || chr(10) || 'x' AS v"
    result = await world.cli("peek", "--at", "5 minutes ago", "--sql", sql)
    assert result.code == 0, result.stderr
    assert_printable(result.stdout + result.stderr)
    assert "\\x1b]0;PWNED\\x07\\x1b[41m" in result.stdout


def test_the_reporter_prints_hostile_lines_visibly() -> None:
    stream = io.StringIO()
    reporter = StderrReporter(stream)
    reporter.info(f"Creating {HOSTILE}")
    reporter.progress(f"Waiting for {HOSTILE}")
    reporter.warn(f"{HOSTILE}\rOK")
    reporter.show(f"Branch {HOSTILE}", f"name: {HOSTILE}\nnext line")
    assert_printable(stream.getvalue())
    assert "\\r" in stream.getvalue()
    assert printable(HOSTILE) in stream.getvalue()


def test_the_incident_record_shows_hostile_names_and_values_visibly() -> None:
    result = finished_run()
    branch = msgspec.structs.replace(MAIN, name=HOSTILE)
    result.plan = dataclasses.replace(make_plan(), branch=branch)
    result.restore_branch = msgspec.structs.replace(RESTORED, name=f"{HOSTILE}-restore")
    data = verification()
    data["tables"][0]["table"] = HOSTILE
    data["checks"][0]["restored"]["value"] = HOSTILE
    result.verification = data
    result.lost = [{"table": HOSTILE, "rows": 2, "columns": ["createdAt"]}]
    record = render_report(result)
    assert_printable(record)
    assert "\r" not in record
    assert printable(HOSTILE) in record
