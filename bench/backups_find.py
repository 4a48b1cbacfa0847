"""Benchmark: ``backups find`` over a tree of 50,000 files (goal: under 2 s), beside a bare listing of it.

The tree looks like an app folder next to a Downloads folder: source files, images, configs, Prisma
migrations (SQL without data: not backups), and five real backups hidden among them. The baseline is
``os.walk`` listing the same tree (no file opened): what a search costs before it reads anything.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from bench.common import Context, Figure, median

_SOURCE = "export function handler(req, res) {\n  return res.json({ ok: true });\n}\n" * 20
_MIGRATION = 'CREATE TABLE "User" ("id" TEXT NOT NULL, CONSTRAINT "User_pkey" PRIMARY KEY ("id"));\n'


def make_tree(root: Path, files: int) -> None:
    """``files`` files under ``root``, 5 of them backups, spread over folders up to 5 deep."""
    per_dir = 100
    made = 0
    index = 0
    while made < files - 5:
        index += 1
        folder = root / f"app{index % 7}" / f"src{index % 11}" / f"mod{index % 13}" / f"part{index}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(min(per_dir, files - 5 - made)):
            kind = i % 10
            if kind == 0:
                (folder / f"img{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
            elif kind == 1:
                (folder / f"conf{i}.json").write_text(json.dumps({"name": f"pkg{i}", "version": "1.0.0"}))
            elif kind == 2:
                (folder / f"migration{i}.sql").write_text(_MIGRATION)
            else:
                (folder / f"file{i}.ts").write_text(_SOURCE)
            made += 1
    hidden = root / "app1" / "backups"
    hidden.mkdir(parents=True, exist_ok=True)
    for hour in range(4):
        body = {
            "success": True,
            "timestamp": f"2026-11-30T{20 + hour:02d}:00:00Z",
            "stats": {"users": 2},
            "data": {"users": [{"id": "a"}, {"id": "b"}]},
        }
        (hidden / f"cron-{hour}").write_text(json.dumps(body))
    (root / "export.txt").write_text("INSERT INTO users (id) VALUES ('a');\n")


def _walk(root: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(root))


async def run(ctx: Context) -> list[Figure]:
    from recovery_wizard.recovery.files.find import find_backups

    files, runs = (5_000, 1) if ctx.quick else (50_000, 3)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_tree(root, files)
        _walk(root)  # warm the page cache for both, as a second search would find it
        finds, walks = [], []
        for _ in range(runs):
            began = time.perf_counter()
            result = find_backups([root], depth=8)
            finds.append(time.perf_counter() - began)
            began = time.perf_counter()
            _walk(root)
            walks.append(time.perf_counter() - began)
        assert len(result.found) == 5, [str(f.info.path) for f in result.found]
    value = median(finds)
    ctx.details["backups_find"] = {"files": files, "find_s": finds, "walk_s": walks}
    return [
        Figure(
            "backups_find",
            f"backups find over {files:,} files",
            value,
            "s",
            median(walks),
            "os.walk listing of the same tree",
            "< 2 s at 50,000 files",
            value < 2 * files / 50_000,
            f"5 backups found; median of {runs}",
        )
    ]
