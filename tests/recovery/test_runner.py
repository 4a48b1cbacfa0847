"""The runner in-process against the sandbox: reconciling lost answers, plan details, the report."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from recovery_wizard.neon import NeonClient
from recovery_wizard.plain.prompts import ScriptPrompter
from recovery_wizard.recovery import runner as runner_module
from recovery_wizard.recovery.outcome import CancelledError, UsageError
from recovery_wizard.recovery.plan import RunOptions, resolve_plan
from recovery_wizard.recovery.runner import STEP_INFO, begin_run, run
from recovery_wizard.sandbox.faults import parse_fault
from recovery_wizard.sandbox.service import Sandbox
from tests.recovery.conftest import write_app
from tests.sandbox.conftest import in_process_http, neon_client


class Recorder:
    """A Reporter that keeps everything it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, key: str, title: str) -> None:
        self.lines.append(f"step {key}")

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None:
        self.lines.append(f"warn {message}")

    def progress(self, message: str) -> None:
        self.lines.append(f"progress {message}")

    def output(self, line: str) -> None:
        self.lines.append(f"out {line}")

    def show(self, title: str, body: str) -> None:
        self.lines.append(f"{title}\n{body}")


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[NeonClient]:
    async with in_process_http(sandbox) as http:
        yield neon_client(sandbox, http)


def options(tmp_path: Path, **kwargs: object) -> RunOptions:
    base: dict[str, object] = {
        "command": "restore",
        "workdir": tmp_path,
        "at": "35 minutes ago",
        "yes": True,
        "prisma": False,
    }
    base.update(kwargs)
    return RunOptions(**base)  # type: ignore[arg-type]


async def test_a_lost_answer_to_create_branch_is_reconciled_not_repeated(
    sandbox: Sandbox, client: NeonClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "RECONCILE_PAUSE", 0.01)
    sandbox.app.faults.append(parse_fault("POST /projects/*/branches=500"))
    before = {b.name for b in await client.branches(sandbox.project_id)}
    result = await run(client, options(tmp_path), ScriptPrompter(assume_yes=True), recorder := Recorder())
    assert result.status == "done", result.error
    new = {b.name for b in await client.branches(sandbox.project_id)} - before
    assert new == {result.restore_branch.name}  # type: ignore[union-attr]
    assert any("answer was lost" in line for line in recorder.lines)


async def test_a_branch_that_was_never_made_is_asked_for_again(
    sandbox: Sandbox, client: NeonClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "RECONCILE_PAUSE", 0.01)
    sandbox.app.faults.append(parse_fault("POST /projects/*/branches=500:when=before"))
    before = {b.name for b in await client.branches(sandbox.project_id)}
    result = await run(client, options(tmp_path), ScriptPrompter(assume_yes=True), Recorder())
    assert result.status == "done", result.error
    assert len({b.name for b in await client.branches(sandbox.project_id)} - before) == 1


async def test_connection_uris_are_asked_for_once_and_again_after_forget(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    asked: list[str] = []

    async def note(request: httpx.Request) -> None:
        if request.url.path.endswith("/connection_uri"):
            asked.append(f"{request.url.params['branch_id']} pooled={request.url.params.get('pooled')}")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app), event_hooks={"request": [note]}
    ) as http:
        client = neon_client(sandbox, http)
        main = next(b for b in await client.branches(sandbox.project_id) if b.default)
        params = {"branch_id": main.id, "database_name": "neondb", "role_name": "neondb_owner"}
        pooled = await client.connection_uri(sandbox.project_id, pooled=True, **params)
        direct = await client.connection_uri(sandbox.project_id, pooled=False, **params)
        write_app(tmp_path, pooled.reveal(), direct.reveal())
        asked.clear()
        run_options = options(tmp_path)
        prompter = ScriptPrompter(assume_yes=True)
        plan = await resolve_plan(client, run_options, prompter, Recorder())
        runner = runner_module.Runner(
            client, plan, begin_run(run_options, plan), prompter, Recorder(), yes=True
        )
        await runner.restore_new_branch()
        await runner.verify()
        await runner.rewrite_env()
        result = runner.result
        assert [f.get("path") for f in result.env_files] == [str(tmp_path / ".env")]
        restored = result.restore_branch
        assert restored is not None
        # Verify: restored and damaged direct, then the pooled one for .env; the env step asks nothing.
        assert sorted(asked) == sorted(
            [f"{restored.id} pooled=false", f"{main.id} pooled=false", f"{restored.id} pooled=true"]
        )
        # As the wizard's Try again does: the next URI is asked for afresh, not served from the cache.
        await runner._uri(restored.id, result.endpoint_id, pooled=True)
        assert len(asked) == 3
        runner.forget_uris()
        await runner._uri(restored.id, result.endpoint_id, pooled=True)
        assert len(asked) == 4


