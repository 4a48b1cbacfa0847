"""What the runbook needs from a user interface: asking, and telling.

The headless CLI (``plain/``) and the TUI implement these; the runbook never imports either. A prompter
that cannot ask (``--yes``, no terminal) raises :class:`UsageError` for a missing choice, naming the option
that would have given it, so scripts fail fast and clearly.
"""

from __future__ import annotations

from typing import Protocol


class Prompter(Protocol):
    async def choose(self, question: str, choices: list[tuple[str, str]], *, option: str) -> str:
        """One of ``choices`` (label, value); ``option`` is the flag that answers it in scripts."""
        ...

    async def text(self, question: str, *, option: str, default: str = "") -> str: ...

    async def confirm(self, question: str, *, default: bool = False) -> bool:
        """Yes/no before a write. With ``--yes``: yes."""
        ...

    async def type_to_confirm(self, question: str, expected: str) -> bool:
        """The user types ``expected`` (a branch name) to confirm a destructive action."""
        ...


class Reporter(Protocol):
    def step(self, key: str, title: str) -> None:
        """A step starts."""
        ...

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def progress(self, message: str) -> None:
        """A transient status line (operation progress, retries)."""
        ...

    def output(self, line: str) -> None:
        """A line of a child process's output (Prisma), already scrubbed."""
        ...

    def show(self, title: str, body: str) -> None:
        """A block for the user to read: the plan, a diff, a table."""
        ...
