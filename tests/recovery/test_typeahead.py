"""Keys typed ahead never approve a write: `restore` at a real terminal (a pty), typing ``y⏎⏎`` at once.

The person means "yes, go ahead" and hits Enter twice out of habit. The second Enter must not answer the next
question ("Write these changes to .env?"): pending input is discarded before each question, and every
question that approves a write defaults to No.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import sys
import termios
import time

from tests.recovery.conftest import World

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


class Terminal:
    """A child process on a pseudo-terminal, and what it drew so far (escape sequences removed)."""

    def __init__(self, world: World, *args: str) -> None:
        import subprocess

        self.master, slave = pty.openpty()
        # prompt_toolkit needs a size; a pty starts at 0×0.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recovery_wizard", *args],
            cwd=world.app,
            env={**world.env, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        os.set_blocking(self.master, False)
        self.seen = b""

    def _pump(self) -> None:
        try:
            while chunk := os.read(self.master, 65536):
                self.seen += chunk
        except (BlockingIOError, OSError):
            pass

    def text(self) -> str:
        self._pump()
        return _ANSI.sub(b"", self.seen).decode(errors="replace")

    async def wait_for(self, needle: str, timeout: float = 90, *, after: str = "") -> None:
        """Wait until ``needle`` is drawn (after ``after``, when given)."""

        def drawn() -> bool:
            text = self.text()
            if after:
                if after not in text:
                    return False
                text = text.split(after)[-1]
            return needle in text

        deadline = time.monotonic() + timeout
        while not drawn():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"exited {self.proc.returncode} before {needle!r}:\n{self.text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} within {timeout} s:\n{self.text()[-3000:]}")
            await asyncio.sleep(0.05)

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    async def exit_code(self, timeout: float = 90) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            self._pump()
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout} s:\n{self.text()[-3000:]}")
            await asyncio.sleep(0.05)
        self._pump()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


async def test_a_second_enter_typed_ahead_does_not_approve_the_env_rewrite(world: World) -> None:
    env = world.app / ".env"
    before = env.read_bytes()
    term = Terminal(world, "restore", "--at", "35 minutes ago", "--no-prisma")
    try:
        await term.wait_for("Go ahead?")
        term.type("y\r\r")  # all at once, as a tired hand does
        await term.wait_for("Write these changes to")
        await asyncio.sleep(1.5)  # time for a leftover Enter to answer, if one were left
        assert term.proc.poll() is None, f"the question was answered by the typed-ahead Enter:\n{term.text()}"
        assert env.read_bytes() == before
        term.type("n")
        assert await term.exit_code() == 3, term.text()[-3000:]
        assert env.read_bytes() == before
    finally:
        term.close()


async def test_enter_alone_at_the_env_question_means_no(world: World) -> None:
    env = world.app / ".env"
    before = env.read_bytes()
    term = Terminal(world, "restore", "--at", "35 minutes ago", "--no-prisma")
    try:
        await term.wait_for("Go ahead?")
        term.type("y")
        # The question is drawn whole, its default No shown, before Enter is typed.
        await term.wait_for("(y/N)", after="Write these changes to")
        term.type("\r")
        assert await term.exit_code() == 3, term.text()[-3000:]
        assert env.read_bytes() == before
    finally:
        term.close()
