"""The run directory and its append-only journal: what a run intends and did, so it can resume after a crash.

``.recovery-wizard/runs/<run_id>/`` in the working directory holds ``journal.jsonl``, ``report.md`` and the
backups a run makes (env files, schema.prisma). ``.recovery-wizard/.gitignore`` holds ``*``: none of it
belongs in the app's repository.

Every side effect is journalled twice: a ``begin`` record BEFORE it (with what it is about to do, e.g. the
branch name it will create, the digest a file will have) and a ``done`` record after (with what it got,
e.g. the branch id). Each record is flushed and fsynced before the effect starts, so after a crash the
journal says exactly which effects may be half-done, and ``--resume`` reconciles those instead of
repeating them. Records never hold a secret: ``append`` scrubs every string with ``redact``.

A power loss in the middle of an append leaves a torn last line. Reading ignores it (the effect it
announced never started), and the first append after opening cuts it off, so a resumed run never writes a
record onto the torn bytes. A journal damaged anywhere else is refused when that run is asked for by id,
and skipped with a warning when runs are listed: an old damaged run never blocks a new one.

For crash tests, ``RECOVERY_WIZARD_CRASH_AT=N`` makes the process SIGKILL itself right after writing
record N: a real, uncatchable kill at an exact checkpoint. ``RECOVERY_WIZARD_CRASH_BEFORE=N`` kills it just
before writing record N, i.e. after the side effect that record N would have reported. Instead of N, the
``event:step`` of a step record (``begin:restore``, ``done:env:0``) names the first record of that kind.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recovery_wizard.errors import RecoveryError
from recovery_wizard.redact import redact

log = logging.getLogger("recovery_wizard.journal")

STATE_DIR = ".recovery-wizard"
CRASH_ENV = "RECOVERY_WIZARD_CRASH_AT"
# How a run ended. Only "failed" and "interrupted" runs (and unfinished ones, i.e. killed) can be resumed;
# "abandoned" marks an unfinished run that the user chose not to resume (`restore --new`).
RESUMABLE_STATUSES = ("failed", "interrupted")
CRASH_BEFORE_ENV = "RECOVERY_WIZARD_CRASH_BEFORE"


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
    # Byte length of the intact records when the file ends in a torn line: cut there before the next append.
    _torn_at: int | None = None
    # The last record is whole but its newline was lost: write one before the next record.
    _needs_newline: bool = False

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
            ensure_state_dir(workdir)
            runs.mkdir(exist_ok=True)
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
            data = journal.path.read_bytes()
        except OSError as exc:
            raise JournalError(f"Could not read the journal of run {run_dir.name}: {exc.strerror}.") from None
        lines = data.split(b"\n")
        blank = b"\0 \t\r"  # a power loss can leave NUL bytes where the last record was to go
        final = max((i for i, line in enumerate(lines, start=1) if line.strip(blank)), default=0)
        offset = 0  # byte offset of the current line
        for number, line in enumerate(lines, start=1):
            start, offset = offset, offset + len(line) + 1
            last = number >= final
            if not line.strip(blank):
                if last and line and start < len(data):
                    journal._torn_at = start  # trailing NULs or blanks a power loss left: not a record
                    break
                continue
            try:
                raw = json.loads(line.decode("utf-8"))
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
            except (ValueError, KeyError, TypeError, AttributeError):
                if last:
                    # A record cut short by a crash or a power loss: the effect it announced never started.
                    journal._torn_at = start
                    break
                raise JournalError(
                    f"The journal of run {run_dir.name} is damaged at line {number}.",
                    hint=f"Read {journal.path} to see what the run did; start a new run with --new.",
                ) from None
            if last and number == len(lines) and line:
                journal._needs_newline = True  # whole, but the newline after it never reached the disk
        return journal

    def append(self, kind: str, event: str, step: str | None = None, **data: Any) -> Record:
        record = Record(len(self.records) + 1, datetime.now(UTC), kind, event, step, _scrub(data))
        if os.environ.get(CRASH_BEFORE_ENV) in (str(record.seq), f"{event}:{step}"):
            os.kill(os.getpid(), signal.SIGKILL)
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
            if self._torn_at is not None:
                # Cut the torn tail off first: a record appended onto it would damage the whole journal.
                os.ftruncate(fd, self._torn_at)
                self._torn_at = None
            if self._needs_newline:
                line = "\n" + line
                self._needs_newline = False
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records.append(record)
        crash_at = os.environ.get(CRASH_ENV)
        if crash_at in (str(record.seq), f"{event}:{step}"):
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
    def command(self) -> str | None:
        start = self.start
        return None if start is None else str(start.data.get("command") or "") or None

    @property
    def resumable(self) -> bool:
        """Unfinished (killed), stopped by a failed step or by a signal (both said "resume"); not done,
        refused, cancelled at a prompt or abandoned."""
        return not self.finished or self.status in RESUMABLE_STATUSES

    @property
    def status(self) -> str:
        end = next((r for r in reversed(self.records) if r.kind == "run" and r.event == "end"), None)
        return str(end.data.get("status", "unknown")) if end else "unfinished"


def runs_dir(workdir: Path) -> Path:
    return workdir / STATE_DIR / "runs"


def ensure_state_dir(workdir: Path) -> Path:
    """``.recovery-wizard/`` with its ``.gitignore`` (``*``): nothing recovery-wizard writes gets committed."""
    root = workdir / STATE_DIR
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# recovery-wizard's run records and backups: never commit them.\n*\n")
    return root


def list_runs(workdir: Path) -> list[Path]:
    """Run directories, oldest first (run ids sort by time)."""
    directory = runs_dir(workdir)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if (p / "journal.jsonl").is_file())


Warn = Callable[[str], None]


def _log_warning(message: str) -> None:
    log.warning("%s", message)


def journals(workdir: Path, *, warn: Warn | None = None) -> Iterator[Journal]:
    """Every run's journal, newest first. A journal that cannot be read is skipped with a warning: a run
    nobody asked for by id never stops the one being started."""
    for run_dir in reversed(list_runs(workdir)):
        try:
            yield Journal.open(run_dir)
        except JournalError as exc:
            (warn or _log_warning)(f"Skipped run {run_dir.name}: {exc}")


def latest_resumable(
    workdir: Path, command: str | None = None, *, warn: Warn | None = None
) -> Journal | None:
    """The newest run that can be continued: unfinished (a crash), ended by a failed step or a signal."""
    for journal in journals(workdir, warn=warn):
        if journal.start is None or not journal.resumable:
            continue
        if command is None or journal.command == command:
            return journal
    return None


def resumable_runs(workdir: Path, command: str, *, warn: Warn | None = None) -> list[Journal]:
    """Every run of ``command`` that could still be continued, newest first."""
    return [
        j
        for j in journals(workdir, warn=warn)
        if j.start is not None and j.resumable and j.command == command
    ]


def latest_unfinished(
    workdir: Path, command: str | None = None, *, warn: Warn | None = None
) -> Journal | None:
    for journal in journals(workdir, warn=warn):
        if journal.finished or journal.start is None:
            continue
        if command is None or journal.command == command:
            return journal
    return None


def find_run(workdir: Path, run_id: str) -> Journal:
    run_dir = runs_dir(workdir) / run_id
    if "/" in run_id or not (run_dir / "journal.jsonl").is_file():
        known = ", ".join(p.name for p in list_runs(workdir)[-5:]) or "none"
        raise JournalError(f"There is no run {run_id!r} in {runs_dir(workdir)}. Recent runs: {known}.")
    return Journal.open(run_dir)
