"""Layering and start-up cost: what each entry point imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("textual", "httpx", "psycopg", "rich", "msgspec", "questionary")


def loaded_after(code: str) -> set[str]:
    # A None entry is an import blocked on purpose (recovery_wizard blocks httpx's own CLI), not a module.
    probe = (
        f"{code}\nimport sys, json\n"
        "print(json.dumps(sorted({m.split('.')[0] for m, v in sys.modules.items() if v is not None})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_cli_module_imports_no_heavy_library() -> None:
    assert loaded_after("import recovery_wizard.cli").isdisjoint(HEAVY)


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\nfrom recovery_wizard.cli import cli\n"
        "try:\n    cli(['--help'], prog_name='recovery-wizard')\nexcept SystemExit:\n    pass"
    )
    assert loaded_after(code).isdisjoint(HEAVY)


def test_neon_layer_imports_no_ui_and_no_runbook() -> None:
    code = "import recovery_wizard.neon"
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(m for m, v in sys.modules.items() if v is not None)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    modules = set(json.loads(out.strip().splitlines()[-1]))
    forbidden = {"textual", "psycopg", "questionary", "recovery_wizard.recovery", "recovery_wizard.tui"}
    forbidden |= {"recovery_wizard.plain", "recovery_wizard.sandbox"}
    assert not {m for m in modules if m in forbidden or m.split(".")[0] in {"textual", "psycopg"}}


def _script() -> Path:
    return Path(sys.executable).parent / "recovery-wizard"


@pytest.mark.parametrize("argv", [["-m", "recovery_wizard", "--help"], ["-m", "recovery_wizard", "-h"]])
def test_python_dash_m_shows_help(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode == 0
    assert "Get your Postgres data back after an incident on Neon." in result.stdout


def test_console_script_help_and_version() -> None:
    script = _script()
    if not script.exists():
        pytest.skip(f"console script not installed beside {sys.executable} (package not pip-installed)")
    env = {**os.environ, "NO_COLOR": "1"}
    help_run = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False, env=env)
    assert help_run.returncode == 0 and "Usage: recovery-wizard" in help_run.stdout
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False, env=env)
    from recovery_wizard import __version__

    assert version.stdout.strip() == f"recovery-wizard, version {__version__}"


def test_runbook_layer_imports_no_ui_and_no_sandbox() -> None:
    code = "import recovery_wizard.recovery.runner, recovery_wizard.recovery.report"
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(m for m, v in sys.modules.items() if v is not None)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    modules = set(json.loads(out.strip().splitlines()[-1]))
    forbidden_roots = {"textual", "questionary", "prompt_toolkit"}
    forbidden = {
        "recovery_wizard.tui",
        "recovery_wizard.plain",
        "recovery_wizard.sandbox",
        "recovery_wizard.commands",
    }
    bad = {
        m for m in modules if m.split(".")[0] in forbidden_roots or ".".join(m.split(".")[:2]) in forbidden
    }
    assert not bad


FIRST_PAINT_PROBE = """
import json, sys
from pathlib import Path
from recovery_wizard.tui.app import WizardApp, WizardConfig

class Probe(WizardApp):
    def on_mount(self) -> None:
        self.call_after_refresh(self.painted)

    def painted(self) -> None:
        self.loaded = sorted(m for m, v in sys.modules.items() if v is not None)  # None: a blocked import
        self.exit(0)

app = Probe(WizardConfig(workdir=Path(sys.argv[1])))
app.run(headless=True)
print(json.dumps(app.loaded))
"""


def test_first_paint_loads_textual_and_the_connect_screen_only(tmp_path: Path) -> None:
    """What the wizard's first screen waits for (docs/performance.md, start-up): not the Neon client
    (httpx, msgspec), the database driver, the time parser, the runbook or the later screens."""
    out = subprocess.run(
        [sys.executable, "-c", FIRST_PAINT_PROBE, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NEON_API_KEY": ""},
    ).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert "recovery_wizard.tui.screens.connect" in loaded  # the probe did reach the first paint
    roots = {m.split(".")[0] for m in loaded}
    assert roots.isdisjoint({"httpx", "msgspec", "psycopg", "dateparser", "pglast", "uvicorn", "questionary"})
    later = {
        "recovery_wizard.neon.client",
        "recovery_wizard.recovery.runner",
        "recovery_wizard.recovery.plan",
        "recovery_wizard.recovery.envfile",
        "recovery_wizard.sandbox",
        "recovery_wizard.tui.screens.choices",
        "recovery_wizard.tui.screens.sources",
        "recovery_wizard.tui.screens.steps",
    }
    assert not later & loaded
