"""Benchmark 7, the env step's work as the ``.env`` grows: plan (targets, warnings) and rewrite (merge, diff).

Planning once read every binding's value by scanning the file from the end, which made it quadratic: 40,000
lines took 20 s. The figure is the time per 1,000 lines at the full size beside the same at a tenth of it:
a ratio near 1 is linear, near 10 quadratic. No network and no PostgreSQL: this is the file work alone
(``plan.env_targets``, which reads the file and its neighbours for the warnings, then what the env step does
with it: ``merge_url``, ``EnvFile.rewritten``, ``masked_diff``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import Context, Figure, median

OLD = "postgresql://neondb_owner:npg_OldPassw0rd@ep-old-1.eu-central-1.aws.neon.tech/neondb?sslmode=require"
NEW = "postgresql://neondb_owner:npg_NewPassw0rd@ep-new-2.eu-central-1.aws.neon.tech/neondb?sslmode=require"


def _env_step(app: Path) -> float:
    from recovery_wizard.recovery import envfile
    from recovery_wizard.recovery.plan import RunOptions, env_targets

    envfile._parse.cache_clear()  # each sample as a fresh process sees it
    began = time.perf_counter()
    [target] = env_targets(RunOptions(command="restore", workdir=app), None)
    env = envfile.EnvFile.read(target.path)
    changes = {v: envfile.merge_url(env.get(v), NEW) for v in target.variables}
    envfile.masked_diff(target.path, env.text, env.rewritten(changes))
    return time.perf_counter() - began


def _per_thousand(lines: int, runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp)
        body = [f"DATABASE_URL={OLD}", f"DIRECT_URL={OLD}"] + [f"VAR_{i}=value-{i}" for i in range(lines)]
        (app / ".env").write_text("\n".join(body) + "\n")
        return median([_env_step(app) for _ in range(runs)]) / lines * 1000


async def run(ctx: Context) -> list[Figure]:
    lines, runs = (2_000, 1) if ctx.quick else (40_000, 3)
    small = _per_thousand(lines // 10, runs)
    big = _per_thousand(lines, runs)
    total = big * lines / 1000
    ctx.details["envfile"] = {"lines": lines, "s_per_1000_lines": {"tenth": small, "full": big}}
    return [
        Figure(
            "envfile",
            f"env step's file work per 1,000 lines at {lines:,} lines",
            big,
            "s",
            small,
            f"per 1,000 lines at {lines // 10:,}",
            "ratio < 2 (linear)",
            big < 2 * small,
            f"whole file: {total:.2f} s; median of {runs}",
        ),
    ]
