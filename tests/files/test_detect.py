"""Recognising backups by content: every format, and every way a file is not (or no longer) a usable one."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery_wizard.recovery.files import detect
from recovery_wizard.recovery.files.detect import BackupFileError
from tests.files.conftest import Dumper


def test_custom_archive_header_and_tables(dump: Dumper) -> None:
    path = dump("c", "nightly.bin")  # the name says nothing: the content does
    info = detect.detect(path)
    assert info.kind == "custom"
    assert info.taken_at_source == detect.FROM_ARCHIVE and not info.taken_at_is_fallback
    assert info.database and info.database.startswith("rwfiles_")
    assert info.server_version and info.dump_version
    assert set(info.tables) == {"public.User", "public.Order"}


@pytest.mark.parametrize(("fmt", "kind"), [("d", "directory"), ("t", "tar")])
def test_directory_and_tar_archives(dump: Dumper, fmt: str, kind: str) -> None:
    info = detect.detect(dump(fmt))
    assert info.kind == kind
    assert set(info.tables) == {"public.User", "public.Order"}


def test_plain_sql_from_pg_dump_uses_started_on_else_mtime(dump: Dumper) -> None:
    verbose = dump("p", "verbose.txt", "--verbose")
    info = detect.detect(verbose)
    assert info.kind == "sql" and info.from_pg_dump
    assert info.taken_at_source == detect.FROM_STARTED_ON
    quiet = detect.detect(dump("p", "quiet.txt"))
    assert quiet.taken_at_is_fallback and quiet.taken_at_source == detect.FROM_MTIME


def test_gzip_and_zstd_sql(dump: Dumper, tmp_path: Path) -> None:
    plain = dump("p", "plain.sql", "--verbose")
    gz = tmp_path / "plain.sql.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert detect.detect(gz).compression == "gzip"
    if shutil.which("zstd"):
        zst = tmp_path / "data.bin"
        subprocess.run(["zstd", "-q", str(plain), "-o", str(zst)], check=True)
        info = detect.detect(zst)
        assert (
            info.compression == "zstd"
            and info.from_pg_dump
            and info.taken_at_source == detect.FROM_STARTED_ON
        )


def test_hand_made_sql(tmp_path: Path) -> None:
    path = tmp_path / "fix.txt"
    path.write_text("INSERT INTO \"User\" (id, email) VALUES ('u1', 'a@x');\n")
    info = detect.detect(path)
    assert info.kind == "sql" and not info.from_pg_dump and info.taken_at_is_fallback


def test_not_a_backup(tmp_path: Path) -> None:
    for name, content in {
        "notes.sql": b"shopping list: milk, eggs\n",
        "photo.dump": bytes(range(256)) * 20,
        "package.json": json.dumps({"name": "app", "dependencies": {}}).encode(),
    }.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert detect.examine(path) is None
        with pytest.raises(BackupFileError, match="is not a backup this tool can read"):
            detect.detect(path)


@pytest.mark.parametrize("cut", [20, 600, -40, -1])
def test_truncated_custom_archive(dump: Dumper, tmp_path: Path, cut: int) -> None:
    data = dump("c").read_bytes()
    path = tmp_path / "cut.dump"
    path.write_bytes(data[:cut])
    info = detect.examine(path)
    assert info is not None and info.problem and "truncated" in info.problem
    with pytest.raises(BackupFileError, match="damaged or truncated"):
        detect.detect(path)


def test_truncated_tar_and_directory(dump: Dumper, tmp_path: Path) -> None:
    tar = dump("t")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    assert (info := detect.examine(cut)) is not None and info.problem
    directory = dump("d")
    victim = next(p for p in directory.iterdir() if p.name != "toc.dat")
    victim.unlink()
    assert (info := detect.examine(directory)) is not None and info.problem and "missing" in info.problem


def _with_dump_version(data: bytes, old: str, new: str) -> bytes:
    encoded_old = b"\x00" + len(old).to_bytes(4, "little") + old.encode()
    encoded_new = b"\x00" + len(new).to_bytes(4, "little") + new.encode()
    at = data.rfind(encoded_old, 0, 600)  # the last one: the server's version may read the same
    assert at > 0
    return data[:at] + encoded_new + data[at + len(encoded_old) :]


def test_dump_from_a_newer_major_than_any_client(dump: Dumper, tmp_path: Path) -> None:
    path = dump("c")
    info = detect.detect(path)
    assert info.dump_version
    newer = tmp_path / "future.dump"
    future = "99" + info.dump_version.split(".", 1)[0][2:] + "." + info.dump_version.split(".", 1)[1]
    newer.write_bytes(_with_dump_version(path.read_bytes(), info.dump_version, future))
    found = detect.examine(newer)
    assert (
        found is not None
        and found.problem
        and f"pg_dump {future}, newer than any pg_restore here" in found.problem
    )
    assert "Install PostgreSQL 99" in found.hint


def test_manifest_gives_time_and_counts_and_its_checksum_is_checked(dump: Dumper) -> None:
    path = dump("c", "hourly.dump")
    manifest = path.with_name(path.name + ".manifest.json")
    body = {
        "format": "recovery-wizard-backup/1",
        "file": path.name,
        "taken_at": "2026-11-30T23:00:00Z",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "size": path.stat().st_size,
        "tables": {"public.User": 300, "public.Order": 120},
        "database": "neondb",
        # The one manifest format (recovery/backup/manifest.py) has every field `backup` writes.
        "server_version": "17.2",
        "pg_dump_version": "18.0",
        "project": {"id": "p-1", "name": "homecheff"},
        "branch": {"id": "br-1", "name": "main"},
    }
    manifest.write_text(json.dumps(body))
    info = detect.detect(path)
    assert info.taken_at_source == detect.FROM_MANIFEST and info.taken_at is not None
    assert info.taken_at.isoformat() == "2026-11-30T23:00:00+00:00"
    assert info.tables == {"public.User": 300, "public.Order": 120}
    body["sha256"] = "0" * 64
    manifest.write_text(json.dumps(body))
    with pytest.raises(BackupFileError, match="corrupt: its sha256"):
        detect.detect(path)


def test_json_backup_head(tmp_path: Path) -> None:
    path = tmp_path / "cron-output"
    path.write_text(
        json.dumps(
            {
                "success": True,
                "timestamp": "2026-11-30T22:00:00.000Z",
                "stats": {"users": 2, "transactions": {"count": 500, "total": 1234}},
                "data": {"users": [{"id": "u1"}, {"id": "u2"}], "transactions": []},
            }
        )
    )
    info = detect.detect(path)
    assert info.kind == "json" and info.taken_at_source == detect.FROM_JSON
    assert info.tables == {"users": 2, "transactions": 500}
    assert info.partial == ["transactions: 500 of 1234 rows"]


def test_json_with_data_before_stats_is_read(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(
        '{"data": {"users": [{"id": "a\\"}{[", "n": [1, {"x": "]"}]}]}, "stats": {"users": 1}, '
        '"timestamp": "2026-11-30T22:00:00Z", "success": true}'
    )
    info = detect.detect(path)
    assert info.tables == {"users": 1} and info.taken_at_source == detect.FROM_JSON


def test_failed_json_backup_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text('{"success": false, "timestamp": "2026-11-30T22:00:00Z", "stats": {}, "data": {}}')
    with pytest.raises(BackupFileError, match='"success": false'):
        detect.detect(path)


def _sparse(path: Path, head: bytes, size: int) -> None:
    with open(path, "wb") as out:
        out.write(head)
        out.truncate(size)


@pytest.mark.parametrize("kind", ["custom", "json"])
def test_multi_gb_file_is_examined_from_a_bounded_prefix(dump: Dumper, tmp_path: Path, kind: str) -> None:
    size = 6 * 1024**3
    path = tmp_path / "huge"
    if kind == "custom":
        _sparse(path, dump("c").read_bytes(), size)
    else:
        _sparse(
            path,
            b'{"success": true, "timestamp": "2026-11-30T22:00:00Z", "stats": {"users": 9}, "data": {',
            size,
        )
    tracemalloc.start()
    try:
        info = detect.examine(path, checksum=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info is not None and info.size == size
    if kind == "json":  # recognised from its head, and refused for loading with the reason
        assert info.tables == {"users": 9} and info.problem and "read whole, up to 1 GiB" in info.problem
    else:
        assert info.problem is None
    assert peak < 8 * 1024 * 1024, f"examining a {size} B file used {peak} B"
    assert os.stat(path).st_blocks * 512 < 50 * 1024 * 1024  # still sparse: nothing wrote its holes


@settings(max_examples=150, deadline=None)
@given(
    data=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(alphabet='ab"\\{}[],:\n é'),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
        max_leaves=20,
    ),
    chunk=st.integers(1, 9),
)
def test_json_head_steps_over_any_data_in_any_chunking(data: object, chunk: int) -> None:
    """The keys after "data" are found whatever "data" holds and wherever the reads cut it."""
    import io

    from recovery_wizard.recovery.files import jsonbackup

    text = json.dumps(
        {"data": {"t": data}, "extra": [data], "stats": {"t": 3}, "timestamp": "2026-11-30T22:00:00Z"}
    )
    original = jsonbackup._Head.chunk
    jsonbackup._Head.chunk = chunk
    try:
        head = jsonbackup.read_head(io.BytesIO(text.encode()))
    finally:
        jsonbackup._Head.chunk = original
    assert head is not None and head["stats"] == {"t": 3} and head["timestamp"] == "2026-11-30T22:00:00Z"
