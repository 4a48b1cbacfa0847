""" "Where from?" learns the backup files and the guard's checkpoints, "How should the data come back?" learns
merge-back (with the merge plan reviewed before Go), and the top of the wizard says where the app's URLs
point. Against the homecheff sandbox: its backups folder (hourly pg_dump files, a Downloads .sql, the cron's
JSON, one after the incident), a checkpoint made by the guard's own code, and time travel for the past."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from textual.widgets import Button, DataTable, Input, OptionList, RadioButton, Static

from recovery_wizard.recovery import checkpoint as cp
from recovery_wizard.recovery.journal import Journal
from recovery_wizard.tui.app import make_app
from recovery_wizard.tui.screens import backup_files, choices, merge_review, sources, steps
from tests.tui.conftest import (
    SIZE,
    Incident,
    WizardPilot,
    on_screen,
    press_button,
    screen_text,
    wait_until,
    wizard,
)

pytestmark = pytest.mark.usefixtures("own_home")  # tests/tui/conftest.py


async def where_from(pilot: WizardPilot) -> sources.SourceScreen:
    await on_screen(pilot, choices.BranchScreen)
    await pilot.press("enter")  # main, the default branch
    return await on_screen(pilot, sources.SourceScreen)


def option_ids(screen: sources.SourceScreen) -> list[str]:
    return [str(o.id) for o in screen.query_one("#sources", OptionList).options]


async def highlight(pilot: WizardPilot, screen: sources.SourceScreen, key: str) -> None:
    options = screen.query_one("#sources", OptionList)
    for _ in range(len(options.options) + 1):
        current = options.highlighted
        if current is not None and options.get_option_at_index(current).id == key:
            return
        await pilot.press("down")
    raise AssertionError(f"the arrows never reached {key}")


def cells(table: DataTable[str], row: int) -> list[str]:
    return [str(c) for c in table.get_row_at(row)]


async def test_a_backup_file_is_found_placed_against_the_incident_and_becomes_the_source(
    incident: Incident,
) -> None:
    folder = await incident.sandbox.write_backups(incident.app_dir)
    dumps = sorted(folder.of_kind("custom"), key=lambda f: f.taken_at)
    after = [f for f in folder.files if f.after_incident]
    before = [f for f in dumps if not f.after_incident]
    assert after and before
    # A truncated archive: listed with its reason, never chosen.
    broken = incident.app_dir / "backups" / "broken.dump"
    broken.write_bytes(dumps[0].path.read_bytes()[:600])

    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        screen = await where_from(pilot)
        options = screen.query_one("#sources", OptionList)
        assert not options.get_option("file").disabled
        await highlight(pilot, screen, "file")
        await pilot.press("enter")
        files = await on_screen(pilot, backup_files.BackupFileScreen)
        assert [k for k, _ in app.steps][4] == "moment" and app.steps[4][1] == "Backup file"
        table = files.query_one("#backups", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, "the backup rows")
        rows = [cells(table, i) for i in range(table.row_count)]
        names = [f.info.path.name for f in files.found]  # row i is found[i]; the row shows the name clipped
        by_name = dict(zip(names, rows, strict=True))
        # The incident is known once a search or a moment says so; with neither, nothing is marked damaged.
        assert by_name["broken.dump"][0] == "✘"
        assert {r[3] for r in rows} >= {"JSON", "SQL", "dump -Fc"}
        assert re.match(r"\d+ tables, \d+ rows$", by_name[before[-1].path.name][5])  # what it holds
        # The broken one cannot be chosen: Enter on it says why and stays.
        broken_row = names.index("broken.dump")
        table.move_cursor(row=broken_row)
        await pilot.pause()
        assert "✘ cannot be loaded: " in screen_text(files, "#backup-detail")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is files and app.backup_file is None
        # The newest usable pg_dump before the incident: Enter makes it the run's source.
        target = before[-1].path
        row = names.index(target.name)
        table.move_cursor(row=row)
        await pilot.press("enter")
        strategy = await on_screen(pilot, choices.StrategyScreen)
        assert app.source_text == f"file:{target}"
        # Merge back is not offered for a file (the plan could not be shown before Go), and says why.
        assert strategy.query_one("#merge-back", RadioButton).disabled
        assert "backup file must first be loaded" in screen_text(strategy, "#merge-note")
        # Esc: back to the files, the chosen one highlighted.
        await pilot.press("escape")
        files = await on_screen(pilot, backup_files.BackupFileScreen)
        table = files.query_one("#backups", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, "the backup rows again")
        assert files.found[table.cursor_row].info.path == target
        await pilot.press("escape")
        await on_screen(pilot, sources.SourceScreen)


async def test_after_a_search_the_files_after_the_incident_are_marked_likely_damaged(
    incident: Incident,
) -> None:
    folder = await incident.sandbox.write_backups(incident.app_dir)
    after = [f for f in folder.files if f.after_incident]
    first_after = min(f.taken_at for f in after)
    last_before = max(f.taken_at for f in folder.files if not f.after_incident)
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        screen = await where_from(pilot)
        # As the find-moment search leaves it: the first bad moment between the two backups.
        app.search = {"first_bad": last_before + (first_after - last_before) / 2}
        await highlight(pilot, screen, "file")
        await pilot.press("enter")
        files = await on_screen(pilot, backup_files.BackupFileScreen)
        table = files.query_one("#backups", DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, "the backup rows")
        rows = [cells(table, i) for i in range(table.row_count)]
        damaged = {f.info.path.name for f, r in zip(files.found, rows, strict=True) if r[0] == "⚠"}
        assert damaged == {f.path.name for f in after}
        # The cursor starts on the newest usable file from before the incident, not on a damaged one.
        assert cells(table, table.cursor_row)[0] == ""
        assert "before the incident" in screen_text(files, "#backup-detail")
        table.move_cursor(row=next(i for i, r in enumerate(rows) if r[0] == "⚠"))
        await pilot.pause()
        assert "AFTER the incident: likely damaged" in screen_text(files, "#backup-detail")
        assert "the incident:" in screen_text(files, "#backup-status")


async def test_a_path_typed_by_hand_is_checked_before_it_is_chosen(incident: Incident) -> None:
    folder = await incident.sandbox.write_backups(incident.app_dir / "elsewhere")
    dump = next(f for f in folder.of_kind("custom") if not f.after_incident)
    (incident.app_dir / "notes.txt").write_text("not a backup\n")
    kept = incident.app_dir.parent / "kept.dump"
    shutil.copy(dump.path, kept)  # outside every searched folder: only a typed path reaches it

    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        screen = await where_from(pilot)
        await highlight(pilot, screen, "file")
        await pilot.press("enter")
        files = await on_screen(pilot, backup_files.BackupFileScreen)
        path = files.query_one("#path", Input)
        await pilot.press("tab")
        await wait_until(pilot, lambda: path.has_focus, "the path field")
        await pilot.press(*"notes.txt", "enter")
        await wait_until(pilot, lambda: "not a backup" in screen_text(files, "#path-status"), "the refusal")
        assert app.screen is files and app.backup_file is None
        path.value = ""
        await pilot.press(*str(kept), "enter")
        await on_screen(pilot, choices.StrategyScreen)
        assert app.source_text == f"file:{kept}"


async def make_checkpoint(incident: Incident, command: str) -> cp.Checkpoint:
    """A guard checkpoint of main, made by the guard's own code and journalled in the app directory."""
    journal = Journal.create(incident.app_dir)
    journal.append(
        "run",
        "start",
        command=cp.COMMAND,
        guarded=command,
        project_id=incident.sandbox.project_id,
        branch_id=incident.main.id,
        branch_name=incident.main.name,
    )
    return await cp.make_branch_checkpoint(
        incident.client,
        journal,
        project_id=incident.sandbox.project_id,
        branch_id=incident.main.id,
        branch_name=incident.main.name,
        expires_at=datetime.now(UTC) + timedelta(days=7),
    )


