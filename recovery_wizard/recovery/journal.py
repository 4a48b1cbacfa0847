"""The run directory and its append-only journal: what a run intends and did, so it can resume after a crash.

``.recovery-wizard/runs/<run_id>/`` in the working directory holds ``journal.jsonl``, ``report.md`` and the
backups a run makes (env files, schema.prisma). ``.recovery-wizard/.gitignore`` holds ``*``: none of it
belongs in the app's repository.

Every side effect is journalled twice: a ``begin`` record BEFORE it (with what it is about to do, e.g. the
branch name it will create, the digest a file will have) and a ``done`` record after (with what it got,
e.g. the branch id). Each record is flushed and fsynced before the effect starts, so after a crash the
journal says exactly which effects may be half-done, and ``--resume`` reconciles those instead of
repeating them. Records never hold a secret: ``append`` scrubs every string with ``redact``.

For crash tests, ``RECOVERY_WIZARD_CRASH_AT=N`` makes the process SIGKILL itself right after writing
record N: a real, uncatchable kill at an exact checkpoint.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recovery_wizard.errors import RecoveryError
from recovery_wizard.redact import redact

STATE_DIR = ".recovery-wizard"
CRASH_ENV = "RECOVERY_WIZARD_CRASH_AT"


class JournalError(RecoveryError):
    """The run directory or its journal cannot be used."""


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass(frozen=True)
class Record:
    seq: int
    at: datetime
    kind: str  # "run" or "step"
    event: str  # run: start/end/resume; step: begin/done/failed/skipped/note
    step: str | None
    data: dict[str, Any]


@dataclass
class Journal:
    """One run's journal. Open with :meth:`create` (new run) or :meth:`open` (resume, report, rollback)."""

    run_dir: Path
    records: list[Record] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def path(self) -> Path:
        return self.run_dir / "journal.jsonl"

    @classmethod
    def create(cls, workdir: Path, now: datetime | None = None) -> Journal:
        root = workdir / STATE_DIR
        runs = root / "runs"
        try:
            runs.mkdir(parents=True, exist_ok=True)
            ignore = root / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# recovery-wizard's run records and backups: never commit them.\n*\n")
            stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
            run_dir = runs / f"{stamp}-{secrets.token_hex(3)}"
            run_dir.mkdir(mode=0o700)
        except OSError as exc:
            raise JournalError(
                f"Could not create the run directory under {root}: {exc.strerror}.",
                hint="Run recovery-wizard from a directory you can write to (your app's directory).",
            ) from None
        return cls(run_dir)

    @classmethod
    def open(cls, run_dir: Path) -> Journal:
        journal = cls(run_dir)
        try:
            lines = journal.path.read_text().splitlines()
        except OSError as exc:
            raise JournalError(f"Could not read the journal of run {run_dir.name}: {exc.strerror}.") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                journal.records.append(
                    Record(
                        seq=int(raw["seq"]),
                        at=datetime.fromisoformat(str(raw["at"]).replace("Z", "+00:00")),
                        kind=str(raw["kind"]),
                        event=str(raw["event"]),
                        step=raw.get("step"),
                        data=dict(raw.get("data") or {}),
                    )
                )
            except (ValueError, KeyError, TypeError):
                if number == len(lines):
                    break  # a record cut short by a crash: the effect it announced never started
                raise JournalError(
                    f"The journal of run {run_dir.name} is damaged at line {number}."
                ) from None
        return journal

    def append(self, kind: str, event: str, step: str | None = None, **data: Any) -> Record:
        record = Record(len(self.records) + 1, datetime.now(UTC), kind, event, step, _scrub(data))
        line = json.dumps(
            {
                "seq": record.seq,
                "at": _scrub(record.at),
                "kind": kind,
                "event": event,
                "step": step,
                "data": record.data,
            },
            sort_keys=True,
        )
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records.append(record)
        crash_at = os.environ.get(CRASH_ENV)
        if crash_at and crash_at.isdigit() and int(crash_at) == record.seq:
            os.kill(os.getpid(), signal.SIGKILL)
        return record

    # --- reading it back --------------------------------------------------------------------------------

    def last(self, step: str, event: str | None = None) -> Record | None:
        for record in reversed(self.records):
            if record.kind == "step" and record.step == step and (event is None or record.event == event):
                return record
        return None

    def done(self, step: str) -> Record | None:
        return self.last(step, "done")

    def begun_not_done(self, step: str) -> Record | None:
        """The ``begin`` record of a step whose effect may or may not have happened (crash in between)."""
        last = self.last(step)
        return last if last is not None and last.event == "begin" else None

    @property
    def start(self) -> Record | None:
        return next((r for r in self.records if r.kind == "run" and r.event == "start"), None)

    @property
    def finished(self) -> bool:
        return any(r.kind == "run" and r.event == "end" for r in self.records)

    @property
    def resumable(self) -> bool:
        """Unfinished, stopped by a failed step or interrupted (both said "resume"); not done, refused or
        cancelled."""
        return not self.finished or self.status in ("failed", "interrupted")

    @property
    def status(self) -> str:
        end = next((r for r in reversed(self.records) if r.kind == "run" and r.event == "end"), None)
        return str(end.data.get("status", "unknown")) if end else "unfinished"


def runs_dir(workdir: Path) -> Path:
    return workdir / STATE_DIR / "runs"


def list_runs(workdir: Path) -> list[Path]:
    """Run directories, oldest first (run ids sort by time)."""
    directory = runs_dir(workdir)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if (p / "journal.jsonl").is_file())


def latest_resumable(workdir: Path, command: str | None = None) -> Journal | None:
    """The newest run that can be continued: unfinished (a crash), or ended because a step failed."""
    for run_dir in reversed(list_runs(workdir)):
        journal = Journal.open(run_dir)
        start = journal.start
        if start is None or not journal.resumable:
            continue
        if command is None or start.data.get("command") == command:
            return journal
    return None


def latest_unfinished(workdir: Path, command: str | None = None) -> Journal | None:
    for run_dir in reversed(list_runs(workdir)):
        journal = Journal.open(run_dir)
        start = journal.start
        if journal.finished or start is None:
            continue
        if command is None or start.data.get("command") == command:
            return journal
    return None


def find_run(workdir: Path, run_id: str) -> Journal:
    run_dir = runs_dir(workdir) / run_id
    if not (run_dir / "journal.jsonl").is_file():
        known = ", ".join(p.name for p in list_runs(workdir)[-5:]) or "none"
        raise JournalError(f"There is no run {run_id!r} in {runs_dir(workdir)}. Recent runs: {known}.")
    return Journal.open(run_dir)
