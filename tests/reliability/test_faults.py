"""Part 1: every Neon request on the restore path × every way Neon (or the network) can fail it.

The bulk of the matrix runs the real headless command (``commands._restore``: the same code `restore`
runs, exit codes included) in-process against the shared sandbox over a socket, with the client's retry
and wait policies shortened so a case takes about a second; a representative subset runs the CLI as a
subprocess with its production policies, to prove the in-process shortcut changes nothing that matters.

Every case must end in success (where resending is safe) or a clean exit 1 naming the step, never leave two
restore branches, and leave the env file byte-for-byte alone unless the run succeeded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from recovery_wizard import commands
from recovery_wizard.neon import NeonClient
from recovery_wizard.recovery import runner as runner_module
from recovery_wizard.recovery.plan import RunOptions
from tests.reliability.conftest import Shared, count, segment_fault
from tests.sandbox.conftest import FAST_RETRY, FAST_WAIT

# Where each request happens, as a segment glob (``*`` = one path segment) and which occurrence.
ENDPOINTS: dict[str, tuple[str, str]] = {
    # planning: a failure here is before any write
    "project": ("GET /projects/*", "plan"),
    "branches": ("GET /projects/*/branches", "plan"),
    "databases": ("GET /projects/*/branches/*/databases", "plan"),
    "roles": ("GET /projects/*/branches/*/roles", "plan"),
    "operations": ("GET /projects/*/operations", "plan"),
    # the restore step
    "create-branch": ("POST /projects/*/branches", "restore"),
    "operation": ("GET /projects/*/operations/*", "restore"),
    # GET branch and GET endpoints are no longer on the path: the create answer carries both.
    # verify asks for the restored and damaged direct URIs and, ahead of time, the pooled URI the env file
    # gets, all three at once; the env and Prisma steps reuse them. Their order on the wire is a race, so
    # each is named by what it asks (pooled=false: verify's own; pooled=true: the read-ahead). A failed
    # read-ahead is asked again by the env step: see test_lasting_or_best_effort_faults.
    "connection-uri": ("GET /projects/*/connection_uri?pooled=false", "verify"),
    "connection-uri-pooled": ("GET /projects/*/connection_uri?pooled=true#1-2", "env"),
}
RETRYABLE = ("423", "429", "429:retry-after=1", "503", "500", "drop", "stall:seconds=20")
# Every GET gets the faults whose handling differs by HTTP status class (429 → any method, 500 → GET only,
# drop → transport error, malformed → not retried); 423/503 behave exactly like 429 in the transport, and a
# stall costs a client timeout per case, so those run on a representative subset.
PER_GET = ("500", "drop", "malformed")
SUBSET = {
    "create-branch": (*RETRYABLE, "malformed"),
    "project": ("429", "423", "stall:seconds=20"),
    "operation": ("429", "423", "503", "429:retry-after=1", "stall:seconds=20"),
    "branches": ("503", "429:retry-after=1"),
    "connection-uri": ("429", "503", "stall:seconds=20"),
}
# The client's timeout in stall cases: shorter than the stall, longer than any answer. Every request of the
# run has it, so it is generous: with 1.5 s, a loaded machine's slow answer (a branch's databases copied) timed
# out too, and a create the sandbox had not finished could not be found by name.
STALL_TIMEOUT = 10.0


# Fixed: the runner records which step is running (RunResult.step), so failures name it.
MISNAMED_STEP: list[Any] = []


def matrix() -> list[Any]:
    cases: list[Any] = []
    for endpoint, (spec, step) in ENDPOINTS.items():
        extra = SUBSET.get(endpoint, ())
        actions = tuple(dict.fromkeys((*PER_GET, *extra))) if spec.startswith("GET") else extra
        for action in actions:
            fails = action == "malformed" and step in ("verify", "env")
            cases.append(pytest.param(endpoint, action, marks=MISNAMED_STEP if fails else []))
    return cases


@dataclass
class Outcome:
    code: int
    out: dict[str, Any]
    stderr: str
    new_branches: set[str]
    env_changed: bool


def _safe_name(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


async def restore_in_process(
    shared: Shared,
    app: Path,
    name: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    timeout: float = 30.0,
    resume: str | None = None,
) -> tuple[int, dict[str, Any], str]:
    """`recovery-wizard restore --yes --json --no-prisma --name NAME` in this process, fast policies."""

    def client(*args: Any, **kwargs: Any) -> NeonClient:
        return NeonClient(*args, **kwargs, retry=FAST_RETRY, wait=FAST_WAIT, timeout=timeout)

    monkeypatch.setattr(commands, "NeonClient", client)
    monkeypatch.setattr(runner_module, "RECONCILE_PAUSE", 0.05)
    g = commands.GlobalOptions(
        shared.api_key, shared.url, shared.project_id, json=True, yes=True, workdir=app
    )
    options = RunOptions(
        command="restore",
        workdir=app,
        project_id=shared.project_id,
        api_url=shared.url,
        at=None if resume else shared.as_of_start("35 minutes ago"),
        tz="Europe/Amsterdam",
        name=name,
        prisma=False,
        yes=True,
    )
    capsys.readouterr()
    code = await commands._restore(g, options, resume)
    captured = capsys.readouterr()
    out = json.loads(captured.out.strip().splitlines()[-1]) if captured.out.strip() else {}
    return code, out, captured.err


async def run_case(
    shared: Shared,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    name: str,
    *,
    timeout: float = 30.0,
) -> tuple[Outcome, Path]:
    app = shared.make_app(tmp_path)
    env_before = (app / ".env").read_bytes()
    shared.clear_faults()
    before = await shared.branch_names()
    shared.set_faults(segment_fault(spec))
    try:
        code, out, err = await restore_in_process(shared, app, name, capsys, monkeypatch, timeout=timeout)
    finally:
        shared.clear_faults()
    new = await shared.branch_names() - before
    return Outcome(code, out, err, new, (app / ".env").read_bytes() != env_before), app


def assert_clean(outcome: Outcome, name: str, step: str) -> None:
    """The invariants of every case, whatever its fate."""
    assert outcome.code in (0, 1), (outcome.code, outcome.stderr)
    assert "Traceback" not in outcome.stderr
    assert outcome.new_branches <= {name}, f"more than one restore branch: {outcome.new_branches}"
    if outcome.code == 0:
        assert outcome.out["status"] == "done"
        assert outcome.new_branches == {name}
        assert outcome.env_changed
    else:
        assert outcome.out["status"] == "failed", outcome.out
        assert not outcome.env_changed, "a failed run changed the env file"
        message = outcome.out["error"]["message"]
        if step == "plan":
            # Planning has no step record yet: the message names the request that failed instead.
            assert re.search(r"(GET|POST) /projects/", message), message
            assert not outcome.new_branches
        else:
            assert f"Step {step!r} failed" in message, message
            assert "--resume" in outcome.stderr


@pytest.mark.parametrize(("endpoint", "action"), matrix())
async def test_fault_on_one_request(
    shared: Shared,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    endpoint: str,
    action: str,
) -> None:
    spec, step = ENDPOINTS[endpoint]
    name = f"fm-{_safe_name(endpoint + '-' + action)}"
    stall = action.startswith("stall")
    outcome, _ = await run_case(
        shared,
        tmp_path,
        capsys,
        monkeypatch,
        f"{spec}={action}",
        name,
        timeout=STALL_TIMEOUT if stall else 30.0,
    )
    count("faults:in-process fault cases")
    assert_clean(outcome, name, step)
    if action == "malformed" and endpoint == "create-branch":
        # The write happened and its answer is unreadable: the runner finds the branch by name and goes on.
        assert outcome.code == 0, outcome.out.get("error")
        assert outcome.new_branches == {name}
    elif action == "malformed":
        # Not JSON is never retried: the run stops cleanly at the step that asked.
        assert outcome.code == 1
        assert "not JSON" in outcome.out["error"]["message"]
    else:
        # Resending was safe (a GET, a 423/429/503 before handling) or the lost write was reconciled.
        assert outcome.code == 0, outcome.out.get("error")


@pytest.mark.parametrize(
    ("spec", "step"),
    [
        # A timeline failure is best effort: the record says less, the restore still succeeds.
        ("GET /projects/*/branches#2=malformed", None),
        ("GET /projects/*/operations#2=malformed", None),
        # The pooled URI read ahead during verify is best effort: the env step asks again and succeeds.
        ("GET /projects/*/connection_uri?pooled=true=malformed", None),
        # Faults that never clear: retries run out and the run stops at the step, cleanly.
        ("POST /projects/*/branches#*=423", "restore"),
        ("GET /projects/*/operations/*#*=503", "restore"),
        pytest.param("GET /projects/*/connection_uri?pooled=false#*=500", "verify", marks=MISNAMED_STEP),
        ("GET /projects/*/branches#*=429", "plan"),
    ],
)
async def test_lasting_or_best_effort_faults(
    shared: Shared,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    step: str | None,
) -> None:
    name = f"fl-{_safe_name(spec)}"[:60]
    outcome, _ = await run_case(shared, tmp_path, capsys, monkeypatch, spec, name)
    count("faults:in-process lasting/best-effort cases")
    assert_clean(outcome, name, step or "restore")
    assert outcome.code == (0 if step is None else 1), outcome.out.get("error")
    if spec.startswith("POST") and "#*=423" in spec:
        assert not outcome.new_branches, "Neon never accepted the request"


# Fixed: a run stopped by a failed step can be resumed (journal.latest_resumable).
NOT_RESUMABLE: list[Any] = []


@pytest.mark.parametrize(
    "action", [pytest.param("malformed", marks=NOT_RESUMABLE), "stall:seconds=20:when=after"]
)
async def test_lost_create_answer_then_resume_gives_one_branch(
    shared: Shared,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    action: str,
) -> None:
    """The branch was made but the answer was garbage: resume must adopt it, not make a second one."""
    spec = f"POST /projects/*/branches={action.replace(':when=after', '')}"
    name = f"fr-{_safe_name(action)}"
    outcome, app = await run_case(shared, tmp_path, capsys, monkeypatch, spec, name, timeout=STALL_TIMEOUT)
    count("faults:create-then-resume cases")
    assert_clean(outcome, name, "restore")
    before = await shared.branch_names()
    if outcome.code == 1:
        # Exactly what the failure's hint says to run.
        hinted = re.search(r"--resume (\S+)", outcome.stderr)
        assert hinted is not None, outcome.stderr
        code, out, err = await restore_in_process(shared, app, name, capsys, monkeypatch, resume=hinted[1])
        assert code == 0, err
        assert out["restore_branch"]["name"] == name
    assert await shared.branch_names() == before  # nothing new: the one branch was adopted
    assert name in before


# --- the same faults through the real CLI (production retry policy and timeouts) --------------------------


@pytest.mark.parametrize(
    ("spec", "code", "step"),
    [
        ("POST /projects/*/branches=500", 0, None),
        ("POST /projects/*/branches=drop", 0, None),
        ("POST /projects/*/branches=429:retry-after=1", 0, None),
        ("GET */operations/*#2-3=503", 0, None),  # the sandbox's own glob, as in docs/sandbox.md
        pytest.param(
            "GET /projects/*/connection_uri?pooled=false=malformed", 1, "verify", marks=MISNAMED_STEP
        ),
        ("GET /projects/*=malformed", 1, "plan"),
    ],
)
async def test_cli_subprocess_subset(
    shared: Shared, tmp_path: Path, spec: str, code: int, step: str | None
) -> None:
    app = shared.make_app(tmp_path)
    env_before = (app / ".env").read_bytes()
    name = f"fc-{_safe_name(spec)}"[:60]
    shared.clear_faults()
    before = await shared.branch_names()
    fault = segment_fault(spec) if not spec.startswith("GET */") else spec
    shared.set_faults(fault)
    try:
        result = await shared.cli(
            app, "restore", "--yes", "--json", "--no-prisma", "--at", "35 minutes ago", "--name", name
        )
    finally:
        shared.clear_faults()
    count("faults:CLI subprocess cases")
    new = await shared.branch_names() - before
    outcome = Outcome(
        result.code, result.json(), result.stderr, new, (app / ".env").read_bytes() != env_before
    )
    assert result.code == code, (result.stdout, result.stderr)
    assert_clean(outcome, name, step or "restore")
    if "POST" in spec and ("drop" in spec or "=500" in spec):
        assert "answer was lost" in result.stderr  # reconciled by name, not resent


async def test_a_failed_verify_leaves_no_timeline_read_behind(
    shared: Shared,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The record's timeline is read beside verify; when verify fails first, that read ends with the step.

    Left running, it outlived the run's HTTP client and later printed "Task exception was never retrieved"
    with a traceback (seen as a flaky CLI case).
    """
    import asyncio

    app = shared.make_app(tmp_path)
    shared.clear_faults()
    before = await shared.branch_names()
    # The timeline's operations read (the second; the first is planning's) stalls; verify's URI is garbage.
    shared.set_faults(
        segment_fault("GET /projects/*/operations#2=stall:seconds=3"),
        segment_fault("GET /projects/*/connection_uri?pooled=false=malformed"),
    )
    try:
        code, out, _ = await restore_in_process(shared, app, "fv-timeline", capsys, monkeypatch)
    finally:
        shared.clear_faults()
    count("faults:in-process lasting/best-effort cases")
    assert code == 1, out
    assert "Step 'verify' failed" in out["error"]["message"]
    left = [t for t in asyncio.all_tasks() if "_collect_timeline" in repr(t.get_coro())]
    assert not left, f"the timeline read outlived the run: {left}"
    assert await shared.branch_names() - before == {"fv-timeline"}