async def test_guard_checkpoints_are_listed_by_the_command_that_followed_them(incident: Incident) -> None:
    made = await make_checkpoint(incident, "npx prisma migrate deploy")
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        screen = await where_from(pilot)
        key = sources.CHECKPOINT_PREFIX + made.run_id
        assert option_ids(screen)[:3] == ["history", "snapshot", "file"] and key in option_ids(screen)
        prompt = str(screen.query_one("#sources", OptionList).get_option(key).prompt)
        assert "Guard checkpoint: before `npx prisma migrate deploy`, " in prompt and made.name in prompt
        await highlight(pilot, screen, key)
        await pilot.press("enter")
        # The checkpoint is its own moment: straight on to the strategy, the rail naming the step passed over.
        strategy = await on_screen(pilot, choices.StrategyScreen)
        assert app.source_text == f"checkpoint:{made.run_id}"
        assert dict(app.steps)["moment"] == "Checkpoint" and "moment" in app.skipped_steps
        assert app.by_hand("strategy") == f"recovery-wizard restore --from checkpoint:{made.run_id}"
        assert strategy.query_one("#merge-back", RadioButton).disabled is False
        # Esc passes the step the checkpoint answered, back to "Where from?", the checkpoint highlighted.
        await pilot.press("escape")
        screen = await on_screen(pilot, sources.SourceScreen)
        options = screen.query_one("#sources", OptionList)
        assert options.highlighted is not None
        assert options.get_option_at_index(options.highlighted).id == key
        # History again: the step after "Where from?" is the moment once more.
        await highlight(pilot, screen, "history")
        await pilot.press("enter")
        await on_screen(pilot, choices.MomentScreen)
        assert "moment" not in app.skipped_steps and app.source_text == "history"


