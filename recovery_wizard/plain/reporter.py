"""Progress on stderr for the headless commands (stdout is for the result, and only JSON under --json).

Every line is redacted, then made printable: names and values in it come from Neon or the database.
"""

from __future__ import annotations

import sys
from typing import TextIO

from recovery_wizard.redact import redact
from recovery_wizard.textsafe import printable


class StderrReporter:
    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self._last_progress = ""
        self._progress_open = False

    def _write(self, text: str) -> None:
        if self._progress_open:
            self.stream.write("\n")
            self._progress_open = False
        self.stream.write(printable(redact(text), multiline=True) + "\n")
        self.stream.flush()

    def step(self, key: str, title: str) -> None:
        self._write(f"\n== {title}")

    def info(self, message: str) -> None:
        if not self.quiet:
            self._write(f"   {message}")

    def warn(self, message: str) -> None:
        self._write(f"!  {message}")

    def progress(self, message: str) -> None:
        if message == self._last_progress or self.quiet:
            return
        self._last_progress = message
        if self.tty:
            # Overwrite the same line: an operation's progress is one living status, not a log.
            self.stream.write("\r   " + printable(redact(message))[:150].ljust(60))
            self._progress_open = True
            self.stream.flush()
        else:
            self._write(f"   {message}")

    def output(self, line: str) -> None:
        if not self.quiet:
            self._write(f"   | {line}")

    def show(self, title: str, body: str) -> None:
        self._write(f"\n-- {title}\n{body}")
