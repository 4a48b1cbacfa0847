"""Every stored snapshot belongs to a test that still exists.

syrupy fails a run that leaves a snapshot unused, but not under pytest-xdist (its workers each see only the
tests they ran, and it does not merge them). Each worker still collects the whole suite, so this test checks
the stored files against the collected tests' names, wherever it runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui_snapshots.conftest import DESELECTED

SNAPSHOTS = Path(__file__).parent / "__snapshots__"


def test_every_stored_snapshot_has_its_test(request: pytest.FixtureRequest) -> None:
    session = request.session
    if any("::" in arg for arg in request.config.args) or DESELECTED:
        pytest.skip("only some tests were selected: a snapshot of one left out would look unused")
    names = {(item.path.stem, item.name) for item in session.items}
    modules = {module for module, _ in names}
    stale = sorted(
        f"{svg.parent.name}/{svg.name}"
        for svg in SNAPSHOTS.glob("*/*.svg")
        # A module not collected this run (only some files were asked for) is not judged.
        if svg.parent.name in modules and (svg.parent.name, svg.stem) not in names
    )
    assert stale == [], f"snapshots no test takes (remove them, or run with --snapshot-update): {stale}"
