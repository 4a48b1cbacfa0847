"""Prompters for the headless commands.

:class:`TerminalPrompter` asks with questionary, drawing on stderr so that stdout stays clean for
``--json``. :class:`ScriptPrompter` never asks: with ``--yes`` confirmations are yes and a missing choice is
a usage error naming the option that gives it; without a terminal (and without ``--yes``) even a
confirmation is refused, because nobody is there to read the plan.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from recovery_wizard.recovery.outcome import CancelledError, UsageError
from recovery_wizard.textsafe import printable


def _output() -> Any:
    from prompt_toolkit.output import create_output

    return create_output(stdout=sys.stderr)


def _fresh_input() -> Any:
    """The terminal's input with everything typed before the question thrown away.

    Keys typed ahead (a ``y⏎⏎`` meant for one question, a stray Enter during a long step) must not answer
    the next question, which may approve a write. Two places hold them: the terminal's own queue
    (``tcflush``) and prompt_toolkit's type-ahead store, where a previous question parks the keys it read
    but did not use.
    """
    from prompt_toolkit.input import create_input
    from prompt_toolkit.input.typeahead import clear_typeahead

    discard_pending_input()
    terminal = create_input()
    clear_typeahead(terminal)
    return terminal


def discard_pending_input() -> None:
    """Drop unread keystrokes from the terminal on stdin (a no-op without one)."""
    try:
        import termios

        fd = sys.stdin.fileno()
        if os.isatty(fd):
            termios.tcflush(fd, termios.TCIFLUSH)
    except (ImportError, OSError, ValueError):
        pass  # not a terminal (or not POSIX): nothing typed ahead to drop


class TerminalPrompter:
    async def _ask(self, question: Any) -> Any:
        answer = await question.unsafe_ask_async()
        if answer is None:
            raise CancelledError("Cancelled at a prompt; nothing was changed by it.")
        return answer

    async def choose(self, question: str, choices: list[tuple[str, str]], *, option: str) -> str:
        import questionary

        picked = await self._ask(
            questionary.select(
                printable(question, multiline=True),
                choices=[questionary.Choice(printable(label), value) for label, value in choices],
                input=_fresh_input(),
                output=_output(),
            )
        )
        return str(picked)

    async def text(self, question: str, *, option: str, default: str = "") -> str:
        import questionary

        answer = str(
            await self._ask(
                questionary.text(question, default=default, input=_fresh_input(), output=_output())
            )
        ).strip()
        if not answer:
            raise UsageError(f"No answer given for {option}.")
        return answer

    async def confirm(self, question: str, *, default: bool = False) -> bool:
        import questionary

        return bool(
            await self._ask(
                questionary.confirm(
                    printable(question, multiline=True),
                    default=default,
                    input=_fresh_input(),
                    output=_output(),
                )
            )
        )

    async def type_to_confirm(self, question: str, expected: str) -> bool:
        import questionary

        typed = await self._ask(
            questionary.text(
                printable(f"{question} Type {expected} to confirm:", multiline=True),
                input=_fresh_input(),
                output=_output(),
            )
        )
        # What is shown is accepted too: a name's control characters are shown escaped, and cannot be typed.
        return str(typed).strip() in (expected, printable(expected))


class ScriptPrompter:
    """For ``--yes`` (``assume_yes``) and for runs without a terminal."""

    def __init__(self, *, assume_yes: bool) -> None:
        self.assume_yes = assume_yes

    def _missing(self, what: str, option: str) -> UsageError:
        return UsageError(
            f"{what} Pass {option}.", hint="Scripts (--yes, or no terminal) must give every choice."
        )

    async def choose(self, question: str, choices: list[tuple[str, str]], *, option: str) -> str:
        shown = ", ".join(label for label, _ in choices[:8])
        raise self._missing(f"{question} (choices: {shown})", option)

    async def text(self, question: str, *, option: str, default: str = "") -> str:
        raise self._missing(question.split("(")[0].strip(), option)

    async def confirm(self, question: str, *, default: bool = False) -> bool:
        if self.assume_yes:
            return True
        raise UsageError(
            f"Not confirmed ({question!r}): there is no terminal to ask on, and --yes was not given.",
            hint="Pass --yes to confirm in scripts and CI, after checking the plan with --dry-run.",
        )

    async def type_to_confirm(self, question: str, expected: str) -> bool:
        return await self.confirm(question)
