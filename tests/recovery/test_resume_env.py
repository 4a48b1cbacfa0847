"""Resuming a restore whose `.env` changed after the interrupted run read it: show the new diff and ask.

The interrupted run is a real CLI subprocess SIGKILLed right after the env file's ``begin`` record (before
the swap); the file is then edited, as a person fixing things by hand at 2 a.m. would.
"""

from __future__ import annotations

import json

from recovery_wizard.plain.prompts import ScriptPrompter
from recovery_wizard.recovery.journal import Journal, list_runs
from recovery_wizard.recovery.outcome import CancelledError
from recovery_wizard.recovery.plan import RunOptions
from recovery_wizard.recovery.runner import run
from tests.recovery.conftest import World
from tests.recovery.test_runner import Recorder

# Killed right after the env file's begin record: before the swap.
ENV_BEGIN = "begin:env:0"
RESTORE = ("restore", "--yes", "--at", "35 minutes ago", "--no-prisma", "--name", "edited-meanwhile")
EDIT = "FEATURE_FLAG=on\n"


class Answers(ScriptPrompter):
    """Answers each confirmation with ``answer`` and keeps the questions and their defaults."""

    def __init__(self, answer: bool) -> None:
        super().__init__(assume_yes=False)
        self.answer = answer
        self.asked: list[tuple[str, bool]] = []

    async def confirm(self, question: str, *, default: bool = False) -> bool:
        self.asked.append((question, default))
        return self.answer


async def _killed_then_edited(world: World) -> str:
    killed = await world.cli(*RESTORE, extra_env={"RECOVERY_WIZARD_CRASH_AT": ENV_BEGIN})
    assert killed.code == -9, killed.stderr
    assert Journal.open(list_runs(world.app)[-1]).records[-1].step == "env:0"
    env = world.app / ".env"
    env.write_text(env.read_text() + EDIT)
    return env.read_text()


async def test_under_yes_a_changed_env_file_is_refused_with_the_new_diff_and_a_resume_hint(
    world: World,
) -> None:
    edited = await _killed_then_edited(world)
    run_id = list_runs(world.app)[-1].name
    resumed = await world.cli("restore", "--resume", "--yes", "--json")
    assert resumed.code == 1, resumed.stderr
    assert "as it is now" in resumed.stderr  # the diff against the edited file was shown
    assert "FEATURE_FLAG" in resumed.stderr
    assert f"restore --resume {run_id}` without --yes" in resumed.stderr
    assert json.loads(resumed.stdout)["run_id"] == run_id
    assert (world.app / ".env").read_text() == edited
    assert not world.leaked(resumed.stdout, resumed.stderr)


async def test_a_changed_env_file_is_asked_about_with_default_no(world: World) -> None:
    edited = await _killed_then_edited(world)
    options = RunOptions(command="restore", workdir=world.app, api_url=world.url)
    declines = Answers(False)
    journal = Journal.open(list_runs(world.app)[-1])
    result = await run(world.client, options, declines, Recorder(), resume=journal)
    assert isinstance(result.error, CancelledError), result.error
    assert [default for _, default in declines.asked] == [False]
    assert "changed since the interrupted run read it" in declines.asked[0][0]
    assert (world.app / ".env").read_text() == edited


async def test_a_changed_env_file_is_written_when_confirmed_keeping_the_edit(world: World) -> None:
    edited = await _killed_then_edited(world)
    options = RunOptions(command="restore", workdir=world.app, api_url=world.url)
    journal = Journal.open(list_runs(world.app)[-1])
    result = await run(world.client, options, Answers(True), recorder := Recorder(), resume=journal)
    assert result.status == "done", result.error
    text = (world.app / ".env").read_text()
    assert EDIT in text and text != edited  # the person's edit kept, the URLs repointed
    assert any("as it is now" in line for line in recorder.lines)
