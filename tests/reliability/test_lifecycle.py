"""Part 6: a run's lifecycle with real CLI subprocesses: one run at a time per app directory, unfinished
runs never guessed about, signals (SIGINT, SIGTERM, SIGHUP) on one documented interrupt path, and every
failure after the first write resumable.

Each case has its own app directory and restore-branch names on the shared sandbox, and checks the
project's branches before and after, so cases stay independent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recovery_wizard.recovery.journal import Journal, list_runs
from tests.recovery.conftest import CliResult
from tests.recovery.prisma_standin import read_log
from tests.reliability.conftest import Shared, count, run_texts, segment_fault

RESTORE = ("restore", "--yes", "--json", "--at", "35 minutes ago")


async def _spawn(shared: Shared, app: Path, *args: str, extra_env: dict[str, str] | None = None) -> Any:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recovery_wizard",
        *(shared.as_of_start(arg) for arg in args),
        cwd=app,
        env=shared.env(**(extra_env or {})),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(proc: Any, timeout: float = 120) -> CliResult:
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return CliResult(proc.returncode, out.decode(), err.decode())


async def _until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _records(app: Path) -> list[Journal]:
    return [Journal.open(run) for run in list_runs(app)]


def _env_writes(app: Path) -> int:
    return sum(
        1
        for j in _records(app)
        for r in j.records
        if r.step and r.step.startswith("env:") and r.event == "done"
    )


def _seqs_ok(app: Path) -> None:
    for journal in _records(app):
        assert [r.seq for r in journal.records] == list(range(1, len(journal.records) + 1)), journal.run_id


# --- one run at a time ------------------------------------------------------------------------------------


async def test_two_restores_at_once_make_one_branch_and_one_env_write(shared: Shared, tmp_path: Path) -> None:
    count("lifecycle:concurrent runs")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    before = await shared.branch_names()
    first = await _spawn(shared, app, *RESTORE, "--name", "lock-a")
    second = await _spawn(shared, app, *RESTORE, "--name", "lock-b")
    results = [await _finish(first), await _finish(second)]
    codes = sorted(r.code for r in results)
    assert codes == [0, 2], [(r.code, r.stderr) for r in results]
    refused = next(r for r in results if r.code == 2)
    assert "Another recovery-wizard run is writing" in refused.stderr
    assert re.search(r"pid \d+", refused.stderr), refused.stderr
    assert json.loads(refused.stdout)["status"] == "refused"
    made = await shared.branch_names() - before
    assert len(made) == 1 and made <= {"lock-a", "lock-b"}, made
    assert len(list_runs(app)) == 1, "the refused run wrote a run directory"
    assert _env_writes(app) == 1
    _seqs_ok(app)


async def test_a_second_run_names_the_holder_and_writes_nothing(shared: Shared, tmp_path: Path) -> None:
    count("lifecycle:concurrent runs")
    app = shared.make_app(tmp_path)
    shared.set_faults(segment_fault("GET /projects/*/operations/*=stall:seconds=20"))
    try:
        first = await _spawn(shared, app, *RESTORE, "--name", "lock-holder")
        await _until(lambda: bool(list_runs(app)), "the first run's journal")
        run_id = list_runs(app)[0].name
        env_before = (app / ".env").read_bytes()
        search = (
            "find-moment",
            "--yes",
            "--check",
            'SELECT count(*) >= 10 FROM "User"',
            "--good",
            "50 minutes ago",
        )
        for args in (RESTORE, ("env", "rollback", "--yes"), ("restore", "--yes", "--resume"), search):
            second = await _finish(await _spawn(shared, app, *args))
            assert second.code == 2, (args, second.stderr)
            assert f"pid {first.pid}" in second.stderr
            assert run_id in second.stderr and "restore" in second.stderr
            assert "Traceback" not in second.stderr
        assert list_runs(app) == [app / ".recovery-wizard" / "runs" / run_id]
        assert (app / ".env").read_bytes() == env_before
        first.send_signal(signal.SIGTERM)
        assert (await _finish(first)).code == 3
    finally:
        shared.clear_faults()


async def test_two_resumes_at_once_resume_once(shared: Shared, tmp_path: Path) -> None:
    count("lifecycle:concurrent runs")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    before = await shared.branch_names()
    # Killed right after the restore's `begin` record: the branch may or may not exist.
    killed = await shared.cli(
        app, *RESTORE, "--name", "lock-resume", extra_env={"RECOVERY_WIZARD_CRASH_AT": "2"}
    )
    assert killed.code == -9
    procs = [await _spawn(shared, app, "restore", "--yes", "--json", "--resume") for _ in range(2)]
    results = [await _finish(p) for p in procs]
    assert sorted(r.code for r in results) == [0, 2], [(r.code, r.stderr) for r in results]
    assert await shared.branch_names() - before == {"lock-resume"}
    assert _env_writes(app) == 1
    _seqs_ok(app)
    assert _records(app)[0].status == "done"


async def test_a_killed_holder_leaves_no_lock(shared: Shared, tmp_path: Path) -> None:
    count("lifecycle:concurrent runs")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    killed = await shared.cli(
        app, *RESTORE, "--name", "lock-killed", extra_env={"RECOVERY_WIZARD_CRASH_AT": "3"}
    )
    assert killed.code == -9
    assert (app / ".recovery-wizard" / "lock").read_text()  # the dead holder's details are still there
    resumed = await shared.cli(app, "restore", "--yes", "--json", "--resume")
    assert resumed.code == 0, resumed.stderr


# --- unfinished runs --------------------------------------------------------------------------------------


async def test_a_new_restore_next_to_an_unfinished_one_asks_which(shared: Shared, tmp_path: Path) -> None:
    count("lifecycle:unfinished runs")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    before = await shared.branch_names()
    killed = await shared.cli(app, *RESTORE, "--name", "unf-old", extra_env={"RECOVERY_WIZARD_CRASH_AT": "3"})
    assert killed.code == -9
    old_id = list_runs(app)[0].name
    env_before = (app / ".env").read_bytes()

    refused = await shared.cli(app, *RESTORE, "--name", "unf-new")
    assert refused.code == 2, refused.stderr
    assert old_id in refused.stderr
    assert f"recovery-wizard restore --resume {old_id}" in refused.stderr and "--new" in refused.stderr
    assert len(list_runs(app)) == 1 and (app / ".env").read_bytes() == env_before
    assert await shared.branch_names() - before == {"unf-old"}

    clash = await shared.cli(app, *RESTORE, "--resume", "--new")
    assert clash.code == 2 and "contradict" in clash.stderr

    fresh = await shared.cli(app, *RESTORE, "--name", "unf-new", "--new")
    assert fresh.code == 0, fresh.stderr
    new_id = json.loads(fresh.stdout)["run_id"]
    old = Journal.open(app / ".recovery-wizard" / "runs" / old_id)
    assert old.status == "abandoned"
    assert old.records[-1].data["superseded_by"] == new_id
    nothing = await shared.cli(app, "restore", "--yes", "--resume")
    assert nothing.code == 2, nothing.stderr  # the abandoned run is never picked up again


async def test_a_restore_superseded_by_a_later_finished_one_is_not_resumed(
    shared: Shared, tmp_path: Path
) -> None:
    """A killed restore, then one that finished (as a version that did not mark the first left it): resuming
    the first would repoint .env back at its branch and undo the later repair."""
    count("lifecycle:unfinished runs")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    killed = await shared.cli(app, *RESTORE, "--name", "sup-old", extra_env={"RECOVERY_WIZARD_CRASH_AT": "3"})
    assert killed.code == -9
    [old_dir] = list_runs(app)
    aside = tmp_path / old_dir.name
    old_dir.rename(aside)  # out of sight of the next run, so that nothing marks it
    later = await shared.cli(app, *RESTORE, "--name", "sup-later")
    assert later.code == 0, later.stderr
    later_id = json.loads(later.stdout)["run_id"]
    aside.rename(old_dir)
    env_after_later = (app / ".env").read_bytes()

    refused = await shared.cli(app, "restore", "--yes", "--json", "--resume")
    assert refused.code == 2, refused.stderr
    assert old_dir.name in refused.stderr and later_id in refused.stderr
    assert (app / ".env").read_bytes() == env_after_later  # not repointed back at sup-old

    fresh = await shared.cli(app, *RESTORE, "--name", "sup-new")  # no question about the superseded run
    assert fresh.code == 0, fresh.stderr
    old = Journal.open(old_dir)
    assert old.status == "abandoned"
    assert old.records[-1].data["superseded_by"] == json.loads(fresh.stdout)["run_id"]


async def test_resume_of_a_find_moment_run_is_refused(shared: Shared, tmp_path: Path) -> None:
    count("lifecycle:unfinished runs")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    found = await shared.cli(
        app,
        "find-moment",
        "--json",
        "--check",
        'SELECT count(*) >= 0 FROM "User"',
        "--good",
        "20 minutes ago",
    )
    run_id = list_runs(app)[0].name
    assert found.code in (0, 2), found.stderr  # the canary may hold at both ends: refused, run recorded
    for command in ("restore", "drill"):
        resumed = await shared.cli(app, command, "--yes", "--resume", run_id)
        assert resumed.code == 2, resumed.stderr
        assert "find-moment run" in resumed.stderr
        assert "Traceback" not in resumed.stderr and "KeyError" not in resumed.stderr


# --- damaged journals -------------------------------------------------------------------------------------


async def test_a_torn_journal_tail_is_cut_and_blocks_nothing(shared: Shared, tmp_path: Path) -> None:
    count("lifecycle:damaged journals")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    before = await shared.branch_names()
    killed = await shared.cli(app, *RESTORE, "--name", "torn", extra_env={"RECOVERY_WIZARD_CRASH_AT": "2"})
    assert killed.code == -9
    path = list_runs(app)[0] / "journal.jsonl"
    with path.open("ab") as fh:
        fh.write(b'{"seq": 3, "at": "2026-12-01T0')  # power lost in the middle of the next record
    resumed = await shared.cli(app, "restore", "--yes", "--json", "--resume")
    assert resumed.code == 0, resumed.stderr
    _seqs_ok(app)  # readable: the torn bytes were cut, not buried under the records that followed
    assert Journal.open(list_runs(app)[0]).status == "done"
    rolled = await shared.cli(app, "env", "rollback", "--yes")
    assert rolled.code == 0, rolled.stderr
    again = await shared.cli(app, *RESTORE, "--name", "torn-after")
    assert again.code == 0, again.stderr
    assert await shared.branch_names() - before == {"torn", "torn-after"}


async def test_a_damaged_old_journal_never_blocks_a_new_run(shared: Shared, tmp_path: Path) -> None:
    count("lifecycle:damaged journals")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    killed = await shared.cli(
        app, *RESTORE, "--name", "damaged-old", extra_env={"RECOVERY_WIZARD_CRASH_AT": "3"}
    )
    assert killed.code == -9
    old = list_runs(app)[0]
    lines = (old / "journal.jsonl").read_text().splitlines()
    (old / "journal.jsonl").write_text("\n".join([lines[0], "garbage", *lines[2:]]) + "\n")

    # Not known to be unfinished: skipped with a warning; the new run goes ahead.
    fresh = await shared.cli(app, *RESTORE, "--name", "damaged-new")
    assert fresh.code == 0, fresh.stderr
    assert old.name in fresh.stderr and "damaged at line 2" in fresh.stderr
    # "--resume" (the latest) will not guess past a journal it cannot read; by id, the reason is given.
    latest = await shared.cli(app, "restore", "--yes", "--resume")
    assert latest.code == 2 and old.name in latest.stderr, latest.stderr
    by_id = await shared.cli(app, "restore", "--yes", "--resume", old.name)
    assert by_id.code == 2 and "damaged at line 2" in by_id.stderr, by_id.stderr
    for result in (fresh, latest, by_id):
        assert "Traceback" not in result.stderr


# --- signals ----------------------------------------------------------------------------------------------

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _alive(pid: int) -> bool:
    """Running (zombies are dead already: a container's PID 1 may never reap an orphan)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


async def _interrupt(
    shared: Shared, app: Path, name: str, sig: signal.Signals, ready: Callable[[], bool], **env: str
) -> CliResult:
    proc = await _spawn(shared, app, *RESTORE, "--name", name, extra_env=env)
    await _until(ready, "the run to reach the step")
    await asyncio.sleep(0.3)
    proc.send_signal(sig)
    return await _finish(proc, timeout=60)


def _assert_interrupted(result: CliResult, app: Path, sig: signal.Signals, shared: Shared) -> None:
    assert result.code == 3, (result.code, result.stderr)
    assert "Traceback" not in result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == "interrupted"
    assert sig.name in out["error"]["message"]
    run_id = out["run_id"]
    assert f"recovery-wizard restore --resume {run_id}" in result.stderr
    journal = Journal.open(list_runs(app)[0])
    assert journal.status == "interrupted" and journal.resumable
    report = Path(out["report"])
    assert report.is_file() and "status **interrupted**" in report.read_text()
    assert not shared.leaked(result.stdout, result.stderr, run_texts(app))


async def _resume_finishes(shared: Shared, app: Path, name: str, before: set[str]) -> None:
    resumed = await shared.cli(app, "restore", "--yes", "--json", "--resume")
    assert resumed.code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "done"
    assert await shared.branch_names() - before == {name}
    assert Journal.open(list_runs(app)[0]).status == "done"
    _seqs_ok(app)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
async def test_a_signal_while_waiting_for_neon(shared: Shared, tmp_path: Path, sig: signal.Signals) -> None:
    count("lifecycle:signals")
    app = shared.make_app(tmp_path)
    name = f"sig-wait-{sig.name.lower()}"
    shared.clear_faults()
    before = await shared.branch_names()

    def waiting() -> bool:
        runs = list_runs(app)
        return bool(runs) and Journal.open(runs[0]).last("restore", "begin") is not None

    shared.set_faults(segment_fault("GET /projects/*/operations/*=stall:seconds=20"))
    try:
        result = await _interrupt(shared, app, name, sig, waiting)
    finally:
        shared.clear_faults()
    _assert_interrupted(result, app, sig, shared)
    assert (app / ".env").read_text().count("sig-wait") == 0  # .env untouched: it never got that far
    await _resume_finishes(shared, app, name, before)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
async def test_a_signal_while_prisma_runs_stops_its_process_group(
    shared: Shared, tmp_path: Path, sig: signal.Signals
) -> None:
    count("lifecycle:signals")
    app = shared.make_app(tmp_path)
    name = f"sig-prisma-{sig.name.lower()}"
    shared.clear_faults()
    before = await shared.branch_names()

    def hanging() -> bool:
        return any(e.get("event") == "hang" for e in read_log(app))

    result = await _interrupt(shared, app, name, sig, hanging, PRISMA_STANDIN_BEHAVIOUR="hang")
    _assert_interrupted(result, app, sig, shared)
    pids = [pid for e in read_log(app) if e.get("event") == "hang" for pid in e["pids"]]
    assert pids
    await _until(lambda: not any(_alive(p) for p in pids), "Prisma's process group to be gone")
    journal = Journal.open(list_runs(app)[0])
    assert journal.done("env:0") is not None and journal.begun_not_done("prisma") is not None
    await _resume_finishes(shared, app, name, before)


async def test_an_interrupted_drill_hints_drill_resume_which_finishes_it(
    shared: Shared, tmp_path: Path
) -> None:
    count("lifecycle:signals")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    before = await shared.branch_names()

    def waiting() -> bool:
        runs = list_runs(app)
        return bool(runs) and Journal.open(runs[0]).last("restore", "begin") is not None

    shared.set_faults(segment_fault("GET /projects/*/operations/*=stall:seconds=20"))
    try:
        proc = await _spawn(shared, app, "drill", "--yes", "--json", "--name", "sig-drill")
        await _until(waiting, "the drill's restore")
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        result = await _finish(proc, timeout=60)
    finally:
        shared.clear_faults()
    assert result.code == 3, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    assert f"recovery-wizard drill --resume {run_id}" in result.stderr
    assert "restore --resume" not in result.stderr
    resumed = await shared.cli(app, "drill", "--yes", "--json", "--resume", run_id)
    assert resumed.code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["deleted"] is True
    assert await shared.branch_names() - before == set(), "the drill left its branch behind"


# --- failures after the first write -----------------------------------------------------------------------


async def test_an_env_failure_after_the_branch_exists_is_resumable(shared: Shared, tmp_path: Path) -> None:
    count("lifecycle:failures after the first write")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    before = await shared.branch_names()
    env = app / ".env"
    good = env.read_text()
    # A line dotenv cannot read that mentions the variable: the rewrite refuses, after the branch exists.
    env.write_text(good + '// DATABASE_URL="postgresql://old@host/db"\n')
    failed = await shared.cli(app, *RESTORE, "--name", "late-env")
    assert failed.code == 1, failed.stderr
    out = failed.json()
    assert out["status"] == "failed"
    assert out["run_id"] and out["restore_branch"]["name"] == "late-env"
    assert Path(out["report"]).is_file()
    assert "Step 'env' failed" in out["error"]["message"]
    hint = out["error"]["hint"]
    assert f"recovery-wizard restore --resume {out['run_id']}" in hint
    assert "re-run" not in hint and "re-run" not in failed.stderr
    assert Journal.open(list_runs(app)[0]).status == "failed"

    env.write_text(good)  # the person fixes the line, then resumes as told
    resumed = await shared.cli(app, "restore", "--yes", "--json", "--resume", out["run_id"])
    assert resumed.code == 0, resumed.stderr
    assert await shared.branch_names() - before == {"late-env"}, "a second branch"


async def test_a_failure_after_verification_says_what_is_left_by_hand(shared: Shared, tmp_path: Path) -> None:
    """The plain-text end of a failed run lists what still points at the damaged data, as a success does."""
    count("lifecycle:failures after the first write")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    env = app / ".env"
    env.write_text(env.read_text() + '// DATABASE_URL="postgresql://old@host/db"\n')
    failed = await shared.cli(app, "restore", "--yes", "--at", "35 minutes ago", "--name", "late-env-text")
    assert failed.code == 1, failed.stderr
    assert "Left to do by hand:" in failed.stdout
    assert f"{env} was not rewritten" in failed.stdout
    assert "redeploy" in failed.stdout


async def test_an_interrupted_find_moment_never_hints_a_restore_resume(
    shared: Shared, tmp_path: Path
) -> None:
    count("lifecycle:signals")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    # A slow canary keeps the search busy in its first probes (pg_sleep is refused as a check: it holds the
    # snapshot open; counting a long series is read-only work that takes a second or two).
    canary = 'SELECT (SELECT count(*) FROM generate_series(1, 30000000)) > 0 AND count(*) >= 10 FROM "User"'
    proc = await _spawn(shared, app, "find-moment", "--check", canary, "--good", "50 minutes ago")
    await _until(lambda: bool(list_runs(app)), "the search's journal")
    await asyncio.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    result = await _finish(proc, timeout=60)
    assert result.code == 3, result.stderr
    assert "restore --resume" not in result.stderr
    assert "find-moment --check" in result.stderr
    assert Journal.open(list_runs(app)[0]).status == "interrupted"


# --- at a terminal ----------------------------------------------------------------------------------------


def _pty(
    args: list[str],
    cwd: Path,
    env: dict[str, str],
    steps: list[tuple[Callable[[str], bool], bytes]],
    timeout: float = 90,
) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal; each step types its bytes once its condition holds (in order).
    Confirmations ("(y/N)", "(Y/n)") are answered yes, as a person going ahead would."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execve(
            sys.executable,
            [sys.executable, "-m", "recovery_wizard", *args],
            {**env, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"},
        )
    seen, answered, pending = b"", 0, list(steps)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            text = seen.decode(errors="replace")
            if pending and pending[0][0](text):
                time.sleep(0.5)  # let the prompt settle (prompt_toolkit asks the terminal things first)
                os.write(fd, pending.pop(0)[1])
                answered = len(text)
                continue
            fresh = text[answered:]
            if "(y/N)" in fresh or "(Y/n)" in fresh:
                answered = len(text)
                os.write(fd, b"y")
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


async def test_at_a_terminal_an_unfinished_run_is_offered_for_resuming(
    shared: Shared, tmp_path: Path
) -> None:
    count("lifecycle:unfinished runs")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    before = await shared.branch_names()
    killed = await shared.cli(app, *RESTORE, "--name", "pty-old", extra_env={"RECOVERY_WIZARD_CRASH_AT": "3"})
    assert killed.code == -9
    code, output = await asyncio.to_thread(
        _pty,
        ["restore", "--at", shared.as_of_start("35 minutes ago"), "--name", "pty-new"],
        app,
        shared.env(),
        [
            (lambda text: "Start a new restore" in text and "Cancel" in text, b"\r")
        ],  # the first choice: resume
    )
    assert code == 0, output[-3000:]
    assert "Traceback" not in output
    assert await shared.branch_names() - before == {"pty-old"}, "resumed, not a second branch"
    assert len(list_runs(app)) == 1 and _records(app)[0].status == "done"


async def test_ctrl_c_after_a_prompt_still_takes_the_interrupt_path(shared: Shared, tmp_path: Path) -> None:
    """A questionary prompt takes SIGINT over while it asks; Ctrl-C after it must still stop the run."""
    count("lifecycle:signals")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    before = await shared.branch_names()

    def waiting(_: str) -> bool:
        runs = list_runs(app)
        return bool(runs) and Journal.open(runs[0]).last("restore", "begin") is not None

    shared.set_faults(segment_fault("GET /projects/*/operations/*=stall:seconds=20"))
    try:
        code, output = await asyncio.to_thread(
            _pty,
            ["restore", "--at", shared.as_of_start("35 minutes ago"), "--name", "pty-ctrl-c", "--no-prisma"],
            app,
            shared.env(),
            [(waiting, b"\x03")],  # Ctrl-C typed at the terminal: SIGINT to the foreground process group
        )
    finally:
        shared.clear_faults()
    assert code == 3, output[-3000:]
    assert "Traceback" not in output
    assert "recovery-wizard restore --resume" in output
    assert _records(app)[0].status == "interrupted"
    await _resume_finishes(shared, app, "pty-ctrl-c", before)


def _hang_up(
    args: list[str], cwd: Path, env: dict[str, str], when: Callable[[], bool], timeout: float = 60
) -> int:
    """Run the CLI on a pseudo-terminal and close the terminal (an SSH drop) once ``when`` holds."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, "-m", "recovery_wizard", *args], {**env, "TERM": "xterm"})
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not when():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                with contextlib.suppress(OSError):
                    os.read(fd, 65536)
        time.sleep(0.3)
    finally:
        os.close(fd)  # the terminal goes away: the kernel sends SIGHUP to the session's foreground group
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the run did not stop after its terminal hung up")


async def test_an_ssh_drop_ends_the_run_interrupted_and_resumable(shared: Shared, tmp_path: Path) -> None:
    count("lifecycle:signals")
    app = shared.make_app(tmp_path)
    shared.clear_faults()
    before = await shared.branch_names()

    def waiting() -> bool:
        runs = list_runs(app)
        return bool(runs) and Journal.open(runs[0]).last("restore", "begin") is not None

    shared.set_faults(segment_fault("GET /projects/*/operations/*=stall:seconds=20"))
    try:
        code = await asyncio.to_thread(
            _hang_up,
            [
                "restore",
                "--yes",
                "--at",
                shared.as_of_start("35 minutes ago"),
                "--name",
                "ssh-drop",
                "--no-prisma",
            ],
            app,
            shared.env(),
            waiting,
        )
    finally:
        shared.clear_faults()
    assert code == 3
    journal = _records(app)[0]
    assert journal.status == "interrupted"
    report = (list_runs(app)[0] / "report.md").read_text()
    assert "status **interrupted**" in report and "Interrupted by SIGHUP" in report
    await _resume_finishes(shared, app, "ssh-drop", before)
