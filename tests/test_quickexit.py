"""The CLI's quick exit: every command ends through it, exit code and exit handlers kept, teardown skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from recovery_wizard import cli as cli_module
from recovery_wizard import quickexit


def _raising(code: object) -> object:
    def main(**_: object) -> NoReturn:
        raise SystemExit(code)

    return main


@pytest.mark.parametrize(("raised", "ends_with"), [(3, 3), (0, 0), (None, 0)])
def test_a_command_raising_system_exit_ends_through_the_quick_exit(
    monkeypatch: pytest.MonkeyPatch, raised: int | None, ends_with: int
) -> None:
    # Every command ends with `raise SystemExit(code)`, which click passes through main().
    ended: list[int] = []
    monkeypatch.setattr(cli_module.cli, "main", _raising(raised))
    monkeypatch.setattr(quickexit, "exit_now", ended.append)
    cli_module.main()
    assert ended == [ends_with]


def test_a_system_exit_with_a_message_is_left_to_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    ended: list[int] = []
    monkeypatch.setattr(cli_module.cli, "main", _raising("a message"))
    monkeypatch.setattr(quickexit, "exit_now", ended.append)
    with pytest.raises(SystemExit) as raised:
        cli_module.main()
    assert raised.value.code == "a message" and ended == []


def test_a_real_command_keeps_its_exit_code_and_exit_handlers_and_skips_the_teardown(tmp_path: Path) -> None:
    # `restore --resume x --new` is refused before anything runs: exit 2 (usage), from `raise SystemExit(2)`.
    # An exit handler still runs; a global's __del__, which only the module teardown would call, does not.
    script = (
        "import atexit, sys\n"
        "class Torn:\n"
        "    def __del__(self):\n"
        "        print('torn down', flush=True)\n"
        "kept = Torn()\n"
        "atexit.register(lambda: print('exit handler ran', flush=True))\n"
        "sys.argv = ['recovery-wizard', 'restore', '--resume', 'x', '--new', '--api-key', 'k', '--project-id', 'p']\n"
        "from recovery_wizard.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "contradict" in done.stderr
    assert "exit handler ran" in done.stdout
    assert "torn down" not in done.stdout
