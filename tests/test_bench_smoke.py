"""The benchmark suite still runs: every benchmark once at a tiny scale (``--quick``), in a child process.

Figures are not checked against goals here (a CI machine's timings prove nothing); only that each benchmark
ran and produced finite figures beside its baseline. docs/performance.md has the real figures.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_PG_DSN_ENV

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = {
    "startup", "restore", "verify", "findmoment", "branches", "memory", "envfile", "merge_diff", "guard", "backup",
    "backups_find", "load_dump", "drill_file",
}  # fmt: skip


def test_every_benchmark_runs_at_a_tiny_scale(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEON_")}
    if os.environ.get(TEST_PG_DSN_ENV):
        # The tests' PostgreSQL, when given, is the one the benchmarks use too.
        env["RECOVERY_WIZARD_PG_DSN"] = os.environ[TEST_PG_DSN_ENV]
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        # A guard against a hang, not a speed goal: thirteen benchmarks at a tiny scale, some starting a sandbox.
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["failed"] == []
    figures = result["figures"]
    assert {f["bench"] for f in figures} == BENCHMARKS
    for figure in figures:
        assert math.isfinite(figure["value"]) and figure["value"] > 0, figure
        assert figure["baseline"] is not None and math.isfinite(figure["baseline"]), figure
