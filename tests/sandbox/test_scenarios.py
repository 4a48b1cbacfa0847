"""The built-in scenarios: their shape, and what replaying them on a real PostgreSQL leaves behind.

The replay mirrors the sandbox: every change in one transaction on a fresh database, in order, and the
checks a recovery relies on (the canary, row timestamps) after each one.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery_wizard.sandbox.pgserver import PgServer
from recovery_wizard.sandbox.scenarios import (
    SCENARIOS,
    Scenario,
    build_scenario,
    homecheff,
    validate_scenario,
)

# Several `now`s, so nothing depends on the hour, the season or the year the demo happens to run in.
NOWS = {
    "winter": datetime(2026, 3, 14, 13, 5, 41, 123456, tzinfo=UTC),
    "spring-dst": datetime(2026, 4, 2, 5, 12, tzinfo=UTC),  # the history spans the switch to summer time
    "autumn-dst": datetime(2026, 10, 30, 23, 47, 3, 900001, tzinfo=timezone(timedelta(hours=1))),
    "new-year": datetime(2027, 1, 3, 0, 1, 2, 3000, tzinfo=UTC),
}
USER_INSERT = 'INSERT INTO "User"'


def incident_index(scenario: Scenario) -> int:
    return next(i for i, c in enumerate(scenario.changes) if c.kind == "incident")


@pytest.fixture(params=list(NOWS.values()), ids=list(NOWS))
def now(request: pytest.FixtureRequest) -> datetime:
    value: datetime = request.param
    return value


@pytest.fixture
def scenario(now: datetime) -> Scenario:
    return homecheff.build(now)


# --- the data itself ------------------------------------------------------------------------------------


def test_build_is_deterministic_for_a_given_now(now: datetime) -> None:
    assert homecheff.build(now) == homecheff.build(now)
    # The same instant in another zone is the same `now`.
    assert homecheff.build(now.astimezone(timezone(timedelta(hours=-5)))) == homecheff.build(now)
    assert homecheff.build(now + timedelta(hours=1)) != homecheff.build(now)


def test_build_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        homecheff.build(datetime(2026, 3, 14, 13, 5))


def test_registry_builds_homecheff_and_names_it_for_unknown_scenarios() -> None:
    now = NOWS["winter"]
    assert "homecheff" in SCENARIOS
    assert build_scenario("homecheff", now) == homecheff.build(now)
    with pytest.raises(ValueError, match="homecheff") as excinfo:
        build_scenario("nope", now)
    assert "nope" in str(excinfo.value)


def test_validation_catches_what_would_break_the_timeline() -> None:
    good = homecheff.build(NOWS["winter"])
    first, second, *rest = good.changes
    broken = {
        "not later than": replace(good, changes=(second, first, *rest)),
        "not at a tz-aware UTC time": replace(
            good, changes=(replace(first, at=first.at.replace(tzinfo=None)), second, *rest)
        ),
        "incident_at is not": replace(good, incident_at=good.incident_at + timedelta(seconds=1)),
        "not inside the history": replace(
            good, branches=(replace(good.branches[0], at=first.at - timedelta(1)),)
        ),
        "not a change after the incident": replace(good, after_incident=(first.summary,)),
    }
    for message, scenario in broken.items():
        with pytest.raises(ValueError, match=message):
            validate_scenario(scenario)


def test_project_settings(scenario: Scenario) -> None:
    assert scenario.name == "homecheff"
    assert scenario.project_name == "homecheff-prod"
    assert (scenario.database, scenario.role) == ("neondb", "neondb_owner")
    assert scenario.history_retention_seconds == 604800
    assert scenario.canary == 'SELECT count(*) >= 10 FROM "User"'
    assert "About 30 minutes ago" in scenario.description
    assert 2 <= scenario.description.count(". ") + 1 <= 4
    validate_scenario(scenario)


def test_changes_are_utc_strictly_increasing_and_cover_more_than_the_restore_window(
    now: datetime, scenario: Scenario
) -> None:
    changes = scenario.changes
    assert 40 <= len(changes) <= 60
    assert all(c.at.utcoffset() == timedelta(0) for c in changes)
    assert all(a.at < b.at for a, b in itertools.pairwise(changes))
    assert changes[-1].at < now
    assert {c.kind for c in changes} == {"write", "migration", "incident"}
    # The first change creates the schema, before the restore window opens: every moment in it has data.
    assert changes[0].kind == "migration" and 'CREATE TABLE "User"' in changes[0].sql
    assert timedelta(days=7) < now - changes[0].at < timedelta(days=10)
    migrations = [c for c in changes if c.kind == "migration"]
    assert len(migrations) == 2 and now - migrations[1].at < timedelta(days=7)


def test_incident_is_a_fractional_moment_about_30_minutes_ago(now: datetime, scenario: Scenario) -> None:
    incidents = [c for c in scenario.changes if c.kind == "incident"]
    assert len(incidents) == 1
    assert incidents[0].at == scenario.incident_at
    assert timedelta(minutes=29) <= now - scenario.incident_at <= timedelta(minutes=31)
    assert (now - scenario.incident_at) % timedelta(seconds=1) != timedelta(0)  # not on a whole second
    assert 'DROP TABLE "User" CASCADE' in incidents[0].sql


def test_after_incident_names_the_legitimate_writes_that_follow(scenario: Scenario) -> None:
    later = scenario.changes[incident_index(scenario) + 1 :]
    assert 2 <= len(later) <= 4
    assert all(c.kind == "write" for c in later)
    assert scenario.after_incident == tuple(c.summary for c in later)


def test_branches_lie_inside_the_history(now: datetime, scenario: Scenario) -> None:
    assert 1 <= len(scenario.branches) <= 2
    names = [b.name for b in scenario.branches]
    assert len(set(names)) == len(names) and "main" not in names
    for branch in scenario.branches:
        assert scenario.changes[0].at < branch.at < scenario.incident_at
        assert branch.at.utcoffset() == timedelta(0)
    assert any(timedelta(days=2) < now - b.at < timedelta(days=4) for b in scenario.branches)


def test_traffic_is_busier_in_the_dutch_daytime(scenario: Scenario) -> None:
    try:
        amsterdam = ZoneInfo("Europe/Amsterdam")
    except ZoneInfoNotFoundError:
        pytest.skip("no tz database here")
    writes = [c for c in scenario.changes if c.kind == "write" and c.at < scenario.incident_at]
    daytime = [c for c in writes if 8 <= c.at.astimezone(amsterdam).hour <= 22]
    assert len(daytime) >= 0.75 * len(writes)


def test_summer_time_rule_matches_the_tz_database() -> None:
    try:
        amsterdam = ZoneInfo("Europe/Amsterdam")
    except ZoneInfoNotFoundError:
        pytest.skip("no tz database here")
    at = datetime(2025, 1, 1, 0, 30, tzinfo=UTC)
    while at.year < 2029:
        assert homecheff._amsterdam_offset(at) == at.astimezone(amsterdam).utcoffset(), at
        at += timedelta(hours=1)


@settings(max_examples=150, deadline=None)
@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)))
def test_any_now_gives_a_valid_scenario_of_the_same_shape(now: datetime) -> None:
    scenario = build_scenario("homecheff", now)  # validates it
    assert len(scenario.changes) == 50
    assert timedelta(days=7) < now - scenario.changes[0].at
    assert timedelta(minutes=29) <= now - scenario.incident_at <= timedelta(minutes=31)
    assert sum(c.summary.endswith("signed up") for c in scenario.changes) == 7
    assert len(scenario.after_incident) == 3


def test_literals_are_quoted_safely() -> None:
    assert homecheff._text("Sanne 't Hart") == "'Sanne ''t Hart'"
    assert homecheff._literal(["peanut", "soy"]) == "ARRAY['peanut', 'soy']::TEXT[]"
    assert homecheff._literal([]) == "ARRAY[]::TEXT[]"
    assert homecheff._literal(None) == "NULL"
    assert (
        homecheff._literal(datetime(2026, 3, 1, 9, 30, 12, 345678, tzinfo=UTC)) == "'2026-03-01 09:30:12.345'"
    )
    with pytest.raises(ValueError, match="NUL"):
        homecheff._text("a\x00b")


def test_ids_look_like_prisma_cuids(scenario: Scenario) -> None:
    ids = re.findall(r"\('(c[0-9a-z]{24})'", "\n".join(c.sql for c in scenario.changes))
    assert len(ids) > 50 and len(set(ids)) == len(ids)


# --- replayed on a real PostgreSQL ------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """What the database looked like right after one change."""

    canary: bool
    users: int
    admins: int
    newest_user: datetime | None  # max("createdAt") of User, naive UTC as stored


@dataclass(frozen=True)
class Replay:
    scenario: Scenario
    probes: list[Probe]
    dsn: str  # the replayed database, alive for the module's tests


@pytest.fixture(scope="module", params=list(NOWS.values()), ids=list(NOWS))
def replay(request: pytest.FixtureRequest, pg_server: PgServer) -> Iterator[Replay]:
    scenario = homecheff.build(request.param)
    name = f"rw_scenario_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        probes: list[Probe] = []
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            for change in scenario.changes:
                with conn.transaction():  # one transaction per change, as the sandbox runs it
                    conn.execute(change.sql.encode())
                canary = conn.execute(scenario.canary.encode()).fetchone()
                counts = conn.execute(
                    """SELECT count(*), count(*) FILTER (WHERE "role" = 'ADMIN'), max("createdAt")"""
                    ' FROM "User"'
                ).fetchone()
                assert canary is not None and counts is not None
                probes.append(Probe(bool(canary[0]), counts[0], counts[1], counts[2]))
        yield Replay(scenario, probes, pg_server.dsn(name))
    finally:
        with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_canary_holds_before_the_incident(replay: Replay) -> None:
    before = replay.probes[: incident_index(replay.scenario)]
    assert all(p.canary and p.users >= 10 and p.admins == 2 for p in before)
    assert before[-1].users >= 14
    assert [p.users for p in before] == sorted(p.users for p in before)  # nobody leaves before the incident


def test_canary_fails_from_the_incident_on(replay: Replay) -> None:
    after = replay.probes[incident_index(replay.scenario) :]
    assert after[0].users == after[0].admins == 2
    assert not any(p.canary for p in after)


def test_user_created_at_is_the_signup_time(replay: Replay) -> None:
    changes = replay.scenario.changes
    last_signup: datetime | None = None
    for change, probe in zip(changes[: incident_index(replay.scenario)], replay.probes, strict=False):
        if USER_INSERT in change.sql:
            last_signup = change.at
        assert last_signup is not None
        assert probe.newest_user == last_signup.astimezone(UTC).replace(tzinfo=None)
    # Right before the incident the newest account is the last sign-up, to the millisecond.
    signups = [c for c in changes if c.at < replay.scenario.incident_at and c.summary.endswith("signed up")]
    assert signups[-1].at == last_signup


def test_rows_carry_their_change_time(replay: Replay) -> None:
    times = {c.at.astimezone(UTC).replace(tzinfo=None) for c in replay.scenario.changes}
    with psycopg.connect(replay.dsn) as conn:
        for table in ("User", "Listing", "Order", "Review"):
            rows = conn.execute(f'SELECT "createdAt" FROM "{table}"').fetchall()
            assert rows and {r[0] for r in rows} <= times, table
        updated = conn.execute('SELECT "updatedAt" FROM "Listing" UNION ALL SELECT "updatedAt" FROM "Order"')
        assert {r[0] for r in updated.fetchall()} <= times


def test_incident_leaves_prisma_shaped_damage(replay: Replay) -> None:
    with psycopg.connect(replay.dsn) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        }
        assert tables == {"User", "Session", "Listing", "Order", "Review", "_prisma_migrations"}
        constraints: dict[str, str] = dict(
            conn.execute(
                "SELECT conname, confrelid::regclass::text FROM pg_constraint"
                " WHERE connamespace = 'public'::regnamespace"
            ).fetchall()
        )
        assert {"User_pkey", "Order_listingId_fkey", "Review_orderId_fkey"} <= set(constraints)
        assert '"User"' not in constraints.values()  # the CASCADE took every foreign key to User
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'User'")}
        assert indexes == {"User_pkey", "User_email_key"}
        orphans = conn.execute(
            'SELECT count(*) FROM "Order" o'
            ' WHERE NOT EXISTS (SELECT 1 FROM "User" u WHERE u.id = o."buyerId")'
        ).fetchone()
        assert orphans is not None and orphans[0] > 10
        migrations = conn.execute(
            "SELECT migration_name, checksum, applied_steps_count, finished_at, logs, rolled_back_at"
            " FROM _prisma_migrations ORDER BY started_at"
        ).fetchall()
    assert [m[0].split("_", 1)[1] for m in migrations] == ["init", "listing_allergens", "user_locale_reset"]
    for name, checksum, steps, finished, logs, rolled_back in migrations:
        assert re.fullmatch(r"\d{14}_[a-z_]+", name) and re.fullmatch(r"[0-9a-f]{64}", checksum)
        assert (steps, logs, rolled_back) == (1, None, None) and finished is not None
    assert finished == replay.scenario.incident_at


def test_quotes_in_names_survive_the_replay(replay: Replay) -> None:
    with psycopg.connect(replay.dsn) as conn:
        row = conn.execute("""SELECT "title" FROM "Listing" WHERE "title" LIKE 'Oma%'""").fetchone()
    assert row == ("Oma's appeltaart",)
