"""The run directory and its journal."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recovery_wizard.recovery.journal import (
    CRASH_ENV,
    Journal,
    JournalError,
    find_run,
    latest_resumable,
    latest_unfinished,
    list_runs,
)
from recovery_wizard.redact import Secret


def test_create_makes_a_private_run_dir_with_a_gitignore(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, now=datetime(2026, 11, 21, 2, 4, 1, tzinfo=UTC))
    assert journal.run_id.startswith("20261121T020401Z-")
    assert journal.run_dir.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / ".recovery-wizard" / ".gitignore").read_text().splitlines()[-1] == "*"
    journal.append("run", "start", command="restore")
    assert journal.path.stat().st_mode & 0o777 == 0o600


def test_records_round_trip_and_answer_questions(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path)
    journal.append("run", "start", command="restore", options={"at": "35 minutes ago"})
    journal.append(
        "step", "begin", "restore", name="main-restore", at=datetime(2026, 11, 21, 1, 29, 59, tzinfo=UTC)
    )
    assert journal.begun_not_done("restore") is not None
    journal.append("step", "done", "restore", branch_id="br-x", path=Path("/tmp/a"))
    again = Journal.open(journal.run_dir)
    assert [r.seq for r in again.records] == [1, 2, 3]
    assert again.begun_not_done("restore") is None
    assert again.done("restore") is not None
    assert again.done("restore").data == {"branch_id": "br-x", "path": "/tmp/a"}  # type: ignore[union-attr]
    assert again.last("restore", "begin").data["at"] == "2026-11-21T01:29:59Z"  # type: ignore[union-attr]
    assert not again.finished
    assert again.status == "unfinished"
    assert latest_unfinished(tmp_path, "restore") is not None
    assert latest_unfinished(tmp_path, "drill") is None
    again.append("run", "end", status="done")
    assert Journal.open(journal.run_dir).status == "done"
    assert latest_unfinished(tmp_path) is None


def test_secrets_are_scrubbed_from_records(tmp_path: Path) -> None:
    password = Secret("npg_journalPassw0rd")
    journal = Journal.create(tmp_path)
    journal.append(
        "step",
        "done",
        "verify",
        url=f"postgresql://u:{password.reveal()}@h/db",
        nested={"x": [password.reveal()]},
    )
    text = journal.path.read_text()
    assert "npg_journalPassw0rd" not in text
    assert "postgresql://u:****@h/db" in text


def test_a_record_cut_short_by_a_crash_is_ignored_but_damage_elsewhere_is_not(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path)
    journal.append("run", "start", command="restore")
    journal.append("step", "begin", "restore", name="x")
    with journal.path.open("a") as fh:
        fh.write('{"seq": 3, "at": "2026-11-21T0')
    assert len(Journal.open(journal.run_dir).records) == 2
    lines = journal.path.read_text().splitlines()
    journal.path.write_text("\n".join(["garbage", *lines[1:]]) + "\n")
    with pytest.raises(JournalError, match="damaged at line 1"):
        Journal.open(journal.run_dir)


def test_find_run_names_the_recent_runs(tmp_path: Path) -> None:
    first = Journal.create(tmp_path)
    first.append("run", "start", command="restore")
    assert find_run(tmp_path, first.run_id).run_id == first.run_id
    with pytest.raises(JournalError, match=first.run_id):
        find_run(tmp_path, "20990101T000000Z-nope")
    assert list_runs(tmp_path) == [first.run_dir]


def test_the_crash_hook_kills_right_after_the_named_record(tmp_path: Path) -> None:
    code = (
        "from pathlib import Path; from recovery_wizard.recovery.journal import Journal\n"
        f"j = Journal.create(Path({str(tmp_path)!r}))\n"
        "for n in range(5):\n    j.append('step', 'note', 'x', n=n)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**_env(), CRASH_ENV: "3"}, check=False)
    assert proc.returncode == -9
    (run,) = list_runs(tmp_path)
    records = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    assert [r["seq"] for r in records] == [1, 2, 3]


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != CRASH_ENV}


def _two_records(tmp_path: Path) -> Journal:
    journal = Journal.create(tmp_path)
    journal.append("run", "start", command="restore")
    journal.append("step", "begin", "restore", name="x")
    return journal


@pytest.mark.parametrize(
    "tail",
    [b'{"seq": 3, "at": "2026-11-21T0', b"\0\0\0\0\0\0\0\0", b'{"seq": 3, "at": "2026\0\0\0\n', b"\n\0\0\n"],
    ids=["cut-short", "nul-bytes", "cut-then-nul", "blank-and-nul-lines"],
)
def test_a_torn_tail_is_cut_before_the_next_append(tmp_path: Path, tail: bytes) -> None:
    journal = _two_records(tmp_path)
    with journal.path.open("ab") as fh:
        fh.write(tail)  # a power loss in the middle of appending record 3
    resumed = Journal.open(journal.run_dir)
    assert len(resumed.records) == 2
    resumed.append("run", "resume")
    resumed.append("step", "done", "restore", branch_id="br-x")
    again = Journal.open(journal.run_dir)  # readable: the torn bytes are gone, not buried mid-file
    assert [r.seq for r in again.records] == [1, 2, 3, 4]
    assert again.done("restore") is not None
    assert journal.path.read_bytes().count(b"\0") == 0


def test_a_record_whose_newline_was_lost_gets_one_before_the_next(tmp_path: Path) -> None:
    journal = _two_records(tmp_path)
    journal.path.write_bytes(journal.path.read_bytes().rstrip(b"\n"))
    resumed = Journal.open(journal.run_dir)
    assert len(resumed.records) == 2
    resumed.append("run", "resume")
    assert [r.seq for r in Journal.open(journal.run_dir).records] == [1, 2, 3]


def test_a_damaged_old_run_never_blocks_a_new_one(tmp_path: Path) -> None:
    damaged = Journal.create(tmp_path, now=datetime(2026, 11, 20, tzinfo=UTC))
    damaged.append("run", "start", command="restore")
    damaged.append("step", "begin", "restore", name="x")
    lines = damaged.path.read_text().splitlines()
    damaged.path.write_text("\n".join(["garbage", *lines[1:]]) + "\n")
    warnings: list[str] = []
    assert latest_resumable(tmp_path, "restore", warn=warnings.append) is None
    assert latest_unfinished(tmp_path, warn=warnings.append) is None
    assert all(damaged.run_id in w and "damaged at line 1" in w for w in warnings) and warnings
    newer = Journal.create(tmp_path, now=datetime(2026, 11, 21, tzinfo=UTC))
    newer.append("run", "start", command="restore")
    found = latest_resumable(tmp_path, "restore", warn=warnings.append)
    assert found is not None and found.run_id == newer.run_id
    with pytest.raises(JournalError, match="damaged"):
        find_run(tmp_path, damaged.run_id)  # asked for by id: refused, with the reason


def test_interrupted_and_failed_runs_resume_abandoned_and_cancelled_do_not(tmp_path: Path) -> None:
    for status, resumable in (
        ("interrupted", True),
        ("failed", True),
        ("abandoned", False),
        ("cancelled", False),
        ("done", False),
    ):
        journal = Journal.create(tmp_path / status)
        journal.append("run", "start", command="restore")
        journal.append("run", "end", status=status)
        assert Journal.open(journal.run_dir).resumable is resumable, status
        assert (latest_resumable(tmp_path / status, "restore") is not None) is resumable
