"""``backup schedule``: Neon's snapshot schedule from the options, and the cron line and GitHub Actions job
that take the local file layer (``backup --to file --keep …``) on the team's own machine or CI.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from recovery_wizard.neon.models import BackupScheduleItem
from recovery_wizard.recovery.backup.retention import Keep, parse_keep
from recovery_wizard.recovery.outcome import UsageError

MIN_RETENTION = timedelta(hours=1)  # Neon's minimum retention_seconds

FILE_EVERY = {
    "hourly": ("17 * * * *", "17 * * * *"),
    "daily": ("17 3 * * *", "17 3 * * *"),
}


@dataclass(frozen=True)
class FrequencyChoice:
    frequency: str  # daily, weekly, monthly (hourly too)
    keep: str  # an age (7d) or "forever"


def _retention(frequency: str, text: str) -> int | None:
    if text.strip().lower() in ("forever", "always", "0", ""):
        return None
    keep = parse_keep(text)
    if keep.age is None:
        raise UsageError(
            f"--{frequency} {text!r}: a snapshot schedule keeps snapshots for a time, not a count.",
            hint=f"Give an age, e.g. --{frequency} 7d (or 'forever').",
        )
    if keep.age < MIN_RETENTION:
        raise UsageError(f"--{frequency} {text!r}: Neon keeps scheduled snapshots for at least 1h.")
    return int(keep.age.total_seconds())


def schedule_items(
    choices: list[FrequencyChoice], *, hour: int, weekday: int, monthday: int
) -> list[BackupScheduleItem]:
    """Neon's schedule items for the frequencies chosen (times UTC)."""
    if not 0 <= hour <= 23:
        raise UsageError(f"--hour {hour}: give an hour of the day 0-23 (UTC).")
    if not 1 <= weekday <= 7:
        raise UsageError(f"--weekday {weekday}: give 1 (Monday) to 7 (Sunday).")
    if not 1 <= monthday <= 31:
        raise UsageError(f"--monthday {monthday}: give a day of the month 1-31.")
    items = []
    for choice in choices:
        retention = _retention(choice.frequency, choice.keep)
        item = BackupScheduleItem(frequency=choice.frequency, retention_seconds=retention)
        if choice.frequency == "daily":
            item = BackupScheduleItem(frequency="daily", hour=hour, retention_seconds=retention)
        elif choice.frequency == "weekly":
            item = BackupScheduleItem(frequency="weekly", hour=hour, day=weekday, retention_seconds=retention)
        elif choice.frequency == "monthly":
            item = BackupScheduleItem(
                frequency="monthly", hour=hour, day=monthday, retention_seconds=retention
            )
        items.append(item)
    return items


def describe_items(items: list[BackupScheduleItem]) -> list[str]:
    days = ["", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    lines = []
    for item in items:
        when = ""
        if item.frequency == "daily":
            when = f" at {item.hour or 0:02d}:00 UTC"
        elif item.frequency == "weekly":
            when = f" on {days[item.day or 1]} at {item.hour or 0:02d}:00 UTC"
        elif item.frequency == "monthly":
            when = f" on day {item.day or 1} at {item.hour or 0:02d}:00 UTC"
        kept = (
            "kept until deleted"
            if item.retention_seconds is None
            else f"kept {Keep(age=timedelta(seconds=item.retention_seconds)).option}"
        )
        lines.append(f"{item.frequency}{when}, {kept}")
    return lines


def file_command(branch: str | None, keep: Keep, directory: str | None) -> list[str]:
    command = ["recovery-wizard", "backup", "--to", "file", "--keep", keep.option, "--yes"]
    if branch:
        command += ["--branch", branch]
    if directory:
        command += ["--dir", directory]
    return command


def cron_line(app_dir: Path, command: list[str], every: str) -> str:
    """One crontab line: the file backup in the app directory; the key comes from the crontab's env."""
    schedule = FILE_EVERY[every][0]
    log = ".recovery-wizard/backup-cron.log"
    return f"{schedule} cd {shlex.quote(str(app_dir))} && {shlex.join(command)} >> {log} 2>&1"


def github_actions_job(command: list[str], every: str) -> str:
    """A GitHub Actions workflow that takes the file backup and keeps it as an artifact.

    The key is a repository secret (never in the file); the project id a variable.
    """
    cron = FILE_EVERY[every][1]
    run = shlex.join(command)
    return f"""name: database backup
on:
  schedule:
    - cron: "{cron}"
  workflow_dispatch: {{}}
jobs:
  backup:
    runs-on: ubuntu-latest
    env:
      NEON_API_KEY: ${{{{ secrets.NEON_API_KEY }}}}
      NEON_PROJECT_ID: ${{{{ vars.NEON_PROJECT_ID }}}}
    steps:
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - run: pip install recovery-wizard
      - uses: actions/cache@v4
        with:
          path: backups
          key: backups-${{{{ github.run_id }}}}
          restore-keys: backups-
      - run: {run}
"""
