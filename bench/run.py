"""Run the benchmarks: ``python -m bench.run [--quick] [--only NAME] [--json PATH]``.

Each benchmark prints its figures beside a baseline measured in the same run, as medians with ratios.
Goals are reported against, never asserted: the exit code says only whether every benchmark ran.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import Context, Figure, machine, pg_server, server_version

# name -> module; imported only when run, so --only startup does not pay for Textual or the sandbox.
BENCHMARKS: dict[str, str] = {
    "startup": "bench.startup",
    "restore": "bench.restore",
    "verify": "bench.verify_scale",
    "findmoment": "bench.findmoment",
    "branches": "bench.branches",
    "memory": "bench.memory",
    "envfile": "bench.envfile_scale",
    "merge_diff": "bench.merge_diff",
    "guard": "bench.guard",
    "backup": "bench.backup",
    "backups_find": "bench.backups_find",
    "load_dump": "bench.load_dump",
    "drill_file": "bench.drill_file",
}


def _runner(name: str) -> Callable[[Context], Awaitable[list[Figure]]]:
    module = importlib.import_module(BENCHMARKS[name])
    run: Callable[[Context], Awaitable[list[Figure]]] = module.run
    return run


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s" and value < 1:
        return f"{value * 1000:.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit in ("MB", "x"):
        return f"{value:.1f} {unit}"
    return f"{value:g} {unit}".strip()


def render(figures: list[Figure]) -> str:
    """A Markdown table: the same one docs/performance.md carries."""
    lines = [
        "| benchmark | figure | value | baseline | ratio | goal | met? | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        baseline = f"{_fmt(f.baseline, f.unit)} ({f.baseline_name})" if f.baseline is not None else "-"
        ratio = f"{f.ratio:.2f}×" if f.ratio is not None else "-"
        met = "-" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(
            f"| {f.bench} | {f.name} | {_fmt(f.value, f.unit)} | {baseline} | {ratio} | {f.goal or '-'} | {met} | {f.note} |"
        )
    return "\n".join(lines)


async def main_async(names: list[str], quick: bool, json_path: Path | None) -> int:
    figures: list[Figure] = []
    failed: list[str] = []
    began = time.perf_counter()
    async with pg_server() as (server, source):
        ctx = Context(quick=quick, pg=server, pg_source=source, pg_version=await server_version(server))
        about = {**machine(), "postgresql": f"{ctx.pg_version} ({source})", "quick": str(quick)}
        print("\n".join(f"{k}: {v}" for k, v in about.items()), flush=True)
        for name in names:
            print(f"\n== {name}", flush=True)
            started = time.perf_counter()
            try:
                got = await _runner(name)(ctx)
            except Exception:
                # One broken benchmark must not hide the others' figures; the exit code still says so.
                traceback.print_exc()
                failed.append(name)
                continue
            figures.extend(got)
            print(render(got), flush=True)
            print(f"({name} took {time.perf_counter() - started:.1f} s)", flush=True)
    print("\n== all figures\n" + render(figures))
    print(f"\n{len(names) - len(failed)}/{len(names)} benchmarks ran in {time.perf_counter() - began:.1f} s")
    if json_path is not None:
        # Written off the event loop: the loop is idle by now, but ruff's ASYNC rules are right in general.
        payload = {
            "machine": about,
            "figures": [f.to_dict() for f in figures],
            "details": ctx.details,
            "failed": failed,
        }
        await asyncio.to_thread(json_path.write_text, json.dumps(payload, indent=2, default=str))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny scale: proves each benchmark works")
    parser.add_argument(
        "--only", action="append", choices=list(BENCHMARKS), help="run only NAME (repeatable)"
    )
    parser.add_argument("--json", type=Path, help="also write every figure and raw sample here")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    return asyncio.run(main_async(names, args.quick, args.json))


if __name__ == "__main__":
    sys.exit(main())
