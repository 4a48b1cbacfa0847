"""Restore sources: `--from` parsing, the journal's record of a source, and old journals still resuming."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from recovery_wizard.recovery.journal import list_runs
from recovery_wizard.recovery.outcome import EXIT_USAGE, UsageError
from recovery_wizard.recovery.sources import (
    HistorySource,
    check_with_at,
    parse_source,
    source_from_dict,
)
from recovery_wizard.recovery.sources.snapshot import SnapshotSource
from tests.recovery.conftest import World


@pytest.mark.parametrize(
    ("text", "kind", "ref"),
    [
        (None, "history", ""),
        ("history", "history", ""),
        (" History ", "history", ""),
        ("snapshot:latest", "snapshot", "latest"),
        ("snapshot:before release", "snapshot", "before release"),
        ("snapshot:snap-late-dew-55667788", "snapshot", "snap-late-dew-55667788"),
        ("checkpoint:20261121T020812Z-ae1718", "checkpoint", "20261121T020812Z-ae1718"),
        ("checkpoint:latest", "checkpoint", "latest"),
        ("file:backups/main.dump", "file", "backups/main.dump"),
        ("file:latest", "file", "latest"),
    ],
)
def test_parse_source_reads_every_form(text: str | None, kind: str, ref: str) -> None:
    spec = parse_source(text)
    assert (spec.kind, spec.ref) == (kind, ref)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("checkpoint:", "needs a run id"),
        ("snapshot:", "needs a snapshot id or name, or latest"),
        ("snapshot", "needs a snapshot id or name"),
        ("file:", "needs a path"),
        ("history:yesterday", "history takes no argument"),
        ("s3://bucket/x", "is not a restore source"),
    ],
)
def test_parse_source_refuses_with_a_usage_error(text: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle) as caught:
        parse_source(text)
    assert caught.value.exit_code == EXIT_USAGE
    assert caught.value.hint


def test_at_with_another_source_names_both() -> None:
    check_with_at(parse_source("history"), "35 minutes ago")
    check_with_at(parse_source("snapshot:latest"), None)
    with pytest.raises(UsageError, match=r"--at '1h ago' and --from snapshot:latest"):
        check_with_at(parse_source("snapshot:latest"), "1h ago")


def test_a_journalled_snapshot_source_is_rebuilt_exactly() -> None:
    source = SnapshotSource(
        id="snap-late-dew-55667788",
        name="nightly",
        taken_at=datetime(2026, 11, 21, tzinfo=UTC),
        created_at=datetime(2026, 11, 21, 0, 0, 3, tzinfo=UTC),
        lsn="0/1F00000",
        source_branch_id="br-wispy-meadow-a1b2c3d4",
        asked_as="latest",
    )
    recorded = json.loads(json.dumps(source.to_dict()))
    assert source_from_dict(recorded) == source
    assert recorded["asked_as"] == "latest" and recorded["id"] == "snap-late-dew-55667788"


def test_a_journal_without_a_source_restored_from_history() -> None:
    assert source_from_dict(None) == HistorySource()
    assert isinstance(source_from_dict({"kind": "history"}), HistorySource)
    with pytest.raises(UsageError, match="'tape' source"):
        source_from_dict({"kind": "tape"})


async def test_a_run_journalled_before_sources_existed_still_resumes(world: World) -> None:
    killed = await world.cli(
        "restore",
        "--yes",
        "--at",
        "35 minutes ago",
        "--name",
        "old-journal",
        extra_env={"RECOVERY_WIZARD_CRASH_BEFORE": "done:restore"},
    )
    assert killed.code == -9
    # Rewrite the run's first record as the version before sources wrote it: no source anywhere.
    (run,) = list_runs(world.app)
    journal = run / "journal.jsonl"
    lines = journal.read_text().splitlines()
    first = json.loads(lines[0])
    for key in ("source", "preview_name"):
        first["data"]["plan"].pop(key)
    first["data"]["options"].pop("source")
    journal.write_text("\n".join([json.dumps(first, sort_keys=True), *lines[1:]]) + "\n")

    resumed = await world.cli("restore", "--yes", "--json", "--resume")
    assert resumed.code == 0, resumed.stderr
    out = resumed.json()
    assert out["source"] == {"kind": "history"}
    assert out["restore_branch"]["name"] == "old-journal"
    assert (await world.branch_names()).count("old-journal") == 1


def test_the_restore_steps_why_is_the_sources_own() -> None:
    from dataclasses import replace

    from recovery_wizard.recovery.runner import STEP_INFO, step_info_for
    from tests.tui_snapshots.scenes import make_plan

    plan = make_plan()
    assert step_info_for(plan, "restore").why == HistorySource().why()
    snapshot = SnapshotSource(id="snap-x", name="nightly", taken_at=datetime(2026, 11, 21, tzinfo=UTC))
    info = step_info_for(replace(plan, source=snapshot), "restore")
    assert "snapshot" in info.why and info.title == STEP_INFO["restore"].title
    assert step_info_for(plan, "verify") is STEP_INFO["verify"]


def test_a_journalled_file_source_is_rebuilt_exactly() -> None:
    from recovery_wizard.recovery.sources.file import FileSource

    source = FileSource(
        path="/app/backups/main-20261121T010000Z.dump",
        file_kind="custom",
        label="pg_dump custom archive",
        taken_at=datetime(2026, 11, 21, 1, tzinfo=UTC),
        taken_at_source="manifest",
        size=12345,
        sha256="ab" * 32,
        asked_as="latest",
        manifest="/app/backups/main-20261121T010000Z.dump.manifest.json",
        tables={"public.User": 18, "public.Order": None},
        partial=("orders: 10 of 52 rows",),
        clean_schemas=("public",),
    )
    recorded = json.loads(json.dumps(source.to_dict()))
    assert source_from_dict(recorded) == source


def test_file_counts_exact_for_dumps_a_lower_bound_for_json_upserts() -> None:
    from recovery_wizard.recovery.sources.file import CountLine, render_counts

    exact = CountLine("public.User", 18, 18, "manifest", at_least=False, partial=False)
    more = CountLine("public.User", 18, 19, "manifest", at_least=False, partial=False)
    upserted = CountLine("public.Order", 10, 52, "loaded rows", at_least=True, partial=True)
    missing = CountLine("public.Review", 5, None, "loaded rows", at_least=True, partial=False)
    assert exact.ok and not more.ok and upserted.ok and not missing.ok
    text = render_counts(
        {"tables": [line.to_dict() for line in (exact, upserted, missing)], "partial": ["orders: 10 of 52"]}
    )
    assert "≥10" in text and "partial in the file" in text and "missing" in text and "MISMATCH" in text
