"""Every command shown in the README and docs/ runs, as shown, so the docs cannot rot.

Commands are taken from ```sh blocks in document order and run against a served homecheff sandbox, in an
app directory with a .env. Interactive ones run in a real pseudo-terminal: the wizard (and `demo`, and a
`drill` without --yes) is quit with Ctrl+Q once its first screen has painted; `restore` without --yes has
its questionary confirmations answered "yes", as a person would.
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import shlex
import signal
import sys
import time
from pathlib import Path

from tests.recovery.conftest import World
from tests.recovery.conftest import world as world  # the served sandbox and app directory

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```sh\n(.*?)```", re.DOTALL)


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        for block in FENCE.findall(doc.read_text()):
            for raw in block.replace("\\\n", " ").splitlines():
                line = raw.split("  #", 1)[0].strip()
                for part in line.split("&&"):
                    words = shlex.split(part.strip())
                    if words and words[0].endswith("recovery-wizard"):
                        found.append((f"{doc.name}: {part.strip()}", words[1:]))
    return found


COMMANDS = documented_commands()
PLACEHOLDERS = ("…", "<")


def interactive(args: list[str]) -> bool:
    if not args or args[0] == "demo":
        return True
    return args[0] in ("restore", "drill") and "--yes" not in args and "-y" not in args


def run_in_pty(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run ``recovery-wizard ARGS`` on a pseudo-terminal like a person: answer confirmations, quit the wizard."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        os.chdir(cwd)
        os.execve(
            sys.executable,
            [sys.executable, "-m", "recovery_wizard", *args],
            {**env, "TERM": "xterm-256color"},
        )
    seen = b""
    answered = 0
    quit_sent = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break  # the child closed the terminal: it exited
                if not chunk:
                    break
                seen += chunk
            text = seen.decode(errors="replace")
            # A questionary confirmation ("(y/N)" or "(Y/n)") shown since the last answer: say yes, once.
            fresh = text[answered:]
            if "(y/N)" in fresh or "(Y/n)" in fresh:
                answered = len(text)
                os.write(fd, b"y")
            if not quit_sent and "Runbook" in text and (args[0] if args else "") != "restore":
                time.sleep(0.5)  # let the first screen settle: this is what a person sees
                os.write(fd, b"\x11")  # Ctrl+Q
                quit_sent = True
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def test_the_docs_show_commands() -> None:
    shown = {args[0] if args else "(wizard)" for _, args in COMMANDS}
    assert {
        "demo",
        "restore",
        "drill",
        "branches",
        "find-moment",
        "peek",
        "timeline",
        "env",
        "sandbox",
        "whereis",
        "guard",
        "backup",
    } <= shown


async def test_every_documented_command_runs(world: World) -> None:
    ran = []
    for where, args in COMMANDS:
        if any(p in " ".join(args) for p in PLACEHOLDERS):
            continue  # a template (…, <run id>): the same command with real values runs elsewhere in the docs
        if args[:2] == ["sandbox", "serve"]:
            continue  # long-running: tests/sandbox/test_serve_cli.py runs it exactly like this
        if interactive(args):
            code, output = await asyncio.to_thread(run_in_pty, args, world.app, world.env)
            assert code in (0, 1), f"{where}: exit {code}\n{output[-3000:]}"
            assert "Traceback" not in output, f"{where}\n{output[-3000:]}"
        else:
            result = await world.cli(*args, timeout=180)
            assert result.code == 0, f"{where}: exit {result.code}\n{result.stderr[-3000:]}"
        ran.append(where)
    assert len(ran) >= 12, ran
    print(f"{len(ran)} documented commands ran")
