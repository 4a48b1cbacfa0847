"""Part 2: SIGKILL `restore` right after every journal record, then `restore --resume --yes`.

Whatever the checkpoint, the end state must equal an uninterrupted run's: exactly one restore branch, the
env file byte-for-byte what an uninterrupted run writes (modulo the branch's own host, port and
credentials, which we compare against the restore branch's connection URI), and a report saying done.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from recovery_wizard.neon import NeonClient
from recovery_wizard.recovery.journal import Journal, list_runs
from tests.reliability.conftest import Shared, count

# Records of an uninterrupted restore with Prisma: run start, restore begin/done, timeline, verify, env
# begin/done, prisma begin/done, run end. test_baseline_has_n_records fails if the journal grows, so the
# crash matrix below never silently skips a new checkpoint.
N_RECORDS = 10
RESTORE = ("restore", "--yes", "--at", "35 minutes ago")


@dataclass
class Final:
    env: str  # the .env with the restore branch's netlocs replaced by placeholders
    report: str
    branch_id: str


async def final_state(shared: Shared, app: Path, name: str) -> Final:
    """The env file normalised against the restore branch's own URIs, and the run's report."""

    async def uris(client: NeonClient) -> tuple[str, str, str]:
        branch = next(b for b in await client.branches(shared.project_id, search=name) if b.name == name)
        params = {"branch_id": branch.id, "database_name": "neondb", "role_name": "neondb_owner"}
        pooled = await client.connection_uri(shared.project_id, pooled=True, **params)
        direct = await client.connection_uri(shared.project_id, pooled=False, **params)
        return branch.id, pooled.reveal(), direct.reveal()

    branch_id, pooled, direct = await shared.with_client(uris)
    env = (app / ".env").read_text()
    for label, uri in (("POOLED", pooled), ("DIRECT", direct)):
        netloc = urlsplit(uri).netloc
        assert netloc in env, f"the env file does not point at {name}'s {label.lower()} endpoint"
        env = env.replace(netloc, f"<{label}>")
    runs = list_runs(app)
    assert len(runs) == 1, runs
    report = runs[0] / "report.md"
    assert report.is_file()
    return Final(env, report.read_text(), branch_id)


@pytest.fixture(scope="module")
def baseline(shared: Shared, tmp_path_factory: pytest.TempPathFactory) -> tuple[Final, int]:
    """One uninterrupted run: what every resumed run must end up as, and its journal length."""

    async def go() -> tuple[Final, int]:
        app = shared.make_app(tmp_path_factory.mktemp("baseline"))
        result = await shared.cli(app, *RESTORE, "--json", "--name", "crash-baseline")
        assert result.code == 0, result.stderr
        journal = Journal.open(list_runs(app)[0])
        return await final_state(shared, app, "crash-baseline"), len(journal.records)

    return asyncio.run(go())


def test_baseline_has_n_records(baseline: tuple[Final, int]) -> None:
    final, records = baseline
    assert records == N_RECORDS, "update N_RECORDS: the crash matrix must cover every checkpoint"
    assert "status **done**" in final.report


@pytest.mark.parametrize("crash_at", range(1, N_RECORDS + 1))
async def test_kill_at_checkpoint_then_resume(
    shared: Shared, tmp_path: Path, baseline: tuple[Final, int], crash_at: int
) -> None:
    count("crash_resume:checkpoints killed and resumed")
    app = shared.make_app(tmp_path)
    name = f"crash-{crash_at}"
    before = await shared.branch_names()
    killed = await shared.cli(
        app, *RESTORE, "--name", name, extra_env={"RECOVERY_WIZARD_CRASH_AT": str(crash_at)}
    )
    assert killed.code == -9, (killed.code, killed.stderr)
    journal = Journal.open(list_runs(app)[0])
    assert len(journal.records) == crash_at  # fsynced before the kill: the checkpoint is on disk

    resumed = await shared.cli(app, "restore", "--yes", "--json", "--resume")
    if crash_at == N_RECORDS:
        # Killed after the last record: the run had finished; there is nothing to resume (exit 2).
        assert resumed.code == 2, resumed.stderr
        assert "nothing to resume" in resumed.stderr or "no unfinished" in resumed.stderr.lower()
    else:
        assert resumed.code == 0, resumed.stderr
        out = json.loads(resumed.stdout)
        assert out["status"] == "done"
        assert out["restore_branch"]["name"] == name

    assert await shared.branch_names() - before == {name}, "exactly one restore branch"
    final = await final_state(shared, app, name)
    expected = baseline[0]
    assert final.env == expected.env
    assert "status **done**" in final.report
    assert final.branch_id in final.report
    assert Journal.open(list_runs(app)[0]).status == "done"
