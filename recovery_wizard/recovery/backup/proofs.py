"""What drills proved: ``<backups dir>/proofs.jsonl``, one line per drill of a backup.

A line is ``{"file": name | "snapshot_id": id, "sha256", "at", "run_id", "ok"}``. Appended (``O_APPEND``, one
``write`` per line, fsynced) so that two drills writing at once never interleave within a line; a line that
cannot be read is skipped. A file's proof counts only while its sha256 is the one the drill restored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROOFS = "proofs.jsonl"


@dataclass(frozen=True)
class Proof:
    at: datetime
    ok: bool
    run_id: str
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "ok": self.ok, "run_id": self.run_id, "sha256": self.sha256}


def record_proof(
    directory: Path,
    *,
    run_id: str,
    ok: bool,
    file: str | None = None,
    snapshot_id: str | None = None,
    sha256: str | None = None,
    at: datetime | None = None,
) -> None:
    """Note that a drill restored ``file`` (a name in ``directory``) or ``snapshot_id``, and whether it held."""
    if (file is None) == (snapshot_id is None):
        raise ValueError("give file or snapshot_id")
    line: dict[str, Any] = {"file": file} if file is not None else {"snapshot_id": snapshot_id}
    line.update(
        sha256=sha256, at=(at or datetime.now(UTC)).astimezone(UTC).isoformat(), run_id=run_id, ok=bool(ok)
    )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = (json.dumps(line, sort_keys=True) + "\n").encode()
    fd = os.open(directory / PROOFS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def last_proofs(directory: Path) -> dict[str, Proof]:
    """The latest proof of each backup, keyed ``file:<name>`` or ``snapshot:<id>``."""
    found: dict[str, Proof] = {}
    try:
        lines = (directory / PROOFS).read_text(encoding="utf-8").splitlines()
    except OSError:
        return found
    for text in lines:
        try:
            raw = json.loads(text)
            key = f"file:{raw['file']}" if raw.get("file") else f"snapshot:{raw['snapshot_id']}"
            proof = Proof(
                at=datetime.fromisoformat(str(raw["at"])).astimezone(UTC),
                ok=bool(raw["ok"]),
                run_id=str(raw.get("run_id", "")),
                sha256=raw.get("sha256"),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if key not in found or proof.at >= found[key].at:
            found[key] = proof
    return found


def proof_of_file(proofs: dict[str, Proof], name: str, sha256: str) -> Proof | None:
    proof = proofs.get(f"file:{name}")
    return proof if proof is not None and proof.sha256 in (None, sha256) else None
