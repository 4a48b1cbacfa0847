"""Built-in sandbox scenarios: a realistic database history that ends in a data-loss incident.

A scenario is plain data. The sandbox replays its changes in order on a real PostgreSQL database, one
transaction per change, and takes a point-in-time snapshot after each one labelled with the change's time,
so a branch "at time T" holds exactly the data as of T. The demo, the drills and the tests all start here.

This module imports only the standard library: the CLI lists scenarios without paying for psycopg.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

CHANGE_KINDS = ("write", "migration", "incident")


@dataclass(frozen=True)
class Change:
    """One committed unit of work on the default branch."""

    at: datetime  # when it happened: tz-aware UTC, strictly increasing through the scenario
    sql: str  # one or more SQL statements, run in ONE transaction on the branch's database
    summary: str  # human sentence, e.g. "2 users signed up; 1 order placed" (for timelines and reports)
    kind: str = "write"  # "write" (ordinary app traffic), "migration" (schema change), or "incident"


@dataclass(frozen=True)
class BranchSpec:
    """An extra branch the project already has when the scenario starts."""

    name: str  # e.g. "preview/checkout-redesign"
    at: datetime  # created from the default branch at this moment (must be inside the history)


@dataclass(frozen=True)
class SnapshotSpec:
    """A manual snapshot of the default branch the project already has (Neon's snapshots, beta)."""

    name: str
    at: datetime  # the moment its data is from (and when it was taken): inside the history
    expires_at: datetime | None = None


@dataclass(frozen=True)
class BackupScheduleSpec:
    """One item of the default branch's backup schedule, running since the scenario's first change."""

    frequency: str  # hourly, daily, weekly, monthly or yearly
    hour: int | None = None  # UTC
    day: int | None = None
    month: int | None = None
    retention_seconds: int | None = None


@dataclass(frozen=True)
class Scenario:
    """A Neon project's history, from its first migration to an incident and a little beyond."""

    name: str  # "homecheff"
    project_name: str  # e.g. "homecheff-prod"
    description: str  # 2-4 sentences for the demo's first screen
    database: str  # "neondb"
    role: str  # "neondb_owner"
    history_retention_seconds: int  # the restore window (7 days = 604800, Neon's Launch plan)
    incident_at: datetime  # the exact moment of the incident change (== that Change.at)
    canary: str  # SQL true while data is healthy, e.g. 'SELECT count(*) >= 10 FROM "User"'
    changes: tuple[Change, ...]  # sorted by .at; the first creates the schema
    branches: tuple[BranchSpec, ...] = ()
    after_incident: tuple[str, ...] = ()  # summaries of the legitimate writes after the incident
    snapshots: tuple[SnapshotSpec, ...] = ()
    backup_schedule: tuple[BackupScheduleSpec, ...] = ()


def validate_scenario(scenario: Scenario) -> None:
    """Raise ``ValueError`` if ``scenario`` breaks a rule the sandbox relies on.

    Checked when a scenario is built by name, so a broken built-in fails loudly at the start of a demo
    instead of producing a subtly wrong timeline (a branch "at T" silently holding the wrong data).
    """
    problems: list[str] = []
    if not scenario.changes:
        problems.append("it has no changes")
    previous: datetime | None = None
    for index, change in enumerate(scenario.changes):
        if change.at.utcoffset() != timedelta(0):
            problems.append(f"change {index} ({change.summary!r}) is not at a tz-aware UTC time")
            continue
        if previous is not None and change.at <= previous:
            problems.append(f"change {index} ({change.summary!r}) is not later than the one before it")
        if change.kind not in CHANGE_KINDS:
            problems.append(f"change {index} has the unknown kind {change.kind!r}")
        previous = change.at
    incidents = [c for c in scenario.changes if c.kind == "incident"]
    if not any(c.at == scenario.incident_at for c in incidents):
        problems.append("incident_at is not the time of an incident change")
    if scenario.changes and not problems:
        first = scenario.changes[0].at
        for branch in scenario.branches:
            if branch.at.utcoffset() is None or branch.at < first:
                problems.append(f"branch {branch.name!r} is not inside the history")
        for snapshot in scenario.snapshots:
            if snapshot.at.utcoffset() is None or snapshot.at < first:
                problems.append(f"snapshot {snapshot.name!r} is not inside the history")
        later = {c.summary for c in scenario.changes if c.at > scenario.incident_at}
        for summary in scenario.after_incident:
            if summary not in later:
                problems.append(f"after_incident names {summary!r}, which is not a change after the incident")
    if problems:
        raise ValueError(f"Scenario {scenario.name!r} is not valid: " + "; ".join(problems) + ".")


# Imported at the bottom on purpose: the scenario modules import Change/Scenario from this package, which
# are defined by now, so either module can be imported first without a circular-import failure.
from recovery_wizard.sandbox.scenarios import homecheff  # noqa: E402

SCENARIOS: dict[str, Callable[[datetime], Scenario]] = {
    "homecheff": homecheff.build,
}


def build_scenario(name: str, now: datetime) -> Scenario:
    """The scenario called ``name`` with its history ending at ``now`` (tz-aware)."""
    try:
        build = SCENARIOS[name]
    except KeyError:
        known = ", ".join(sorted(SCENARIOS))
        raise ValueError(f"There is no scenario called {name!r}. Known scenarios: {known}.") from None
    scenario = build(now)
    validate_scenario(scenario)
    return scenario


__all__ = [
    "CHANGE_KINDS",
    "SCENARIOS",
    "BackupScheduleSpec",
    "BranchSpec",
    "Change",
    "Scenario",
    "SnapshotSpec",
    "build_scenario",
    "validate_scenario",
]