async def test_plan_names_and_refusals(sandbox: Sandbox, client: NeonClient, tmp_path: Path) -> None:
    prompter, reporter = ScriptPrompter(assume_yes=True), Recorder()
    plan = await resolve_plan(client, options(tmp_path), prompter, reporter)
    assert plan.name.startswith("main-restore-")
    assert plan.database == "neondb"
    assert plan.role == "neondb_owner"
    assert plan.env_targets == []  # no .env in this directory
    in_place = await resolve_plan(client, options(tmp_path, strategy="in-place"), prompter, reporter)
    assert in_place.name.startswith("main_old_")
    assert any("IN PLACE" in a for a in in_place.actions())
    drill = await resolve_plan(client, options(tmp_path, command="drill"), prompter, reporter)
    assert drill.expires_at is not None
    assert drill.name.startswith("drill-main-")
    with pytest.raises(UsageError, match="--at"):
        await resolve_plan(client, options(tmp_path, at=None), prompter, reporter)
    with pytest.raises(UsageError, match="no database"):
        await resolve_plan(client, options(tmp_path, database="nope"), prompter, reporter)
    with pytest.raises(UsageError, match="already exists"):
        await resolve_plan(client, options(tmp_path, name="preview/checkout-redesign"), prompter, reporter)


async def test_without_a_terminal_or_yes_nothing_is_written(
    sandbox: Sandbox, client: NeonClient, tmp_path: Path
) -> None:
    before = {b.name for b in await client.branches(sandbox.project_id)}
    with pytest.raises(UsageError, match="--yes"):
        await run(client, options(tmp_path, yes=False), ScriptPrompter(assume_yes=False), Recorder())
    assert {b.name for b in await client.branches(sandbox.project_id)} == before
    assert not (tmp_path / ".recovery-wizard").exists()


async def test_declining_the_in_place_confirmation_cancels_cleanly(
    sandbox: Sandbox, client: NeonClient, tmp_path: Path
) -> None:
    class Declines(ScriptPrompter):
        async def type_to_confirm(self, question: str, expected: str) -> bool:
            return False

    result = await run(
        client, options(tmp_path, strategy="in-place", yes=False), Declines(assume_yes=True), Recorder()
    )
    assert isinstance(result.error, CancelledError)
    assert result.status == "cancelled"
    assert result.report_path is not None
    assert "cancelled" in result.report_path.read_text()


def test_every_step_explains_itself() -> None:
    for info in STEP_INFO.values():
        assert info.title
        assert info.what.endswith(".")
        assert info.why.endswith(".")
        assert info.console


async def test_planning_takes_the_first_reads_and_asks_for_them_only_once(
    sandbox: Sandbox, client: NeonClient, tmp_path: Path
) -> None:
    from recovery_wizard.recovery.options import FirstReads

    prompter, reporter = ScriptPrompter(assume_yes=True), Recorder()
    given = options(tmp_path, project_id=sandbox.project_id)
    sent = client.requests_sent
    alone = await resolve_plan(client, given, prompter, reporter)
    without = client.requests_sent - sent

    first = FirstReads.start(client, sandbox.project_id)
    await first.answers
    sent = client.requests_sent
    taken = await resolve_plan(client, given, prompter, reporter, first=first)
    assert client.requests_sent - sent == without - 2  # the project and its branches: not asked again
    assert (taken.project, taken.branch, taken.database) == (alone.project, alone.branch, alone.database)

    # Reads of another project than the one planning resolves (a checkpoint names its own) are not used.
    other = FirstReads(sandbox.project_id + "-other", first.answers)
    sent = client.requests_sent
    await resolve_plan(client, given, prompter, reporter, first=other)
    assert client.requests_sent - sent == without


async def test_the_first_reads_never_outlive_a_plan_that_refuses_first(
    sandbox: Sandbox, client: NeonClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI sends them before the options are checked; a refusal must not leave them running.
    from recovery_wizard import commands
    from recovery_wizard.recovery.options import FirstReads

    started: list[FirstReads] = []

    def never_answered(client: NeonClient, project_id: str) -> FirstReads:
        started.append(reads := FirstReads(project_id, asyncio.get_running_loop().create_future()))
        return reads

    monkeypatch.setattr(FirstReads, "start", staticmethod(never_answered))
    with pytest.raises(UsageError, match="--name"):
        await commands._run(
            client,
            options(tmp_path, project_id=sandbox.project_id, name=" padded "),
            ScriptPrompter(assume_yes=True),
            Recorder(),  # type: ignore[arg-type]
            None,
            lambda journal: None,
        )
    assert len(started) == 1 and started[0].answers.cancelled()
    assert not (tmp_path / ".recovery-wizard").exists()
