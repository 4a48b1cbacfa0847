"""Which snapshots a restore can use, in which order, and which one is offered for a moment too old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from recovery_wizard.neon.models import Branch, Snapshot
from recovery_wizard.recovery.snapshot_list import (
    age_text,
    newest_before,
    parse_neon_time,
    size_text,
    usable_snapshots,
)

NOW = datetime(2026, 11, 21, 2, 5, tzinfo=UTC)
MAIN = Branch(id="br-main", project_id="p", name="main", current_state="ready", default=True)
OTHER = Branch(id="br-other", project_id="p", name="other-root", current_state="ready")


def snap(
    ident: str, hours_ago: float, *, branch: str | None = "br-main", expires_at: str | None = None
) -> Snapshot:
    at = (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Snapshot(
        id=ident,
        name=f"snap {ident}",
        created_at=at,
        timestamp=at,
        source_branch_id=branch,
        expires_at=expires_at,
    )


def test_expired_ones_are_left_out_and_the_newest_data_comes_first() -> None:
    expired = (NOW - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (NOW + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = usable_snapshots(
        [snap("a", 30), snap("b", 2, expires_at=expired), snap("c", 5, expires_at=later), snap("d", 50)],
        [MAIN],
        MAIN.id,
        NOW,
    )
    assert [e.id for e in entries] == ["c", "a", "d"]
    assert entries[0].expires_at == NOW + timedelta(days=2)


def test_the_moment_is_the_datas_not_the_creation_time() -> None:
    # Taken now of the data of a day ago (a snapshot at a timestamp): placed a day ago.
    created = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    old = Snapshot(
        id="x", name="x", created_at=created, timestamp="2026-11-20T02:05:00Z", source_branch_id="br-main"
    )
    (entry,) = usable_snapshots([old], [MAIN], MAIN.id, NOW)
    assert entry.at == NOW - timedelta(days=1) and entry.created_at == NOW


def test_another_branchs_snapshots_are_marked_and_never_offered() -> None:
    entries = usable_snapshots(
        [snap("mine", 40), snap("theirs", 30, branch=OTHER.id)], [MAIN, OTHER], MAIN.id, NOW
    )
    by_id = {e.id: e for e in entries}
    assert by_id["mine"].own and by_id["mine"].taken_of() == "main"
    assert not by_id["theirs"].own and by_id["theirs"].taken_of() == "other-root"
    # 20 hours ago: "theirs" (30 h) is newer than "mine" (40 h) but holds another branch's data.
    offered = newest_before(entries, NOW - timedelta(hours=20))
    assert offered is not None and offered.id == "mine"
    assert newest_before(entries, NOW - timedelta(hours=41)) is None


def test_a_snapshot_of_a_deleted_branch_names_its_id() -> None:
    (entry,) = usable_snapshots([snap("gone", 3, branch="br-gone")], [MAIN], MAIN.id, NOW)
    assert entry.taken_of() == "br-gone" and not entry.own


def test_times_neon_may_send_and_unreadable_ones() -> None:
    assert parse_neon_time("2026-11-21T01:29:00.5Z") == datetime(2026, 11, 21, 1, 29, 0, 500000, tzinfo=UTC)
    assert parse_neon_time("2026-11-21T02:29:00+01:00") == datetime(2026, 11, 21, 1, 29, tzinfo=UTC)
    assert parse_neon_time("yesterday") is None and parse_neon_time(None) is None
    unreadable = Snapshot(id="u", name="u", created_at="not a time")
    assert usable_snapshots([unreadable], [MAIN], MAIN.id, NOW) == []


def test_ages_and_sizes_read_in_one_unit() -> None:
    assert [age_text(timedelta(seconds=s)) for s in (-5, 59, 2400, 7200, 50 * 3600, 9 * 86400)] == [
        "0 min",
        "0 min",
        "40 min",
        "2 h",
        "2 d",
        "9 d",
    ]
    assert [size_text(n) for n in (None, 512, 2048, 15 << 20, 3 << 30)] == [
        "?",
        "512 B",
        "2.0 kB",
        "15 MB",
        "3.0 GB",
    ]
