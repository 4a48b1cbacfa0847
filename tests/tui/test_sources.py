""" "Where from?": Neon history, a Neon snapshot or a backup file, the snapshot list, and the offer of a
snapshot when the moment wanted is older than the restore window. Against the homecheff sandbox, which has
Daan's manual snapshot "before release" and a nightly schedule on main."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from textual.widgets import Button, DataTable, Input, OptionList

from recovery_wizard.neon.models import Snapshot
from recovery_wizard.recovery.snapshot_list import parse_neon_time
from recovery_wizard.sandbox.pgserver import PgServer
from recovery_wizard.sandbox.service import Sandbox
from recovery_wizard.tui.app import Mode, WizardConfig, make_app
from recovery_wizard.tui.screens import choices, sources, steps
from recovery_wizard.tui.screens.sources import FILE_SOURCE_REASON
from tests.sandbox.conftest import in_process_http
from tests.tui.conftest import (
    SIZE,
    Incident,
    WizardPilot,
    on_screen,
    press_button,
    rail_of,
    screen_text,
    settle,
    text_of,
    wait_until,
    wizard,
)


async def where_from(pilot: WizardPilot, *, branch: str | None = None) -> sources.SourceScreen:
    """From the branch list (main, or ``branch`` typed into the filter) to "Where from?", snapshots listed."""
    await on_screen(pilot, choices.BranchScreen)
    if branch is not None:
        await pilot.press(*branch)
    await pilot.press("enter")
    screen = await on_screen(pilot, sources.SourceScreen)
    app = wizard(pilot)
    await wait_until(pilot, lambda: app.raw_snapshots is not None, "the snapshots to be listed")
    return screen


def prompt_of(screen: sources.SourceScreen, key: str) -> str:
    return str(screen.query_one("#sources", OptionList).get_option(key).prompt)


def highlighted(screen: sources.SourceScreen) -> str | None:
    options = screen.query_one("#sources", OptionList)
    assert options.highlighted is not None
    return options.get_option_at_index(options.highlighted).id


async def own_snapshots(incident: Incident) -> list[Snapshot]:
    snaps = await incident.client.snapshots(incident.sandbox.project_id)
    return [s for s in snaps if s.source_branch_id == incident.main.id]


def data_time(snap: Snapshot) -> datetime:
    at = parse_neon_time(snap.timestamp) or parse_neon_time(snap.created_at)
    assert at is not None
    return at


async def test_where_from_offers_history_a_snapshot_and_a_backup_file(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        screen = await where_from(pilot)
        rail = [line[2:] for line in rail_of(screen)]
        assert rail[2:5] == ["Branch", "Where from?", "Moment"]
        options = screen.query_one("#sources", OptionList)
        assert [o.id for o in options.options] == ["history", "snapshot", "file"]
        assert app.focused is options and highlighted(screen) == "history"
        assert "restore window" in prompt_of(screen, "history")
        # The snapshot choice says what there is once listed: the scenario's manual snapshot is the newest.
        await wait_until(pilot, lambda: not options.get_option("snapshot").disabled, "the snapshot choice")
        snapshot = prompt_of(screen, "snapshot")
        assert " of main, the newest “" in snapshot and "the oldest from" in snapshot
        # The backup-file choice can be chosen now (its own tests: test_sources_more.py).
        assert FILE_SOURCE_REASON is None
        assert not options.get_option("file").disabled
        assert "~/Downloads" in prompt_of(screen, "file")
        # Keys: down reaches the snapshot, then the backup file.
        await pilot.press("down")
        assert highlighted(screen) == "snapshot"
        await pilot.press("down")
        assert highlighted(screen) == "file"
        await pilot.press("up", "up")
        assert highlighted(screen) == "history"
        # Enter on history: the moment screen as before (window bar, find-moment, peek).
        await pilot.press("enter")
        moment = await on_screen(pilot, choices.MomentScreen)
        assert app.current == "moment" and app.source_text == "history"
        assert moment.query("#find-box") and moment.query("#peek-box")
        assert moment.query_one("#at", Input).has_focus


async def test_a_snapshot_just_taken_leads_the_list_and_becomes_the_runs_source(incident: Incident) -> None:
    sandbox = incident.sandbox
    names_before = await incident.branch_names()
    answer = await incident.http.post(
        f"{sandbox.api_url}/projects/{sandbox.project_id}/branches/{incident.main.id}/snapshot",
        params={"name": "tui-taken-now"},
        headers={"Authorization": f"Bearer {sandbox.api_key.reveal()}"},
    )
    assert answer.status_code < 300, answer.text
    taken = answer.json()["snapshot"]["id"]
    live = await own_snapshots(incident)
    assert len(live) >= 2  # the scenario's and this one

    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await where_from(pilot)
        await pilot.press("down", "enter")  # A Neon snapshot
        screen = await on_screen(pilot, sources.SnapshotScreen)
        table = screen.query_one("#snapshots", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, "the snapshot rows")
        assert app.focused is table
        assert table.row_count == len(await incident.client.snapshots(sandbox.project_id))
        # Newest data first: the one just taken, on main, of no size yet, never expiring.
        first = [str(c) for c in table.get_row_at(0)]
        assert first[0] == "tui-taken-now" and first[3] == "main" and first[-1] == "never"
        assert first[2] == "0 min"
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert "before release" in names
        rail = [line[2:] for line in rail_of(screen)]
        assert rail[3:5] == ["Where from?", "Snapshot"]
        # The why panel (hidden at this size, so its text is composed when F1 first shows it) is the snapshot's.
        await pilot.press("f1")
        assert "snapshot" in text_of(screen.query_one(".why-text")).lower()
        await pilot.press("f1")

        # Esc back to the choice (snapshot still highlighted), Enter returns to the list.
        await pilot.press("escape")
        back = await on_screen(pilot, sources.SourceScreen)
        assert highlighted(back) == "snapshot"
        await pilot.press("enter")
        screen = await on_screen(pilot, sources.SnapshotScreen)
        table = screen.query_one("#snapshots", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, "the snapshot rows")

        await pilot.press("enter")
        await on_screen(pilot, choices.StrategyScreen)
        assert app.source_text == f"snapshot:{taken}"
        assert "snapshots/" + taken + "/restore" in (app.by_hand("strategy") or "")
        await press_button(pilot, "next")
        await on_screen(pilot, steps.PlanScreen)
        await settle(pilot)
        # What the run is told: the snapshot, verbatim as --from says it, and no moment of history.
        assert app.options is not None
        assert app.options.source == f"snapshot:{taken}" and app.options.at is None
        assert app.options.to_dict()["source"] == f"snapshot:{taken}"
        assert await incident.branch_names() == names_before  # nothing made before Start


async def test_snapshots_of_another_branch_are_marked(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        screen = await where_from(pilot, branch="sari")  # dev/sari-allergens: a child, no snapshots
        assert app.branch is not None and app.branch.name == "dev/sari-allergens"
        assert "None of dev/sari-allergens; " in prompt_of(screen, "snapshot")
        await pilot.press("down", "enter")
        listing = await on_screen(pilot, sources.SnapshotScreen)
        table = listing.query_one("#snapshots", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, "the snapshot rows")
        taken_of = {str(table.get_row_at(i)[3]) for i in range(table.row_count)}
        assert taken_of == {"⚠ main"}
        assert "another branch than dev/sari-allergens" in screen_text(listing, "#snapshot-text")
        assert [str(c.label) for c in table.columns.values()][-1] == "Expires"  # no Size: Neon gave none


def shrink_window(incident: Incident, seconds: int) -> None:
    """The project's history as a Free plan keeps it (or shorter): the scenario's snapshots fall outside."""
    project = incident.sandbox.project
    assert project is not None
    project.history_retention_seconds = seconds


async def test_a_moment_older_than_the_window_offers_the_newest_snapshot_before_it(
    incident: Incident,
) -> None:
    shrink_window(incident, 3600)
    names_before = await incident.branch_names()
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await where_from(pilot)
        await pilot.press("enter")
        moment = await on_screen(pilot, choices.MomentScreen)
        wanted = datetime.now(UTC) - timedelta(hours=3)
        await pilot.press(*"3 hours ago")
        use = moment.query_one("#use-snapshot", Button)
        await wait_until(pilot, lambda: use.display, "the offer of a snapshot")
        resolved = screen_text(moment, "#resolved")
        assert "before the oldest restorable moment" in resolved or "window" in resolved
        assert moment.query_one("#next", Button).disabled  # history itself is still refused
        offered = moment.offered
        assert offered is not None
        # The newest of main's snapshots whose data is from before the moment, and no newer one before it.
        mine = await own_snapshots(incident)
        assert offered.id in {s.id for s in mine}
        assert offered.at <= wanted
        assert not [s for s in mine if offered.at < data_time(s) <= wanted]
        offer = screen_text(moment, "#offer")
        assert f"“{offered.name}”" in offer and f"“{offered.name}”" in str(use.label)
        assert offer.startswith("Too old for Neon's history, but a snapshot of main is older still")
        # The bar shows the snapshots older than the window on a stretch of their own.
        bar = str(moment.query_one("#bar").render())
        assert "┄" in bar and "◆" in bar

        await press_button(pilot, "use-snapshot")
        await on_screen(pilot, choices.StrategyScreen)
        assert app.source_text == f"snapshot:{offered.id}"
        # Back returns to the snapshot list (the source is a snapshot now), the offered one highlighted.
        await pilot.press("escape")
        listing = await on_screen(pilot, sources.SnapshotScreen)
        table = listing.query_one("#snapshots", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, "the snapshot rows")
        assert str(table.get_row_at(table.cursor_row)[0]) == offered.name
        assert await incident.branch_names() == names_before


async def test_a_moment_older_than_every_snapshot_says_so_and_offers_none(incident: Incident) -> None:
    shrink_window(incident, 3600)
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await where_from(pilot)
        await pilot.press("enter")
        moment = await on_screen(pilot, choices.MomentScreen)
        await pilot.press(*"30 days ago")
        await wait_until(
            pilot, lambda: "no snapshot of main is that old" in screen_text(moment, "#offer"), "the answer"
        )
        assert not moment.query_one("#use-snapshot", Button).display
        assert moment.offered is None
        # A moment inside the window again: no offer, Continue enabled.
        field = moment.query_one("#at", Input)
        field.value = "10 minutes ago"
        await pilot.pause()
        assert not moment.query_one("#next", Button).disabled
        assert not moment.query_one("#use-snapshot", Button).display
        assert not moment.query_one("#offer").display


async def test_snapshots_that_cannot_be_listed_leave_history_and_say_why(
    pg_server: PgServer, tmp_path: Path
) -> None:
    # Neon answers the snapshot list with a body that is not JSON: the choice says so, history still works.
    faults = ["GET /projects/*/snapshots#*=malformed"]
    async with (
        Sandbox(pg_dsn=pg_server.admin_dsn.reveal(), operation_seconds=0.05, seed=1, faults=faults) as sb,
        in_process_http(sb) as http,
    ):
        config = WizardConfig(
            workdir=tmp_path, api_key=sb.api_key.reveal(), api_url=sb.api_url, http=http, arm_seconds=0.0
        )
        app = make_app(config)
        async with app.run_test(size=SIZE) as pilot:
            await on_screen(pilot, choices.BranchScreen)
            await pilot.press("enter")
            screen = await on_screen(pilot, sources.SourceScreen)
            await wait_until(pilot, lambda: app.snapshots_error is not None, "the listing to fail")
            options = screen.query_one("#sources", OptionList)
            assert options.get_option("snapshot").disabled
            assert "the snapshots could not be listed" in prompt_of(screen, "snapshot")
            assert highlighted(screen) == "history"
            await pilot.press("enter")
            moment = await on_screen(pilot, choices.MomentScreen)
            await pilot.press(*"35 minutes ago")
            assert not moment.query_one("#next", Button).disabled


async def test_a_drill_from_a_snapshot_goes_from_the_list_to_the_plan(incident: Incident) -> None:
    app = make_app(incident.config(Mode.DRILL))
    async with app.run_test(size=SIZE) as pilot:
        await where_from(pilot)
        await pilot.press("down", "enter")
        listing = await on_screen(pilot, sources.SnapshotScreen)
        table = listing.query_one("#snapshots", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, "the snapshot rows")
        chosen = str(table.get_row_at(table.cursor_row)[0])
        await press_button(pilot, "next")
        await on_screen(pilot, steps.PlanScreen)  # a drill has no strategy to choose
        assert app.snapshot is not None and app.snapshot.name == chosen
        await settle(pilot)
        assert app.options is not None and app.options.command == "drill"
        assert app.options.source == f"snapshot:{app.snapshot.id}"
