"""What a run can be told (``RunOptions``), apart from the plan that resolves it.

Its own module, light on purpose: the CLI builds the options before the runbook is imported, and a restore
sends its first API requests before the plan's and the steps' modules load (they are imported while those
requests are in flight). ``recovery_wizard.recovery.plan`` still exports it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recovery_wizard.neon.apiurl import display_url
from recovery_wizard.redact import Secret

if TYPE_CHECKING:
    from recovery_wizard.neon.client import NeonClient
    from recovery_wizard.neon.models import Branch, Project


@dataclass
class RunOptions:
    """Everything a run can be told; None means "not given" (ask, detect or use the default)."""

    command: str  # "restore" or "drill"
    workdir: Path
    api_key: Secret | None = None
    api_url: str | None = None
    project_id: str | None = None
    branch: str | None = None
    at: str | None = None
    tz: str | None = None
    strategy: str = "new-branch"
    name: str | None = None
    env_files: list[Path] = field(default_factory=list)
    pooled_var: str | None = None
    direct_var: str | None = None
    database: str | None = None
    role: str | None = None
    checks: list[str] = field(default_factory=list)
    prisma: bool | None = None
    dry_run: bool = False
    yes: bool = False
    keep: bool = False
    # Where the data comes from, as `--from` says it: "history" (at `at`), "snapshot:<id or name>",
    # "snapshot:latest", "file:<path>", "checkpoint:<run id>".
    source: str = "history"
    # Merge back (``strategy="merge-back"``): which tables (None: every keyed table), which opt into
    # reverting rows changed since, and the conflict rule per table ("*": every table).
    merge_tables: list[str] | None = None
    revert_changed: list[str] = field(default_factory=list)
    merge_rules: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """For the journal (resume re-reads it): no API key."""
        return {
            "command": self.command,
            "api_url": display_url(self.api_url) if self.api_url else None,
            "project_id": self.project_id,
            "branch": self.branch,
            "at": self.at,
            "tz": self.tz,
            "strategy": self.strategy,
            "name": self.name,
            "env_files": [str(p) for p in self.env_files],
            "pooled_var": self.pooled_var,
            "direct_var": self.direct_var,
            "database": self.database,
            "role": self.role,
            "checks": list(self.checks),
            "prisma": self.prisma,
            "keep": self.keep,
            "source": self.source,
            "merge_tables": self.merge_tables,
            "revert_changed": list(self.revert_changed),
            "merge_rules": dict(self.merge_rules),
        }


@dataclass(frozen=True)
class FirstReads:
    """The project and its branches, asked for as soon as the client exists (the CLI's restore and drill).

    Planning starts with these two reads, and everything else it needs only once they are answered: sent
    before the runbook's modules are imported, the imports run while they are in flight instead of before
    them. :func:`~recovery_wizard.recovery.plan.resolve_plan` takes the answers if the project is the one it
    resolves (a guard checkpoint names its own), else reads again.
    """

    project_id: str
    answers: asyncio.Future[tuple[Project, list[Branch]]]

    @classmethod
    def start(cls, client: NeonClient, project_id: str) -> FirstReads:
        async def both() -> tuple[Project, list[Branch]]:
            project, branches = await asyncio.gather(client.project(project_id), client.branches(project_id))
            return project, branches

        return cls(project_id, asyncio.ensure_future(both()))
