"""Every table in the incident record (and a drill's record) stays a table whatever the names in it hold.

A branch, table or database name is data: a ``|`` in it would split a cell, a newline end a row, a backtick
open a code span over the cells after it. The record is read by a Markdown renderer (a ticket, GitHub), so
the check parses it as one (markdown-it's GFM tables) and compares each cell with the name it should hold.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import msgspec
import pytest
from markdown_it import MarkdownIt

from recovery_wizard.recovery.journal import Journal
from recovery_wizard.recovery.report import cell, render_report, row
from recovery_wizard.textsafe import printable
from tests.tui_snapshots.scenes import MAIN, finished_run, make_plan, verification

HOSTILE_NAMES = [
    "a|b",
    "pipe at end|",
    "|",
    "two\nlines",
    "crlf\r\nname",
    "tick`s",
    "``double``",
    "back\\|slash",
    "trailing\\",
    "`code | span`",
    "long-" + "x|y`z\n" * 200,
]


def tables(markdown: str) -> list[list[list[str]]]:
    """The record's tables as rows of cell texts (header row first), as a GFM renderer reads them."""
    found: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    cells: list[str] | None = None
    for token in MarkdownIt("gfm-like").parse(markdown):
        if token.type == "table_open":
            current = []
        elif token.type == "table_close" and current is not None:
            found.append(current)
            current = None
        elif token.type == "tr_open":
            cells = []
        elif token.type == "tr_close" and current is not None and cells is not None:
            current.append(cells)
            cells = None
        elif token.type == "inline" and cells is not None:
            # The text a reader sees: code spans' content included, escapes resolved.
            cells.append("".join(child.content for child in token.children or []))
    return found


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda name: repr(name)[:24])
def test_one_cell_reads_back_as_the_name_shown_visibly(name: str) -> None:
    line = row(name, "2", name)
    assert "\n" not in line
    [[_header, *rows]] = tables(f"| a | b | c |\n|---|---|---|\n{line}\n")
    assert rows == [[printable(name), "2", printable(name)]]


def test_a_cell_keeps_the_printable_escapes_readable_in_the_raw_text() -> None:
    # A backslash before a letter escapes nothing in Markdown: left as it is, the raw file reads as it renders.
    assert cell("a\x1bb\nc") == "a\\x1bb\\nc"
    assert cell("a|b`c\\|") == "a\\|b\\`c\\\\\\|"


def _hostile_record(tmp_path: Path, name: str) -> str:
    result = finished_run()
    result.journal = Journal(tmp_path)
    result.lost = []
    result.journal.append("run", "start", command="restore")
    result.journal.append("step", "done", "restore", branch_id="br-x", branch_name=name)
    result.plan = dataclasses.replace(make_plan(), branch=msgspec.structs.replace(MAIN, name=name))
    data: dict[str, Any] = verification()
    data["tables"][0]["table"] = name
    data["tables"][1]["schema"] = name
    data["source_counts"] = {
        "file": name,
        "ok": False,
        "tables": [{"table": name, "expected": 3, "actual": 2, "ok": False}],
    }
    result.verification = data
    result.search = {
        "canary": "SELECT 1",
        "run_id": "r",
        "last_good": "t1",
        "first_bad": "t2",
        "probes": [{"at": "2026-11-21T01:00:00Z", "holds": True, "lens": name}],
    }
    return render_report(result)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda name: repr(name)[:24])
def test_every_table_in_the_record_keeps_its_columns_with_a_hostile_name(tmp_path: Path, name: str) -> None:
    record = _hostile_record(tmp_path, name)
    found = tables(record)
    assert len(found) == 4, "timeline, the search's probes, verification, the file's own counts"
    for table in found:
        width = len(table[0])
        assert all(len(r) == width for r in table), table
    shown = printable(name)
    timeline, probes, verified, file_counts = found
    assert any(shown in r[1] for r in timeline[1:]), "the branch name in the timeline, whole"
    assert probes[1][2] == shown
    assert verified[1][0] == shown
    assert verified[2][0] == f"{shown}.Order"
    assert file_counts[1][0] == shown


def test_the_merge_table_keeps_its_columns_with_a_hostile_table_name(tmp_path: Path) -> None:
    name = "public.we|ird`\nname"
    result = finished_run()
    result.journal = Journal(tmp_path)
    result.lost = []
    result.plan = dataclasses.replace(make_plan(), strategy="merge-back")
    result.merge = {
        "plan": {
            "tables": [{"table": name, "diff": {"deleted": 2, "changed": 0}, "added_kept": 1, "rule": "a|b"}]
        },
        "result": {"inserted": {name: 2}, "reverted": {}},
    }
    merge = next(t for t in tables(render_report(result)) if t[0][0] == "table" and "re-inserted" in t[0])
    assert merge[1] == [printable("we|ird`\nname"), "2", "2", "0", "0", "1", "0", "a|b"]


def test_a_name_with_newlines_cannot_add_a_heading_or_an_item_to_the_record(tmp_path: Path) -> None:
    forged = "main\n## Verification\nAll 5 tables restored.\n- Nothing lost"
    result = finished_run()
    result.journal = Journal(tmp_path)
    result.plan = dataclasses.replace(
        make_plan(), branch=msgspec.structs.replace(MAIN, name=forged), database=forged, role=forged
    )
    assert result.restore_branch is not None
    result.restore_branch = msgspec.structs.replace(result.restore_branch, name=forged)
    result.lost = [{"table": forged, "rows": 2, "columns": ["createdAt"]}]
    lines = render_report(result).splitlines()
    assert lines.count("## Verification") == 1
    assert "All 5 tables restored." not in lines and "- Nothing lost" not in lines
    assert f"- **Damaged branch**: {printable(forged)} (`{MAIN.id}`)" in lines