async def test_a_checkpoint_of_another_branch_is_shown_but_not_chosen(incident: Incident) -> None:
    made = await make_checkpoint(incident, "prisma db push")
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        branch = await on_screen(pilot, choices.BranchScreen)
        other = next(b for b in app.branches if b.id != incident.main.id)
        table = branch.query_one("#branches", DataTable)
        await pilot.press(*other.name)
        await wait_until(pilot, lambda: table.row_count >= 1, "the filtered branch")
        await pilot.press("enter")
        screen = await on_screen(pilot, sources.SourceScreen)
        option = screen.query_one("#sources", OptionList).get_option(sources.CHECKPOINT_PREFIX + made.run_id)
        assert option.disabled and "not of the chosen branch" in str(option.prompt)


async def test_merge_back_is_recommended_after_writes_and_its_plan_is_reviewed_per_table(
    incident: Incident,
) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        await where_from(pilot)
        await pilot.press("enter")  # Neon history
        moment = await on_screen(pilot, choices.MomentScreen)
        await wait_until(pilot, lambda: moment.query_one("#at", Input).has_focus, "the moment field")
        await pilot.press(*"35 minutes ago", "enter")
        strategy = await on_screen(pilot, choices.StrategyScreen)
        # The scenario wrote since (admins, a new signup): the lost-writes count recommends merging back.
        await wait_until(pilot, lambda: app.lost is not None, "the writes since the moment")
        note = screen_text(strategy, "#lost-note")
        assert note.startswith("Recommended: merge back.") and "User" in note
        button = strategy.query_one("#merge-back", RadioButton)
        assert "(recommended)" in str(button.label)
        await pilot.press("down", "down", "enter")
        review = await on_screen(pilot, merge_review.MergePlanScreen)
        assert app.strategy == "merge-back"
        table = review.query_one("#merge-tables", DataTable)
        await wait_until(pilot, lambda: app.merge_plan is not None and table.row_count > 0, "the merge plan")
        plan = app.merge_plan
        assert plan is not None
        users = next(t for t in plan["tables"] if t["table"].endswith("User"))
        assert users["insert"] > 0 and users["added_kept"] > 0  # customers back, new writes kept
        assert f"{plan['inserts']} row(s) to re-insert" in screen_text(review, "#merge-status")
        # The User row's details: samples, secrets masked by the engine.
        row = next(i for i, t in enumerate(review.tables) if t["table"] == users["table"])
        table.move_cursor(row=row)
        await pilot.pause()
        details = screen_text(review, "#merge-details")
        assert details.startswith(users["table"]) and "  + " in details
        assert "$2" not in details  # no password hash (bcrypt) on screen
        # v: opt in to reverting the changed users; r: the next conflict rule. Each asks the engine again.
        rule = users["rule"]
        await pilot.press("v")
        await wait_until(pilot, lambda: users["table"] in app.revert_changed, "the opt-in")
        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: (
                not review.query_one("#next", Button).disabled
                and app.merge_plan is not None
                and next(t for t in app.merge_plan["tables"] if t["table"] == users["table"])["rule"] != rule
            ),
            "the plan made again",
        )
        assert cells(table, row)[2] != "no" and not cells(table, row)[2].startswith("no (")
        # Esc: back to the strategies; Continue again leads to the review once more.
        await pilot.press("escape")
        await on_screen(pilot, choices.StrategyScreen)
        await pilot.press("enter")
        review = await on_screen(pilot, merge_review.MergePlanScreen)
        await wait_until(pilot, lambda: not review.query_one("#next", Button).disabled, "the plan")
        await press_button(pilot, "next")
        await on_screen(pilot, steps.PlanScreen)
        await wait_until(pilot, lambda: app.options is not None, "the run's options")
        options = app.options
        assert options is not None and options.strategy == "merge-back"
        by_hand = app.by_hand("plan") or ""
        assert by_hand.startswith("recovery-wizard restore --from history --at 20")
        assert f"--strategy merge-back --revert-changed {users['table']}" in by_hand
        assert users["table"] in options.revert_changed
        assert options.merge_rules[users["table"]] != rule
        assert users["table"] in (options.merge_tables or [])


async def test_the_top_of_the_wizard_says_where_the_apps_urls_point(incident: Incident) -> None:
    app = make_app(incident.config())
    async with app.run_test(size=SIZE) as pilot:
        branch = await on_screen(pilot, choices.BranchScreen)
        box = branch.query_one("#whereis", Static)
        await wait_until(pilot, lambda: bool(app.where_lines), "the whereis lines")
        await wait_until(pilot, lambda: not box.has_class("-empty"), "the lines on screen")
        text = screen_text(branch, "#whereis")
        lines = text.splitlines()
        assert any(line.startswith("DATABASE_URL (.env) → ") and "/ main (default" in line for line in lines)
        assert any(line.endswith(", pooled") for line in lines) and any(
            line.endswith(", direct") for line in lines
        )
        password = incident.env_value("DATABASE_URL").split("@")[0].rsplit(":", 1)[-1]
        assert password and password not in text and password not in "\n".join(app.where_lines or [])
        await pilot.press("enter")
        source = await on_screen(pilot, sources.SourceScreen)
        assert screen_text(source, "#whereis") == text
        assert wizard(pilot) is app
